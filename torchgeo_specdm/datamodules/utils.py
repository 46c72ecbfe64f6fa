"""Helpers shared by the datamodules."""

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..types import Sample


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
    pixels = []
    for index in range(count):
        image = dataset[index]['image']
        pixels.append(image.reshape(-1, *image.shape[-3:]).transpose(0, 1).flatten(1))
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
