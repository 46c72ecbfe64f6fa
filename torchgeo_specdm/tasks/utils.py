"""Helpers shared by the SpecDM tasks: reading the data's shape, plotting, logging."""

import os
import warnings
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Literal

import matplotlib.pyplot as plt
import torch
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from matplotlib.figure import Figure
from torch import Tensor
from torch.utils.data import Subset

from ..datamodules.utils import SPLITS, sample_loader, split_dataset
from ..datasets.hyperspectral import nearest_bands
from ..datasets.plotting import class_colormap, false_colour
from ..datasets.validation import InvalidInputError
from ..types import Path, Sample

#: What a task reads from a datamodule: size, in_channels, num_classes, num_images,
#: mean, std, bands, wavelengths and class_names (the task's own settings), plus
#: ``class_source`` ('declared' when the datamodule or its dataset names its class
#: count, 'labels' when it was read from the labels of the first training samples)
#: and ``max_label`` (the largest label in the samples read).
DataSpec = dict[str, Any]

RGB_NAMES = ('B04', 'B03', 'B02')

#: Training samples whose labels are read when a datamodule gives no class count.
LABEL_SAMPLES = 64

#: Most classes that labels alone may imply; above it they are taken for a nodata value.
MAX_INFERRED_CLASSES = 256


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


def _unwrap(dataset: Any) -> Any:
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return dataset


def _declared_classes(datamodule: LightningDataModule, dataset: Any) -> Any:
    """Class count and names the datamodule (or its dataset, or its mask layer) gives."""
    names = getattr(datamodule, 'class_names', None)
    count = getattr(datamodule, 'num_classes', None)
    datasets = [_unwrap(dataset)]
    # An IntersectionDataset (image & mask layers) holds its parts in .datasets.
    datasets += list(getattr(datasets[0], 'datasets', None) or [])
    for part in datasets:
        if names is None:
            classes = getattr(part, 'classes', None)
            if isinstance(classes, dict):
                classes = list(classes.values())
            if isinstance(classes, list | tuple) and len(classes) > 1:
                names = classes
    if count is None and names is not None:
        count = len(names)
    return count, names


def _serve(datamodule: LightningDataModule, split: str, batch: Sample) -> Sample:
    """Transform a batch as the datamodule does after transfer to the device.

    Under a trainer this is the datamodule's own ``on_after_batch_transfer`` (its
    augmentation, and whatever else it does to the batch, e.g. SpaceNet's label
    shift); without one, its ``<split>_aug`` or ``aug``.

    Args:
        datamodule: the datamodule.
        split: the split the batch comes from.
        batch: a collated batch.

    Returns:
        the batch as the model sees it.
    """
    batch = dict(batch)
    if getattr(datamodule, 'trainer', None) is not None:
        served: Sample = datamodule.on_after_batch_transfer(batch, 0)
        return served
    aug = getattr(datamodule, f'{split}_aug', None) or getattr(datamodule, 'aug', None)
    return aug(batch) if aug is not None else batch


def _has_loader(datamodule: LightningDataModule, split: str) -> bool:
    try:
        sample_loader(datamodule, split)
    except InvalidInputError:
        return False
    return True


def _splits(datamodule: LightningDataModule) -> list[str]:
    """The splits to read, the one the running trainer is about to serve first."""
    trainer = getattr(datamodule, 'trainer', None)
    order = list(SPLITS)
    if trainer is not None:
        for state, split in (
            ('training', 'train'),
            ('validating', 'val'),
            ('testing', 'test'),
            ('predicting', 'predict'),
        ):
            if getattr(trainer, state, False):
                order.remove(split)
                order.insert(0, split)
                break
    return [split for split in order if split_dataset(datamodule, split) is not None]


def _read_batches(
    datamodule: LightningDataModule, split: str, samples: int
) -> tuple[Sample, Tensor, int]:
    """The first batches of a split, as the model sees them.

    Args:
        datamodule: the datamodule, after ``setup``.
        split: the split to read.
        samples: how many samples to read the labels of.

    Returns:
        the first batch after the datamodule's transforms (see :func:`_serve`), the
        labels of the samples read (flattened) and the number of samples read.

    Raises:
        InvalidInputError: if the samples lack ``image`` or ``mask``, or the split
            holds none.
    """
    batch_size = 1 if samples == 1 else None
    loader = sample_loader(datamodule, split, batch_size=batch_size)
    first: Sample | None = None
    masks: list[Tensor] = []
    count = 0
    for batch in loader:
        if 'image' not in batch or 'mask' not in batch:
            raise InvalidInputError(
                f'{type(datamodule).__name__}: samples hold {sorted(batch)}, but '
                "SpecDM needs both 'image' and 'mask'. Use a datamodule of image/mask "
                'pairs.'
            )
        batch = _serve(datamodule, split, batch)
        first = first if first is not None else batch
        masks.append(batch['mask'])
        count += len(batch['mask'])
        if count >= samples:
            break
    if first is None:
        raise InvalidInputError(
            f'{type(datamodule).__name__}: its {split} split holds no samples. Check '
            'the dataset root, or, for a GeoDataModule, that the patch size fits in '
            'the area where images and masks overlap.'
        )
    return first, torch.cat([mask.flatten() for mask in masks]), count


def infer_data_spec(datamodule: LightningDataModule) -> DataSpec:
    """Read band count, class count, dates, normalisation and size from a datamodule.

    Works with any TorchGeo datamodule whose batches carry ``image`` ([C, H, W], or
    [2, C, H, W] for change pairs) and ``mask``: a NonGeoDataModule's samples are
    read in order, a GeoDataModule's through its own sampler and collate function
    (its datasets are indexed by bounding boxes, not by 0, 1, 2, ...). The size is
    that of a batch after the datamodule's training augmentation, so it is the patch
    size the models are trained on.

    The class count is the datamodule's ``num_classes`` or the length of its (or its
    dataset's, or its mask layer's) ``class_names``/``classes``. When none is given,
    it is read from the labels of the first :data:`LABEL_SAMPLES` training
    samples: largest label + 1, at least 2. 0/1 masks are binary (TorchGeo's
    convention); other counts come with a warning, since the first samples may
    not hold every class.

    Args:
        datamodule: a datamodule on which ``setup`` has run.

    Returns:
        the data spec.

    Raises:
        InvalidInputError: if the samples lack ``image`` or ``mask``, have the wrong
            shape, or the labels are negative or too large to be class indices.
    """
    source = type(datamodule).__name__
    splits = _splits(datamodule)
    if not splits:
        raise InvalidInputError(
            f'{source}: setup() created no dataset, so the task cannot read the band '
            'and class counts. Pass in_channels, num_classes and num_images to the '
            'task, or fix the datamodule.'
        )
    # A GeoDataModule sets samplers for the stage only: read a split that has one.
    split = next((name for name in splits if _has_loader(datamodule, name)), splits[0])
    dataset = split_dataset(datamodule, split)
    num_classes, names = _declared_classes(datamodule, dataset)
    samples = 1 if num_classes is not None else LABEL_SAMPLES
    batch, labels, count = _read_batches(datamodule, split, samples)
    image = batch['image'][0]
    if image.ndim not in (3, 4) or (image.ndim == 4 and image.shape[0] != 2):
        raise InvalidInputError(
            f'{source}: sample image has shape {tuple(image.shape)}; expected '
            '[C, H, W] or, for change pairs, [2, C, H, W].'
        )
    if labels.is_floating_point() and not bool((labels == labels.round()).all()):
        raise InvalidInputError(
            f'{source}: masks hold non-integer values, but SpecDM needs class indices. '
            'Use a segmentation or change-detection datamodule (not a regression one).'
        )
    low, high = int(labels.min()), int(labels.max())
    if low < 0:
        raise InvalidInputError(
            f'{source}: masks hold the label {low}; class indices start at 0. Remap '
            'negative (ignore) labels to a class of their own before training SpecDM.'
        )
    num_images = 2 if image.ndim == 4 else 1
    channels = int(image.shape[-3])
    class_source = 'declared'
    if num_classes is None:
        if high + 1 > MAX_INFERRED_CLASSES:
            raise InvalidInputError(
                f'{source} does not say how many classes its masks have, and they '
                f'hold labels up to {high}, which looks like a nodata value rather '
                'than a class. Set --model.init_args.num_classes (or a num_classes '
                'attribute on the datamodule), and remap the nodata value to a class.'
            )
        num_classes, class_source = max(2, high + 1), 'labels'
        if high != 1:
            # 0/1 masks are binary, TorchGeo's convention; anything else may be
            # fewer classes than the data holds.
            warnings.warn(
                f'{source} does not say how many classes its masks have; the labels '
                f'of the first {count} {split} samples span [{low}, {high}], so '
                f'num_classes={num_classes}. Set --model.init_args.num_classes if '
                'the data holds more classes.',
                UserWarning,
                stacklevel=2,
            )
        if num_images == 2 and num_classes == 2:
            names = ('no change', 'change')
    base = _unwrap(dataset)
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
        'class_names': [str(name) for name in names]
        if names is not None and len(names) == num_classes
        else None,
        'class_source': class_source,
        'max_label': high,
    }


def check_data_spec(
    spec: DataSpec,
    hparams: Any,
    origin: Literal['checkpoint', 'arguments'] = 'checkpoint',
) -> None:
    """Check that a task's sizes match the data it is given.

    Band count and dates must match. A class count may be larger than the data's
    (the extra classes stay unused, with a warning), never smaller than the labels
    seen or than the count the datamodule declares.

    Args:
        spec: what the datamodule holds, from :func:`infer_data_spec`.
        hparams: the task's (or its VAE's) hyperparameters.
        origin: where the sizes come from, for the fix the message suggests:
            'checkpoint' (a trained model) or 'arguments' (the task's arguments).

    Raises:
        InvalidInputError: if band count or dates differ, the image size is not a
            multiple of the downsampling factor, or the classes are fewer than the
            data needs.
    """
    settings = (
        f'(in_channels={hparams["in_channels"]}, num_classes='
        f'{hparams["num_classes"]}, num_images={hparams["num_images"]})'
    )
    if origin == 'checkpoint':
        fix = (
            'Use a checkpoint trained on this data, or the data the checkpoint was '
            'trained on.'
        )
    else:
        fix = (
            'Leave --model.init_args.{key} unset to read it from the data, or set it '
            'to {value}.'
        )
    for key, meaning in (('in_channels', 'bands'), ('num_images', 'images per sample')):
        if hparams[key] is not None and hparams[key] != spec[key]:
            raise InvalidInputError(
                f'the model was built for {hparams[key]} {meaning} {settings} but the '
                f'datamodule gives {spec[key]}. ' + fix.format(key=key, value=spec[key])
            )
    factor = hparams.get('downsampling_factor')
    height, width = spec['size']
    if factor and (height % factor or width % factor):
        raise InvalidInputError(
            f'the datamodule serves {height} x {width} px images, which '
            f'downsampling_factor={factor} does not divide. Crop or pad them to a '
            f'multiple of {factor} (for a GeoDataModule, set patch_size to one), or '
            'set --model.init_args.downsampling_factor to a factor of both sides.'
        )
    classes = hparams['num_classes']
    if classes is None:
        return
    needed = spec['num_classes'] if spec['class_source'] == 'declared' else 0
    needed = max(needed, spec['max_label'] + 1)
    if classes < needed:
        given = (
            f'{spec["num_classes"]}'
            if spec['class_source'] == 'declared'
            else f'labels up to {spec["max_label"]}'
        )
        raise InvalidInputError(
            f'the model was built for {classes} classes {settings} but the '
            f'datamodule gives {given}. '
            + fix.format(key='num_classes', value=f'at least {needed}')
        )
    if classes > spec['num_classes']:
        seen = (
            'declares' if spec['class_source'] == 'declared' else 'shows in its labels'
        )
        warnings.warn(
            f'the model has {classes} classes but the datamodule {seen} '
            f'{spec["num_classes"]}: classes {spec["num_classes"]}..{classes - 1} '
            'are kept, and stay unused unless the data holds them.',
            UserWarning,
            stacklevel=2,
        )


def resolve_data_spec(spec: DataSpec, hparams: Any) -> None:
    """Fill the task's unset sizes from the data; the task's own settings win.

    Class names are padded (``class_<i>``) when the task asks for more classes than
    the datamodule names.

    Args:
        spec: what the datamodule holds, from :func:`infer_data_spec`.
        hparams: the task's hyperparameters, updated in place.

    Raises:
        InvalidInputError: if a setting contradicts the data (see
            :func:`check_data_spec`).
    """
    check_data_spec(spec, hparams, origin='arguments')
    for key, value in spec.items():
        if key in hparams and hparams[key] is None:
            hparams[key] = value
    names, classes = hparams['class_names'], hparams['num_classes']
    if names is not None and len(names) < classes:
        hparams['class_names'] = list(names) + [
            f'class_{index}' for index in range(len(names), classes)
        ]


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


def steps_trainer(max_steps: int, work_dir: Path, **kwargs: Any) -> Trainer:
    """A quiet Trainer that stops after ``max_steps`` optimizer steps, never validating.

    No logger, checkpoints, model summary, progress bar or validation pass: what
    benchmarks and tests that train for a fixed step count need.

    Args:
        max_steps: optimizer steps of ``fit``.
        work_dir: Lightning's ``default_root_dir``.
        **kwargs: further :class:`~lightning.pytorch.Trainer` arguments.

    Returns:
        the trainer.
    """
    return Trainer(
        max_steps=max_steps,
        max_epochs=-1,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        default_root_dir=os.fspath(work_dir),
        **kwargs,
    )


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
