"""Downstream models trained on real data: the judges of alignment and Fréchet distance."""

import math
import os
from collections.abc import Sequence
from typing import Any, Literal

import torch
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
from ..generation.guidance import guide_input, is_siamese
from ..tasks.checkpoints import own_hyperparameters, read_checkpoint
from ..tasks.utils import infer_data_spec, timed_trainer
from ..types import Path


class _StepSchedule:
    """AdamW with a cosine decay over the trainer's ``max_steps``.

    The stock torchgeo tasks step a ``ReduceLROnPlateau`` scheduler on the
    validation loss once per epoch, so two runs with the same optimizer steps but
    different training-set sizes (real only, real + synthetic) would follow
    different learning-rate schedules. This schedule depends on the step count
    alone, so it is the same for every data mix, and it needs no validation pass.
    """

    def configure_optimizers(self) -> Any:
        """Initialize AdamW and a per-step cosine decay to zero.

        Returns:
            the optimizer and its per-step scheduler.
        """
        optimizer = torch.optim.AdamW(
            self.parameters(),  # type: ignore[attr-defined]
            lr=self.hparams['lr'],  # type: ignore[attr-defined]
        )
        total = max(1, int(self.trainer.max_steps))  # type: ignore[attr-defined]
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total)),
        )
        return {
            'optimizer': optimizer,
            'lr_scheduler': {'scheduler': scheduler, 'interval': 'step'},
        }


class StepScheduledSegmentation(_StepSchedule, SemanticSegmentation):
    """TorchGeo's SemanticSegmentation with a learning rate set by the step alone.

    .. versionadded:: 0.2
    """


class StepScheduledChangeDetection(_StepSchedule, ChangeDetection):
    """TorchGeo's ChangeDetection with a learning rate set by the step alone.

    .. versionadded:: 0.2
    """


#: TorchGeo change models of a downstream change detector.
ChangeModel = Literal['unet', 'fcsiamdiff', 'fcsiamconc']


def make_downstream_task(
    in_channels: int,
    num_classes: int,
    change: bool,
    lr: float = 1e-3,
    ignore_index: int | None = None,
    schedule: Literal['plateau', 'steps'] = 'plateau',
    change_loss: Literal['dice', 'bce', 'focal', 'jaccard'] = 'dice',
    pos_weight: float | None = None,
    backbone: Literal['resnet18', 'resnet34'] = 'resnet18',
    change_model: ChangeModel = 'unet',
) -> SemanticSegmentation | ChangeDetection:
    """TorchGeo's stock smp U-Net (ResNet-18 encoder, trained from scratch).

    Change detection trains with the Dice loss of the change class by default:
    that is its F1, the reported metric, and a plain BCE on OSCD, where a few
    percent of the pixels change, collapses to "no change" (F1 0) in a short run.

    Args:
        in_channels: bands per image.
        num_classes: classes (2 for change detection).
        change: build a change-detection task on image pairs.
        lr: learning rate.
        ignore_index: label left out of the segmentation loss (e.g. unlabelled).
        schedule: 'plateau' is torchgeo's (ReduceLROnPlateau on the validation
            loss, per epoch); 'steps' a cosine decay over ``max_steps``, the same
            for every training set (see :class:`StepScheduledSegmentation`).
        change_loss: loss of the change task.
        pos_weight: weight of the change class in the 'bce' loss.
        backbone: the U-Net's encoder (a guide uses another one than the judge).
        change_model: TorchGeo's change model: the early-fusion U-Net (both dates
            stacked along the bands) or a siamese U-Net whose decoder takes the
            difference ('fcsiamdiff') or the concatenation ('fcsiamconc') of the
            two dates' features.

    Returns:
        the task.
    """
    segmentation_class, change_class = (
        (StepScheduledSegmentation, StepScheduledChangeDetection)
        if schedule == 'steps'
        else (SemanticSegmentation, ChangeDetection)
    )
    with own_hyperparameters():
        if change:
            return change_class(
                model=change_model,
                backbone=backbone,
                weights=None,
                in_channels=in_channels,
                task='binary',
                loss=change_loss,
                pos_weight=None if pos_weight is None else torch.tensor([pos_weight]),
                lr=lr,
            )
        return segmentation_class(
            model='unet',
            backbone=backbone,
            weights=None,
            in_channels=in_channels,
            task='multiclass',
            num_classes=num_classes,
            loss='ce',
            ignore_index=ignore_index,
            lr=lr,
        )


def downstream_task_for(
    datamodule: NonGeoDataModule, **kwargs: Any
) -> SemanticSegmentation | ChangeDetection:
    """The stock downstream task that fits a datamodule's data.

    Sets the datamodule up for fitting, reads its bands, classes, dates and ignore
    index, and builds :func:`make_downstream_task` for them.

    Args:
        datamodule: the training data.
        kwargs: further :func:`make_downstream_task` arguments (lr, schedule, ...).

    Returns:
        the untrained task.
    """
    datamodule.setup('fit')
    spec = infer_data_spec(datamodule)
    return make_downstream_task(
        spec['in_channels'],
        spec['num_classes'],
        spec['num_images'] == 2,
        ignore_index=getattr(datamodule, 'ignore_index', None),
        **kwargs,
    )


def train_downstream(
    datamodule: NonGeoDataModule,
    minutes: float,
    work_dir: Path,
    max_epochs: int = -1,
    **task_kwargs: Any,
) -> SemanticSegmentation | ChangeDetection:
    """Train a stock TorchGeo baseline on a datamodule for a time budget.

    Args:
        datamodule: the (real) training data.
        minutes: wall-clock budget.
        work_dir: folder for Lightning's files and ``downstream.ckpt``.
        max_epochs: epoch cap (-1 for none).
        task_kwargs: further :func:`make_downstream_task` arguments (a guide
            takes another backbone than the model that judges it).

    Returns:
        the trained task, in eval mode.
    """
    task = downstream_task_for(datamodule, **task_kwargs)
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
    return _downstream_task(read_checkpoint(path), change)


def _hyperparameters(checkpoint: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in checkpoint.get('hyper_parameters', {}).items()
        if not k.startswith('_')
    }


def _downstream_task(
    checkpoint: dict[str, Any], change: bool
) -> SemanticSegmentation | ChangeDetection:
    task_class = ChangeDetection if change else SemanticSegmentation
    with own_hyperparameters():
        task = task_class(**_hyperparameters(checkpoint))
    task.load_state_dict(checkpoint['state_dict'])
    return task.eval()


def load_guide(
    path: Path, in_channels: int, num_classes: int, change: bool
) -> SemanticSegmentation | ChangeDetection:
    """Load the guide of alignment guidance and refinement, checked against the data.

    Args:
        path: a SemanticSegmentation (segmentation) or binary ChangeDetection
            (change) checkpoint trained on the real data.
        in_channels: bands per image of the diffusion model's VAE.
        num_classes: mask classes of the VAE.
        change: the diffusion model generates change pairs.

    Returns:
        the guide in eval mode, with ``requires_grad`` off on its parameters.

    Raises:
        InvalidInputError: if the file is missing or unreadable, or the guide's
            bands, task or classes do not fit the diffusion model.

    .. versionadded:: 0.2
    """
    fix = (
        'Pass a torchgeo '
        + ('binary ChangeDetection' if change else 'SemanticSegmentation')
        + ' checkpoint trained on the same data as the diffusion model.'
    )
    if not os.path.isfile(path):
        raise InvalidInputError(f'--guide {path}: file not found. {fix}')
    try:
        checkpoint = read_checkpoint(path)
    except InvalidInputError as error:
        raise InvalidInputError(f'--guide {error}') from None
    hparams = _hyperparameters(checkpoint)
    if 'in_channels' not in hparams or 'task' not in hparams:
        raise InvalidInputError(
            f'--guide {path}: not a downstream model checkpoint (no in_channels or '
            f'task settings). {fix}'
        )
    if hparams['in_channels'] != in_channels:
        raise InvalidInputError(
            f'--guide {path}: the guide takes {hparams["in_channels"]} bands per '
            f"image, the diffusion model's images have {in_channels}. {fix}"
        )
    if change and hparams['task'] != 'binary':
        raise InvalidInputError(
            f'--guide {path}: a {hparams["task"]} model, but change pairs need a '
            f'binary change detector (one change logit). {fix}'
        )
    if not change and (
        hparams['task'] != 'multiclass' or hparams.get('num_classes') != num_classes
    ):
        raise InvalidInputError(
            f'--guide {path}: a {hparams["task"]} model with '
            f"{hparams.get('num_classes')} classes, but the diffusion model's masks "
            f'have {num_classes} classes. {fix}'
        )
    try:
        task = _downstream_task(checkpoint, change)
    except (RuntimeError, TypeError, ValueError) as error:
        reason = str(error).strip().splitlines()[0]
        raise InvalidInputError(
            f'--guide {path}: its weights do not fit a '
            f'{"change detection" if change else "segmentation"} model ({reason}). '
            f'{fix}'
        ) from None
    task.requires_grad_(False)
    return task.eval()


@torch.no_grad()
def predict_labels(task: Any, image: Tensor, batch_size: int = 32) -> Tensor:
    """Labels a downstream model predicts for normalised images.

    Args:
        task: a SemanticSegmentation or ChangeDetection task.
        image: normalised images, [N, C, H, W] or [N, 2, C, H, W].
        batch_size: images per forward pass.

    Returns:
        [N, H, W] labels (0/1 for change: the change probability above the
        task's ``change_threshold`` attribute, set by :func:`calibrate_change_threshold`,
        else 0.5).
    """
    threshold = getattr(task, 'change_threshold', 0.5)
    outputs = []
    for start in range(0, len(image), batch_size):
        logits = task(guide_input(image[start : start + batch_size], task))
        outputs.append(
            (logits[:, 0].sigmoid() > threshold).long()
            if logits.shape[1] == 1
            else logits.argmax(1)
        )
    return torch.cat(outputs)


#: Change-probability thresholds :func:`calibrate_change_threshold` tries.
THRESHOLDS = tuple(round(0.05 * step, 2) for step in range(1, 20))


@torch.no_grad()
def calibrate_change_threshold(task: Any, datamodule: NonGeoDataModule) -> float:
    """Set a change detector's decision threshold to the best F1 on validation data.

    A detector trained on patches that over-draw changed pixels, or with the Dice
    loss, is calibrated for a higher change share than a whole scene holds; its F1
    at a fixed 0.5 then mostly measures that mismatch. The threshold is chosen on
    the real validation split only, the same way for every training regime, and
    stored on the task (``task.change_threshold``) for :func:`predict_labels`.

    Args:
        task: a trained ChangeDetection task.
        datamodule: the real data; its validation split picks the threshold.

    Returns:
        the threshold.
    """
    datamodule.setup('fit')
    task.eval()
    probabilities, targets = [], []
    for batch in datamodule.val_dataloader():
        batch = datamodule.aug(batch)
        logits = task(guide_input(batch['image'].to(task.device), task))
        probabilities.append(logits[:, 0].sigmoid().flatten().cpu())
        targets.append(batch['mask'].flatten().long())
    task.change_threshold = best_f1_threshold(
        torch.cat(probabilities), torch.cat(targets)
    )
    return float(task.change_threshold)


def best_f1_threshold(probability: Tensor, target: Tensor) -> float:
    """The threshold of :data:`THRESHOLDS` with the best F1 (the lowest on ties).

    Args:
        probability: change probabilities, any shape.
        target: 0/1 labels, the same shape.

    Returns:
        the threshold.
    """
    scores = [
        float(binary_f1_score((probability > t).long(), target)) for t in THRESHOLDS
    ]
    return THRESHOLDS[max(range(len(scores)), key=scores.__getitem__)]


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
        chunk = guide_input(image[start : start + batch_size], task)
        if is_siamese(task):
            # One feature vector per date, side by side.
            dates = [task.model.encoder(chunk[:, date])[-1] for date in range(2)]
            features.append(torch.cat([d.mean(dim=(2, 3)) for d in dates], dim=1))
        else:
            features.append(task.model.encoder(chunk)[-1].mean(dim=(2, 3)))
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
    prediction nor the target (of the pixels kept) has no defined IoU: NaN. A
    class that is only predicted (no pixel of it in the target) keeps its IoU of 0
    under ``iou/`` but is left out of ``miou``: ``miou`` averages the classes
    present in the ground truth, so a test split that lacks a class does not
    turn its false positives into a zero in the mean.

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
    in_target = confusion.sum(1) > 0
    names = (
        [str(name) for name in class_names]
        if class_names is not None and len(class_names) == num_classes
        else [str(index) for index in range(num_classes)]
    )
    kept = [index for index in range(num_classes) if index != ignore_index]
    ious = {
        f'iou/{names[index]}': float(per_class[index])
        if bool(present[index])
        else math.nan
        for index in kept
    }
    values = [
        value
        for index, value in enumerate(ious.values())
        if not math.isnan(value) and bool(in_target[kept[index]])
    ]
    return {
        'miou': sum(values) / len(values) if values else 0.0,
        'oa': float(
            multiclass_accuracy(
                prediction, target, num_classes, 'micro', ignore_index=ignore_index
            )
        ),
    } | ious
