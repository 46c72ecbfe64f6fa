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


def band_wasserstein(
    fake_image: Tensor, real_image: Tensor, quantiles: int = 1000
) -> Tensor:
    """Per-band Wasserstein-1 distance between the two sets' value distributions.

    For 1-D distributions W1 is the mean absolute difference of the quantile
    functions, evaluated here on a regular grid of quantile levels.

    Args:
        fake_image: generated images, band axis at -3.
        real_image: real images, same bands and units.
        quantiles: quantile levels of the grid.

    Returns:
        [C] distances, in the images' units.
    """
    levels = (torch.arange(quantiles, dtype=torch.float64) + 0.5) / quantiles
    fake = _pixels(fake_image).double()
    real = _pixels(real_image).double()
    distances = [
        (_quantiles(fake[:, band], levels) - _quantiles(real[:, band], levels))
        .abs()
        .mean()
        for band in range(fake.shape[1])
    ]
    return torch.stack(distances).float()


def _quantiles(values: Tensor, levels: Tensor) -> Tensor:
    ordered = values.sort().values
    positions = (levels * len(ordered)).long().clamp(max=len(ordered) - 1)
    return ordered[positions]


def alignment_scores(
    generated_mask: Tensor, predicted_mask: Tensor, num_classes: int
) -> Tensor:
    """Agreement between each generated mask and a real-trained model's prediction.

    Segmentation uses the mean IoU over the classes present in either mask;
    change detection (``num_classes == 2``) uses the F1 score of the change
    class, 1 when both masks hold no change.

    Args:
        generated_mask: [N, H, W] or [N, 1, H, W] generated labels.
        predicted_mask: the model's labels for the generated images, same shape.
        num_classes: number of classes.

    Returns:
        [N] scores in [0, 1].
    """
    generated = generated_mask.reshape(len(generated_mask), -1).long()
    predicted = predicted_mask.reshape(len(predicted_mask), -1).long()
    if num_classes == 2:
        true_positive = ((generated == 1) & (predicted == 1)).sum(1).double()
        total = (generated == 1).sum(1) + (predicted == 1).sum(1)
        f1 = 2 * true_positive / total.clamp_min(1)
        return torch.where(total == 0, torch.ones_like(f1), f1).float()
    scores = []
    for fake, pred in zip(generated, predicted):
        ious = []
        for label in range(num_classes):
            a, b = fake == label, pred == label
            union = (a | b).sum()
            if union > 0:
                ious.append((a & b).sum() / union)
        scores.append(torch.stack(ious).double().mean())
    return torch.stack(scores).float()


def frechet_distance(features_a: Tensor, features_b: Tensor) -> Tensor:
    """Fréchet distance between Gaussians fitted to two feature sets.

    ``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))``, with the matrix square
    root taken through the eigenvalues of ``S_a^(1/2) S_b S_a^(1/2)``.

    Args:
        features_a: [N, D] features (e.g. a real-trained encoder's pooled output).
        features_b: [M, D] features.

    Returns:
        the distance (0 for identical distributions).
    """
    a, b = features_a.double(), features_b.double()
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = (
        torch.cov(a.T).reshape(a.shape[1], -1),
        torch.cov(b.T).reshape(b.shape[1], -1),
    )
    root_a = _sqrtm_psd(cov_a)
    cross = _sqrtm_psd(root_a @ cov_b @ root_a)
    distance = (mean_a - mean_b).square().sum() + torch.trace(cov_a + cov_b - 2 * cross)
    return distance.clamp_min(0).float()


def _sqrtm_psd(matrix: Tensor) -> Tensor:
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T


def nearest_neighbour_distances(
    queries: Tensor, references: Tensor, exclude_self: bool = False
) -> Tensor:
    """Euclidean distance from each query to its nearest reference.

    The memorisation check compares the distances of generated samples to their
    nearest training sample with the distances among real samples
    (``nearest_neighbour_distances(real, real, exclude_self=True)``): generated
    samples much closer to the training set than real samples are to each other
    are copies.

    Args:
        queries: [N, ...] samples, flattened to vectors.
        references: [M, ...] samples, flattened the same way.
        exclude_self: ignore zero-index matches (queries and references are one set).

    Returns:
        [N] distances.
    """
    q = queries.reshape(len(queries), -1).double()
    r = references.reshape(len(references), -1).double()
    distances = torch.cdist(q, r)
    if exclude_self:
        distances.fill_diagonal_(float('inf'))
    return distances.min(dim=1).values.float()
