"""Helpers shared by the SpecDM tasks: reading the data's shape, plotting, logging."""

import os
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import matplotlib.pyplot as plt
import torch
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from matplotlib.figure import Figure
from torch import Tensor
from torch.utils.data import Subset

from ..datasets.hyperspectral import nearest_bands
from ..datasets.plotting import class_colormap, false_colour
from ..datasets.validation import InvalidInputError
from ..types import Path

#: What a task reads from a datamodule: in_channels, num_classes, num_images,
#: mean, std, bands, wavelengths and class_names.
DataSpec = dict[str, Any]

RGB_NAMES = ('B04', 'B03', 'B02')


def _first_dataset(datamodule: LightningDataModule) -> Any:
    for name in ('train_dataset', 'dataset', 'val_dataset', 'test_dataset'):
        dataset = getattr(datamodule, name, None)
        if dataset is not None:
            return dataset
    raise InvalidInputError(
        f'{type(datamodule).__name__}: setup() created no dataset, so the task '
        'cannot read the band and class counts. Pass in_channels, num_classes and '
        'num_images to the task, or fix the datamodule.'
    )


def _unwrap(dataset: Any) -> Any:
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return dataset


def _per_band(value: Any, channels: int, name: str, source: str) -> list[float] | None:
    if value is None:
        return None
    tensor = torch.as_tensor(value, dtype=torch.float32).flatten()
    if tensor.numel() == 1:
        tensor = tensor.expand(channels)
    if tensor.numel() != channels:
        raise InvalidInputError(
            f'{source}.{name} has {tensor.numel()} values but the images have '
            f'{channels} bands. Give one {name} per band.'
        )
    return tensor.tolist()


def infer_data_spec(datamodule: LightningDataModule) -> DataSpec:
    """Read band count, class count, dates and normalisation from a datamodule.

    Works with any TorchGeo datamodule whose samples carry ``image`` ([C, H, W], or
    [T, C, H, W] for change pairs) and ``mask``.

    Args:
        datamodule: a datamodule on which ``setup`` has run.

    Returns:
        the data spec.

    Raises:
        InvalidInputError: if the samples lack ``image`` or ``mask``, or the class
            count cannot be found.
    """
    source = type(datamodule).__name__
    dataset = _first_dataset(datamodule)
    sample = dataset[0]
    if 'image' not in sample or 'mask' not in sample:
        raise InvalidInputError(
            f'{source}: samples hold {sorted(sample)}, but SpecDM needs both '
            "'image' and 'mask'. Use a datamodule of image/mask pairs."
        )
    image = sample['image']
    if image.ndim not in (3, 4):
        raise InvalidInputError(
            f'{source}: sample image has shape {tuple(image.shape)}; expected '
            '[C, H, W] or, for change pairs, [2, C, H, W].'
        )
    num_images = 2 if image.ndim == 4 else 1
    channels = int(image.shape[-3])
    base = _unwrap(dataset)
    names = getattr(datamodule, 'class_names', None) or getattr(base, 'classes', None)
    num_classes = getattr(datamodule, 'num_classes', None)
    if num_classes is None and names is not None:
        num_classes = len(names)
    if num_classes is None and num_images == 2:
        num_classes, names = 2, ('no change', 'change')
    if num_classes is None:
        raise InvalidInputError(
            f'{source} does not say how many classes its masks have. Set '
            '--model.init_args.num_classes (or a num_classes attribute on the '
            'datamodule).'
        )
    bands = getattr(datamodule, 'bands', None) or getattr(base, 'bands', None)
    wavelengths = getattr(datamodule, 'wavelengths', None)
    return {
        'size': (int(image.shape[-2]), int(image.shape[-1])),
        'in_channels': channels,
        'num_classes': int(num_classes),
        'num_images': num_images,
        'mean': _per_band(getattr(datamodule, 'mean', None), channels, 'mean', source),
        'std': _per_band(getattr(datamodule, 'std', None), channels, 'std', source),
        'bands': list(bands) if bands is not None and len(bands) == channels else None,
        'wavelengths': [float(value) for value in wavelengths]
        if wavelengths is not None and len(wavelengths) == channels
        else None,
        'class_names': list(names) if names is not None else None,
    }


def check_data_spec(spec: DataSpec, hparams: Any) -> None:
    """Check that a task's sizes match the data it is given.

    Args:
        spec: what the datamodule holds, from :func:`infer_data_spec`.
        hparams: the task's hyperparameters.

    Raises:
        InvalidInputError: if band count, class count or dates differ.
    """
    for key, meaning in (
        ('in_channels', 'bands'),
        ('num_classes', 'classes'),
        ('num_images', 'images per sample'),
    ):
        if hparams[key] is not None and hparams[key] != spec[key]:
            raise InvalidInputError(
                f'the model was built for {hparams[key]} {meaning} (in_channels='
                f'{hparams["in_channels"]}, num_classes={hparams["num_classes"]}, '
                f'num_images={hparams["num_images"]}) but the datamodule gives '
                f'{spec[key]}. Use a checkpoint trained on this data, or the data '
                'the checkpoint was trained on.'
            )


def rgb_indices(
    bands: Sequence[str] | None,
    channels: int,
    wavelengths: Sequence[float] | None = None,
) -> list[int]:
    """Bands to show as red, green and blue.

    Args:
        bands: band names, if known.
        channels: number of bands.
        wavelengths: centre of each band in nanometres, if known.

    Returns:
        three band indices: the bands nearest 640, 550 and 470 nm when the
        wavelengths are known, else B04/B03/B02 when present, else spread over the
        bands.
    """
    if wavelengths is not None and len(wavelengths) == channels:
        positions = [str(index) for index in range(channels)]
        return [int(index) for index in nearest_bands(positions, wavelengths)]
    if bands is not None and all(name in bands for name in RGB_NAMES):
        return [list(bands).index(name) for name in RGB_NAMES]
    return [min(channels - 1, round(channels * f)) for f in (0.75, 0.5, 0.25)]


def plot_reconstructions(
    image: Tensor,
    reconstruction: Tensor,
    mask: Tensor,
    prediction: Tensor,
    bands: Sequence[str] | None,
    class_names: Sequence[str] | None,
    titles: tuple[str, str] = ('real', 'reconstructed'),
    wavelengths: Sequence[float] | None = None,
) -> Figure:
    """Real and reconstructed false-colour images and masks side by side.

    Args:
        image: real image, [C, H, W] or [T, C, H, W], in native units.
        reconstruction: reconstructed image, same shape.
        mask: real mask, [H, W].
        prediction: reconstructed mask, [H, W].
        bands: band names, to pick the RGB bands.
        class_names: class names, for the colour scale.
        titles: names of the two columns.
        wavelengths: band centres in nanometres, to pick the bands nearest red,
            green and blue.

    Returns:
        the figure.
    """
    dates = image.reshape(-1, *image.shape[-3:])
    recon = reconstruction.reshape(dates.shape)
    rgb = rgb_indices(bands, dates.shape[1], wavelengths)
    num_classes = (
        len(class_names) if class_names else int(max(mask.max(), prediction.max())) + 1
    )
    cmap = class_colormap(num_classes)
    columns = 2 * len(dates) + 2
    figure, axes = plt.subplots(1, columns, figsize=(3 * columns, 3.2))
    panels: list[tuple[str, Any, dict[str, Any]]] = []
    for t in range(len(dates)):
        suffix = f' (date {t + 1})' if len(dates) > 1 else ''
        panels.append((f'{titles[0]}{suffix}', false_colour(dates[t], rgb), {}))
        panels.append((f'{titles[1]}{suffix}', false_colour(recon[t], rgb), {}))
    options = {
        'cmap': cmap,
        'vmin': 0,
        'vmax': num_classes - 1,
        'interpolation': 'nearest',
    }
    panels.append((f'{titles[0]} mask', mask.numpy(), options))
    panels.append((f'{titles[1]} mask', prediction.numpy(), options))
    for axis, (title, array, kwargs) in zip(axes, panels):
        axis.imshow(array, **kwargs)
        axis.set_title(title)
        axis.axis('off')
    figure.tight_layout()
    return figure


def log_figure(module: LightningModule, tag: str, figure: Figure) -> None:
    """Log a figure through the module's logger when it can take figures, then close it.

    Args:
        module: the task.
        tag: name of the figure in the logger.
        figure: the figure.
    """
    logger = module.logger
    experiment = getattr(logger, 'experiment', None) if logger is not None else None
    if experiment is not None and hasattr(experiment, 'add_figure'):
        experiment.add_figure(tag, figure, global_step=module.global_step)
    plt.close(figure)


def plateau_optimizer(
    parameters: Any, lr: float, patience: int, monitor: str
) -> dict[str, Any]:
    """AdamW with a learning-rate plateau schedule on a validation metric.

    Epochs without validation (``check_val_every_n_epoch > 1``) leave the rate as it
    is instead of stopping the run.

    Args:
        parameters: parameters to optimise.
        lr: learning rate.
        patience: validations without improvement before the rate drops.
        monitor: metric to watch.

    Returns:
        Lightning's optimizer configuration.
    """
    optimizer = torch.optim.AdamW(parameters, lr=lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=patience)
    return {
        'optimizer': optimizer,
        'lr_scheduler': {'scheduler': scheduler, 'monitor': monitor, 'strict': False},
    }


def timed_trainer(minutes: float, work_dir: Path, **kwargs: Any) -> Trainer:
    """A Trainer that stops after a wall-clock budget, with no logger or checkpoints.

    Args:
        minutes: wall-clock budget of ``fit``.
        work_dir: Lightning's ``default_root_dir``.
        **kwargs: further :class:`~lightning.pytorch.Trainer` arguments
            (``max_epochs`` defaults to -1: the budget alone stops training).

    Returns:
        the trainer.
    """
    kwargs.setdefault('max_epochs', -1)
    return Trainer(
        max_time=timedelta(minutes=minutes),
        default_root_dir=os.fspath(work_dir),
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **kwargs,
    )
