"""Fidelity metrics: how close generated image-mask pairs are to real ones."""

import torch
from torch import Tensor


def _pixels(image: Tensor) -> Tensor:
    """Images [N, C, H, W] or [N, T, C, H, W] as pixels [P, C]."""
    channels = image.shape[-3]
    return (
        image.reshape(-1, channels, *image.shape[-2:])
        .permute(0, 2, 3, 1)
        .reshape(-1, channels)
    )


def _labels(mask: Tensor, image: Tensor) -> Tensor:
    """Masks repeated over the dates of their images, flattened like :func:`_pixels`."""
    dates = image.shape[1] if image.ndim == 5 else 1
    labels = mask.reshape(mask.shape[0], 1, *mask.shape[-2:]).expand(-1, dates, -1, -1)
    return labels.reshape(-1)


def class_mean_spectra(image: Tensor, mask: Tensor, num_classes: int) -> Tensor:
    """Mean spectrum of every class.

    Args:
        image: images, [N, C, H, W] or [N, T, C, H, W] (each date uses the mask).
        mask: class indices, [N, H, W] or [N, 1, H, W].
        num_classes: number of classes K.

    Returns:
        [K, C] mean spectra; NaN rows for classes with no pixel.
    """
    pixels = _pixels(image).double()
    labels = _labels(mask, image).long()
    sums = torch.zeros(num_classes, pixels.shape[1], dtype=torch.float64)
    sums.index_add_(0, labels, pixels)
    counts = torch.bincount(labels, minlength=num_classes).double()
    return (sums / counts[:, None]).float()


def spectral_angle_degrees(a: Tensor, b: Tensor) -> Tensor:
    """Spectral angle between spectra, in degrees.

    Args:
        a: spectra, [..., C].
        b: spectra, [..., C].

    Returns:
        the angles, [...].
    """
    cosine = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))
    return torch.rad2deg(torch.arccos(cosine.clamp(-1, 1)))


def class_spectrum_sam(
    fake_image: Tensor,
    fake_mask: Tensor,
    real_image: Tensor,
    real_mask: Tensor,
    num_classes: int,
) -> Tensor:
    """Mean over classes of the angle between synthetic and real class mean spectra.

    Args:
        fake_image: generated images.
        fake_mask: generated masks.
        real_image: real images, same band order and units.
        real_mask: real masks.
        num_classes: number of classes.

    Returns:
        the mean angle in degrees over the classes present in both sets (NaN if none).
    """
    angles = spectral_angle_degrees(
        class_mean_spectra(fake_image, fake_mask, num_classes),
        class_mean_spectra(real_image, real_mask, num_classes),
    )
    return angles[~angles.isnan()].mean()


def class_histogram(mask: Tensor, num_classes: int) -> Tensor:
    """Pixel frequency of every class.

    Args:
        mask: class indices.
        num_classes: number of classes.

    Returns:
        [K] frequencies summing to 1.
    """
    counts = torch.bincount(mask.reshape(-1).long(), minlength=num_classes).double()
    return (counts / counts.sum()).float()


def class_histogram_tv(
    fake_mask: Tensor, real_mask: Tensor, num_classes: int
) -> Tensor:
    """Total-variation distance between the class frequency histograms.

    Args:
        fake_mask: generated masks.
        real_mask: real masks.
        num_classes: number of classes (2 for change masks).

    Returns:
        half the L1 distance between the two histograms, in [0, 1].
    """
    difference = class_histogram(fake_mask, num_classes) - class_histogram(
        real_mask, num_classes
    )
    return 0.5 * difference.abs().sum()
