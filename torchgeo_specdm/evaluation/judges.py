"""Downstream models trained on real data: the judges of alignment and Fréchet distance."""

import math
import os
from collections.abc import Sequence
from typing import Any, Literal

import torch
from einops import rearrange
from torch import Tensor
from torchgeo.datamodules import NonGeoDataModule
from torchgeo.datasets import DatasetNotFoundError
from torchgeo.tasks import ChangeDetection, SemanticSegmentation
from torchmetrics.functional.classification import (
    binary_f1_score,
    binary_jaccard_index,
    binary_precision,
    binary_recall,
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_jaccard_index,
)

from ..datasets.validation import InvalidInputError
from ..tasks.checkpoints import own_hyperparameters, read_checkpoint
from ..tasks.utils import infer_data_spec, timed_trainer
from ..types import Path


def make_downstream_task(
    in_channels: int,
    num_classes: int,
    change: bool,
    lr: float = 1e-3,
    ignore_index: int | None = None,
) -> SemanticSegmentation | ChangeDetection:
    """TorchGeo's stock smp U-Net (ResNet-18 encoder, trained from scratch).

    Change detection trains with the Dice loss of the change class: that is its F1,
    the reported metric, and a plain BCE on OSCD, where a few percent of the pixels
    change, collapses to "no change" (F1 0) in a short run.

    Args:
        in_channels: bands per image.
        num_classes: classes (2 for change detection).
        change: build a change-detection task on image pairs.
        lr: learning rate.
        ignore_index: label left out of the segmentation loss (e.g. unlabelled).

    Returns:
        the task.
    """
    with own_hyperparameters():
        if change:
            return ChangeDetection(
                model='unet',
                backbone='resnet18',
                weights=None,
                in_channels=in_channels,
                task='binary',
                loss='dice',
                lr=lr,
            )
        return SemanticSegmentation(
            model='unet',
            backbone='resnet18',
            weights=None,
            in_channels=in_channels,
            task='multiclass',
            num_classes=num_classes,
            loss='ce',
            ignore_index=ignore_index,
            lr=lr,
        )


def train_downstream(
    datamodule: NonGeoDataModule, minutes: float, work_dir: Path, max_epochs: int = -1
) -> SemanticSegmentation | ChangeDetection:
    """Train a stock TorchGeo baseline on a datamodule for a time budget.

    Args:
        datamodule: the (real) training data.
        minutes: wall-clock budget.
        work_dir: folder for Lightning's files.
        max_epochs: epoch cap (-1 for none).

    Returns:
        the trained task, in eval mode.
    """
    datamodule.setup('fit')
    spec = infer_data_spec(datamodule)
    task = make_downstream_task(
        spec['in_channels'],
        spec['num_classes'],
        spec['num_images'] == 2,
        ignore_index=getattr(datamodule, 'ignore_index', None),
    )
    trainer = timed_trainer(minutes, work_dir, max_epochs=max_epochs)
    trainer.fit(task, datamodule=datamodule)
    os.makedirs(work_dir, exist_ok=True)
    trainer.save_checkpoint(
        os.path.join(work_dir, 'downstream.ckpt'), weights_only=True
    )
    return task.eval()


def load_downstream(path: Path, change: bool) -> SemanticSegmentation | ChangeDetection:
    """Load a downstream checkpoint without running code stored in it.

    Args:
        path: a SemanticSegmentation or ChangeDetection checkpoint.
        change: it is a change-detection model.

    Returns:
        the task, in eval mode.
    """
    checkpoint = read_checkpoint(path)
    hparams = {
        k: v for k, v in checkpoint['hyper_parameters'].items() if not k.startswith('_')
    }
    task_class = ChangeDetection if change else SemanticSegmentation
    with own_hyperparameters():
        task = task_class(**hparams)
    task.load_state_dict(checkpoint['state_dict'])
    return task.eval()


def _model_input(image: Tensor) -> Tensor:
    return rearrange(image, 'b t c h w -> b (t c) h w') if image.ndim == 5 else image


@torch.no_grad()
def predict_labels(task: Any, image: Tensor, batch_size: int = 32) -> Tensor:
    """Labels a downstream model predicts for normalised images.

    Args:
        task: a SemanticSegmentation or ChangeDetection task.
        image: normalised images, [N, C, H, W] or [N, 2, C, H, W].
        batch_size: images per forward pass.

    Returns:
        [N, H, W] labels (0/1 for change).
    """
    outputs = []
    for start in range(0, len(image), batch_size):
        logits = task(_model_input(image[start : start + batch_size]))
        outputs.append(
            (logits[:, 0] > 0).long() if logits.shape[1] == 1 else logits.argmax(1)
        )
    return torch.cat(outputs)


@torch.no_grad()
def encoder_features(task: Any, image: Tensor, batch_size: int = 32) -> Tensor:
    """Globally pooled deepest features of the downstream model's encoder.

    Args:
        task: a SemanticSegmentation or ChangeDetection task with an smp model.
        image: normalised images.
        batch_size: images per forward pass.

    Returns:
        [N, D] features.
    """
    features = []
    for start in range(0, len(image), batch_size):
        deepest = task.model.encoder(_model_input(image[start : start + batch_size]))[
            -1
        ]
        features.append(deepest.mean(dim=(2, 3)))
    return torch.cat(features)


def held_out_split(datamodule: NonGeoDataModule) -> Literal['val', 'test']:
    """The split a downstream model is scored on: 'test', or 'val' without one.

    Args:
        datamodule: the real data.

    Returns:
        'test' when the datamodule sets up a non-empty test split, else 'val'
        (e.g. an OSCD root without a ``Test Labels`` folder).
    """
    try:
        datamodule.setup('test')
    except (DatasetNotFoundError, FileNotFoundError, InvalidInputError):
        return 'val'
    dataset = getattr(datamodule, 'test_dataset', None)
    return 'val' if dataset is None or len(dataset) == 0 else 'test'


@torch.no_grad()
def score_downstream(
    task: Any, datamodule: NonGeoDataModule, split: Literal['val', 'test'] = 'test'
) -> dict[str, float]:
    """Score a downstream model on a purely real split with torchmetrics.

    Args:
        task: a trained SemanticSegmentation or ChangeDetection task.
        datamodule: the real data.
        split: 'test' or 'val'.

    Returns:
        ``miou``, ``oa`` and the per-class ``iou/<class name>`` for
        segmentation (see :func:`segmentation_scores`; pixels of the
        datamodule's ``ignore_index``, if any, are left out); ``f1``, ``precision``,
        ``recall`` and ``iou`` of the change class for change detection.
    """
    datamodule.setup('test' if split == 'test' else 'fit')
    loader = (
        datamodule.test_dataloader() if split == 'test' else datamodule.val_dataloader()
    )
    task.eval()
    predictions, targets = [], []
    for batch in loader:
        batch = datamodule.aug(batch)
        predictions.append(predict_labels(task, batch['image'].to(task.device)).cpu())
        targets.append(batch['mask'].reshape(predictions[-1].shape).long())
    prediction, target = torch.cat(predictions), torch.cat(targets)
    if isinstance(task, ChangeDetection):
        return {
            'f1': float(binary_f1_score(prediction, target)),
            'precision': float(binary_precision(prediction, target)),
            'recall': float(binary_recall(prediction, target)),
            'iou': float(binary_jaccard_index(prediction, target)),
        }
    num_classes = int(task.hparams['num_classes'])
    ignore_index = getattr(datamodule, 'ignore_index', None)
    return segmentation_scores(
        prediction,
        target,
        num_classes,
        ignore_index,
        getattr(datamodule, 'class_names', None),
    )


def segmentation_scores(
    prediction: Tensor,
    target: Tensor,
    num_classes: int,
    ignore_index: int | None = None,
    class_names: Sequence[str] | None = None,
) -> dict[str, float]:
    """mIoU, OA and per-class IoU of predicted labels, with torchmetrics.

    Pixels whose target is ``ignore_index`` are left out, and so is that class:
    it gets no ``iou/`` key and does not enter ``miou``. Every other class gets a
    key, so the keys depend only on the classes; one that occurs in neither the
    prediction nor the target (of the pixels kept) has no defined IoU: NaN, left
    out of ``miou``. ``miou`` is the mean of the defined ``iou/`` values, which is
    torchmetrics' macro average (that too drops the ignored and absent classes).

    Args:
        prediction: predicted labels, any shape.
        target: true labels, the same shape.
        num_classes: number of classes.
        ignore_index: label of unlabelled pixels, or ``None``.
        class_names: names of the classes, used for the keys when there are
            ``num_classes`` of them (else the class index is).

    Returns:
        ``miou``, ``oa`` and ``iou/<class name>`` for each class but the
        ignored one.
    """
    per_class = multiclass_jaccard_index(
        prediction, target, num_classes, 'none', ignore_index=ignore_index
    )
    confusion = multiclass_confusion_matrix(
        prediction, target, num_classes, ignore_index=ignore_index
    )
    present = (confusion.sum(0) + confusion.sum(1)) > 0
    names = (
        [str(name) for name in class_names]
        if class_names is not None and len(class_names) == num_classes
        else [str(index) for index in range(num_classes)]
    )
    ious = {
        f'iou/{names[index]}': float(per_class[index])
        if bool(present[index])
        else math.nan
        for index in range(num_classes)
        if index != ignore_index
    }
    values = [value for value in ious.values() if not math.isnan(value)]
    return {
        'miou': sum(values) / len(values) if values else 0.0,
        'oa': float(
            multiclass_accuracy(
                prediction, target, num_classes, 'micro', ignore_index=ignore_index
            )
        ),
    } | ious
