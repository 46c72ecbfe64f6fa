"""Helpers shared by the datamodules."""

from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate
from torchgeo.datasets import GeoDataset
from torchgeo.samplers import BatchGeoSampler

from ..datasets.validation import InvalidInputError
from ..types import Sample

#: The splits of a datamodule, in the order the tasks look for data.
SPLITS = ('train', 'val', 'test', 'predict')


def band_statistics(
    dataset: Dataset[Sample], num_samples: int = 32
) -> tuple[Tensor, Tensor]:
    """Per-band mean and standard deviation over the first samples of a dataset.

    Args:
        dataset: a dataset whose samples hold ``image`` as [C, H, W] or [T, C, H, W].
        num_samples: how many samples to read (all, if the dataset is smaller).

    Returns:
        mean and standard deviation, each [C], float32.
    """
    count = min(num_samples, len(dataset))  # type: ignore[arg-type]
    return image_statistics(dataset[index]['image'] for index in range(count))


def image_statistics(images: Any) -> tuple[Tensor, Tensor]:
    """Per-band mean and standard deviation over every pixel of some images.

    Args:
        images: an iterable of images, [C, H, W], [T, C, H, W] or batches of either
            ([B, C, H, W]; the band axis is always at -3).

    Returns:
        mean and standard deviation, each [C], float32.
    """
    pixels = [
        image.reshape(-1, *image.shape[-3:]).transpose(0, 1).flatten(1)
        for image in images
    ]
    return pixel_statistics(torch.cat(pixels, dim=1))


def pixel_statistics(image: Tensor) -> tuple[Tensor, Tensor]:
    """Per-band mean and standard deviation over every pixel of an image.

    Args:
        image: [C, ...] values, band axis first.

    Returns:
        mean and standard deviation, each [C], float32 (computed in float64; the
        standard deviation is at least 1e-6).
    """
    pixels = image.flatten(1).to(torch.float64)
    mean, std = pixels.mean(dim=1), pixels.std(dim=1).clamp_min(1e-6)
    return mean.float(), std.float()


def split_dataset(datamodule: LightningDataModule, split: str) -> Any:
    """The dataset a datamodule serves for a split, after ``setup``.

    Args:
        datamodule: the datamodule.
        split: 'train', 'val', 'test' or 'predict'.

    Returns:
        its ``<split>_dataset``, else its ``dataset``, else None.
    """
    for name in (f'{split}_dataset', 'dataset'):
        dataset = getattr(datamodule, name, None)
        if dataset is not None:
            return dataset
    return None


def split_sampler(datamodule: LightningDataModule, split: str) -> Sampler[Any] | None:
    """The sampler a datamodule draws a split with, as GeoDataModules hold them.

    Args:
        datamodule: the datamodule, after ``setup``.
        split: 'train', 'val', 'test' or 'predict'.

    Returns:
        its ``<split>_batch_sampler``, ``<split>_sampler``, ``batch_sampler`` or
        ``sampler`` (the first that is set, in TorchGeo's order), or None.
    """
    for name in (
        f'{split}_batch_sampler',
        f'{split}_sampler',
        'batch_sampler',
        'sampler',
    ):
        sampler = getattr(datamodule, name, None)
        if isinstance(sampler, Sampler):
            return sampler
    return None


def sample_loader(
    datamodule: LightningDataModule,
    split: str = 'train',
    batch_size: int | None = None,
    num_workers: int = 0,
) -> DataLoader[Sample]:
    """A loader over one split that reads the samples the way the datamodule does.

    A GeoDataModule's datasets are indexed by the bounding boxes its sampler draws
    (``len()`` of a GeoDataset counts files, not samples), so the loader uses the
    datamodule's own sampler and collate function; a NonGeoDataModule's dataset is
    read in order, 0, 1, 2, ... Nothing is augmented or normalised.

    Args:
        datamodule: the datamodule, after ``setup``.
        split: 'train', 'val', 'test' or 'predict'.
        batch_size: samples per batch (default: the datamodule's ``batch_size``;
            a batch sampler keeps its own).
        num_workers: loader processes.

    Returns:
        the loader.

    Raises:
        InvalidInputError: if the split has no dataset, or a GeoDataset no sampler.
    """
    source = type(datamodule).__name__
    dataset = split_dataset(datamodule, split)
    if dataset is None:
        raise InvalidInputError(
            f'{source}: setup() created no {split} dataset, so SpecDM cannot read '
            'its samples. Call setup() first, or fix the datamodule.'
        )
    collate = getattr(datamodule, 'collate_fn', None) or default_collate
    size = batch_size or getattr(datamodule, 'batch_size', None) or 1
    sampler = split_sampler(datamodule, split)
    if isinstance(sampler, BatchGeoSampler):
        return DataLoader(
            dataset, batch_sampler=sampler, collate_fn=collate, num_workers=num_workers
        )
    if sampler is None and isinstance(dataset, GeoDataset):
        raise InvalidInputError(
            f'{source}: its {split} dataset is a {type(dataset).__name__} (a '
            'GeoDataset, indexed by bounding boxes) but the datamodule sets no '
            f'{split}_sampler. Set {split}_sampler in setup(), e.g. '
            'torchgeo.samplers.RandomPatchSampler, as GeoDataModule does.'
        )
    return DataLoader(
        dataset,
        batch_size=size,
        sampler=sampler,
        shuffle=False,
        collate_fn=collate,
        num_workers=num_workers,
    )
