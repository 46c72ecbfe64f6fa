"""Fidelity metrics: how close generated image-mask pairs are to real ones."""

import contextlib
import io
import warnings
from typing import Any

import torch
from torch import Tensor
from torchmetrics.image.kid import KernelInceptionDistance


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
    generated_mask: Tensor,
    predicted_mask: Tensor,
    num_classes: int,
    ignore_index: int | None = None,
) -> Tensor:
    """Agreement between each generated mask and a real-trained model's prediction.

    Segmentation uses the mean IoU over the classes present in either mask.
    Change detection (``num_classes == 2``) uses the F1 score of the change
    class; a pair where neither mask holds change scores 0, because it carries
    no evidence that the image shows the mask's change, so a judge that
    predicts nothing cannot score well.

    Args:
        generated_mask: [N, H, W] or [N, 1, H, W] generated labels.
        predicted_mask: the model's labels for the generated images, same shape.
        num_classes: number of classes.
        ignore_index: segmentation label the model was trained to ignore (e.g.
            unlabelled): pixels the generated mask gives it are left out, and it
            is not a class of the mean, since the model never learnt to predict it.
            A pair with nothing else scores 0.

    Returns:
        [N] scores in [0, 1].
    """
    generated = generated_mask.reshape(len(generated_mask), -1).long()
    predicted = predicted_mask.reshape(len(predicted_mask), -1).long()
    if num_classes == 2:
        true_positive = ((generated == 1) & (predicted == 1)).sum(1).double()
        total = (generated == 1).sum(1) + (predicted == 1).sum(1)
        return (2 * true_positive / total.clamp_min(1)).float()
    scores = []
    for fake, pred in zip(generated, predicted):
        if ignore_index is not None:
            kept = fake != ignore_index
            fake, pred = fake[kept], pred[kept]
        ious = []
        for label in range(num_classes):
            if label == ignore_index:
                continue
            a, b = fake == label, pred == label
            union = (a | b).sum()
            if union > 0:
                ious.append((a & b).sum() / union)
        scores.append(
            torch.stack(ious).double().mean() if ious else torch.tensor(0.0).double()
        )
    return torch.stack(scores).float()


def pooled_change_f1(generated_mask: Tensor, predicted_mask: Tensor) -> float:
    """F1 of the change class over every pixel of every pair at once.

    Args:
        generated_mask: generated 0/1 change masks, any shape.
        predicted_mask: the judge's 0/1 labels for the generated images.

    Returns:
        the F1 score; 0 when neither holds change.
    """
    generated, predicted = generated_mask.flatten() == 1, predicted_mask.flatten() == 1
    total = int(generated.sum() + predicted.sum())
    return 2 * int((generated & predicted).sum()) / total if total else 0.0


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


def projected_frechet_distance(
    real: Tensor, fake: Tensor, samples_per_dimension: int = 10
) -> dict[str, Any]:
    """Fréchet distance on the leading principal components of the real features.

    A covariance of D features needs well over D samples: with 512 encoder
    features and a few dozen samples it is rank-deficient and the distance is
    mostly bias. Projecting both sets onto the first ``d`` principal axes of the
    real features, with ``d = min(N) // samples_per_dimension``, keeps the
    estimate well posed.

    Args:
        real: [N, D] real features.
        fake: [M, D] generated features.
        samples_per_dimension: samples required per projected dimension.

    Returns:
        ``value`` (``None`` when fewer than ``2 * samples_per_dimension``
        samples), ``dimensions``, ``n_real`` and ``n_fake``.
    """
    count = min(len(real), len(fake))
    dimensions = min(real.shape[1], count // samples_per_dimension)
    result: dict[str, Any] = {
        'value': None,
        'dimensions': dimensions,
        'n_real': len(real),
        'n_fake': len(fake),
    }
    if dimensions < 2:
        return result
    centre = real.double().mean(0)
    _, _, axes = torch.linalg.svd(real.double() - centre, full_matrices=False)
    basis = axes[:dimensions].T
    result['value'] = float(
        frechet_distance(
            (real.double() - centre) @ basis, (fake.double() - centre) @ basis
        )
    )
    return result


def standardise_features(real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
    """Z-score both feature sets, then put every sample on one sphere.

    A downstream encoder's pooled features are not of unit scale like the
    Inception features KID was designed for: a few large activations then rule
    the cubic kernel and the nearest-neighbour balls of precision / recall. Each
    dimension is centred on the real mean and divided by the root of the mean of
    the two sets' variances (as Cohen's d pools them; with the real set's alone a
    dimension nearly constant over a few real samples is blown up without bound),
    so every dimension weighs alike and no figure depends on how a feature
    happens to be scaled. Each sample is then scaled to norm sqrt(D): the cubic
    kernel becomes (cos + 1)^3, bounded, so a few outlying patches cannot rule
    the figure (on OSCD the largest real sample had 240 times the mean squared
    norm, and KID between two halves of the real set read 76 +- 201). Dimensions
    constant over both sets are only centred.

    Args:
        real: [N, D] real features.
        fake: [M, D] generated features.

    Returns:
        both sets, standardised, each row of norm sqrt(D) (zero rows stay zero).
    """
    mean = real.mean(dim=0, keepdim=True)
    std = ((real.var(dim=0, keepdim=True) + fake.var(dim=0, keepdim=True)) / 2).sqrt()
    std = torch.where(std > 0, std, torch.ones_like(std))

    def on_sphere(features: Tensor) -> Tensor:
        norm = features.norm(dim=1, keepdim=True)
        return features * (features.shape[1] ** 0.5 / norm.clamp_min(1e-12))

    return on_sphere((real - mean) / std), on_sphere((fake - mean) / std)


def kernel_inception_distance(
    real: Tensor, fake: Tensor, subsets: int = 100, subset_size: int | None = None
) -> dict[str, Any]:
    """Unbiased KID (Bińkowski et al. 2018) of two feature sets, with torchmetrics.

    The cubic polynomial kernel MMD is unbiased at any sample size, so unlike the
    Fréchet distance it can be compared across generators at small N.

    Args:
        real: [N, D] real features.
        fake: [M, D] generated features.
        subsets: random subsets the mean and std are taken over.
        subset_size: samples per subset (default: half the smaller set, so the
            subsets differ and their std means something).

    Returns:
        ``mean``, ``std`` (over subsets), ``subset_size``, ``n_real`` and ``n_fake``.
    """
    size = subset_size or max(2, min(len(real), len(fake)) // 2)
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='.*will save all extracted features')
        metric = KernelInceptionDistance(
            feature=torch.nn.Identity(), subsets=subsets, subset_size=size
        )
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        mean, std = metric.compute()
    return {
        'mean': float(mean),
        'std': float(std),
        'subset_size': size,
        'n_real': len(real),
        'n_fake': len(fake),
    }


def kid_between_real_halves(real: Tensor, seed: int = 0) -> dict[str, Any]:
    """KID between two seeded random halves of the real set: the noise floor.

    A generator as good as the real data scores about this; read a generator's
    KID against it, with its std.

    Args:
        real: [N, D] real features (N >= 4), in the space the generator was scored.
        seed: seed of the split.

    Returns:
        as :func:`kernel_inception_distance`.
    """
    order = torch.randperm(len(real), generator=torch.Generator().manual_seed(seed))
    half = len(real) // 2
    return kernel_inception_distance(real[order[:half]], real[order[half:]])


def precision_recall_density_coverage(
    real: Tensor, fake: Tensor, nearest_k: int = 5
) -> dict[str, Any]:
    """Precision and recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020).

    Computed by the ``prdc`` package on k-nearest-neighbour balls around the real
    features.

    Args:
        real: [N, D] real features.
        fake: [M, D] generated features.
        nearest_k: the k of the neighbour balls.

    Returns:
        ``precision``, ``recall``, ``density``, ``coverage`` (``None`` when a set
        has no more than ``nearest_k + 1`` samples) and ``nearest_k``.
    """
    if min(len(real), len(fake)) <= nearest_k + 1:
        return dict.fromkeys(('precision', 'recall', 'density', 'coverage')) | {
            'nearest_k': nearest_k
        }
    # Imported here: prdc pulls in scikit-learn, which nothing else needs.
    from prdc import compute_prdc

    with contextlib.redirect_stdout(io.StringIO()):
        scores = compute_prdc(
            real.double().numpy(), fake.double().numpy(), nearest_k=nearest_k
        )
    return {key: float(value) for key, value in scores.items()} | {
        'nearest_k': nearest_k
    }


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
