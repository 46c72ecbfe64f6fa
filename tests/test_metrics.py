"""Fidelity metrics on cases whose answer is known."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from torchgeo_specdm.metrics import (
    alignment_scores,
    band_wasserstein,
    class_histogram_tv,
    class_mean_spectra,
    class_spectrum_sam,
    frechet_distance,
    nearest_neighbour_distances,
    spectral_angle_degrees,
)


def test_spectral_angle_known_values() -> None:
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    b = torch.tensor([[0.0, 1.0], [2.0, 2.0]])
    torch.testing.assert_close(
        spectral_angle_degrees(a, b), torch.tensor([90.0, 0.0]), atol=1e-3, rtol=0
    )


def test_class_spectra_and_sam() -> None:
    image = torch.zeros(1, 2, 2, 2)
    image[0, :, 0, :] = torch.tensor([1.0, 0.0])[
        :, None
    ]  # class 0 row: spectrum (1, 0)
    image[0, :, 1, :] = torch.tensor([0.0, 1.0])[
        :, None
    ]  # class 1 row: spectrum (0, 1)
    mask = torch.tensor([[[0, 0], [1, 1]]])
    spectra = class_mean_spectra(image, mask, 3)
    torch.testing.assert_close(spectra[:2], torch.eye(2))
    assert spectra[2].isnan().all()
    # Swapping the classes' spectra gives a 90-degree angle for both classes.
    assert math.isclose(
        float(class_spectrum_sam(image, 1 - mask, image, mask, 3)), 90.0, abs_tol=1e-3
    )
    assert float(class_spectrum_sam(image * 3, mask, image, mask, 3)) < 1e-2


def test_change_pairs_use_the_mask_for_both_dates() -> None:
    image = torch.ones(1, 2, 3, 4, 4)
    mask = torch.zeros(1, 1, 4, 4, dtype=torch.long)
    assert class_mean_spectra(image, mask, 2).shape == (2, 3)


def test_histogram_tv() -> None:
    a = torch.tensor([0, 0, 1, 1])
    assert float(class_histogram_tv(a, a, 3)) == 0
    assert (
        float(
            class_histogram_tv(
                torch.zeros(4, dtype=torch.long), torch.ones(4, dtype=torch.long), 2
            )
        )
        == 1
    )
    assert math.isclose(
        float(class_histogram_tv(torch.tensor([0, 0, 0, 1]), a, 2)), 0.25
    )


def test_band_wasserstein_of_a_shift() -> None:
    generator = torch.Generator().manual_seed(0)
    real = torch.randn(4, 2, 32, 32, generator=generator)
    shifted = real.clone()
    shifted[:, 1] += 3
    distances = band_wasserstein(shifted, real)
    assert float(distances[0]) < 1e-6
    assert math.isclose(float(distances[1]), 3.0, rel_tol=1e-4)


def test_alignment_scores() -> None:
    fake = torch.tensor([[[0, 0], [1, 2]], [[0, 0], [0, 0]]])
    prediction = torch.tensor([[[0, 0], [1, 1]], [[1, 1], [1, 1]]])
    scores = alignment_scores(fake, prediction, 3)
    # First pair: IoU(0) = 1, IoU(1) = 1/2, IoU(2) = 0 -> 0.5; second: no overlap -> 0.
    torch.testing.assert_close(scores, torch.tensor([0.5, 0.0]))
    change = torch.tensor([[[[1, 1], [0, 0]]], [[[0, 0], [0, 0]]]])
    predicted = torch.tensor([[[[1, 0], [0, 0]]], [[[0, 0], [0, 0]]]])
    # F1 = 2 * 1 / (2 + 1); both empty -> 0: no change to agree on.
    torch.testing.assert_close(
        alignment_scores(change, predicted, 2), torch.tensor([2 / 3, 0.0])
    )


def test_frechet_distance_known_answers() -> None:
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(4000, 3, generator=generator)
    assert float(frechet_distance(a, a)) < 1e-6
    shifted = a + torch.tensor([2.0, 0.0, 0.0])
    assert math.isclose(float(frechet_distance(a, shifted)), 4.0, rel_tol=1e-4)
    # Two Gaussians with variances 1 and 4 in 1-D: (1 - 2)^2 = 1.
    x = torch.randn(200_000, 1, generator=generator)
    assert float(frechet_distance(x, 2 * x)) == pytest.approx(1.0, rel=0.01)


def test_memorisation_check_finds_copies() -> None:
    generator = torch.Generator().manual_seed(0)
    train = torch.randn(20, 3, 8, 8, generator=generator)
    copies = train[:5].clone()
    novel = torch.randn(5, 3, 8, 8, generator=generator)
    assert nearest_neighbour_distances(copies, train).max() == 0
    baseline = nearest_neighbour_distances(train, train, exclude_self=True)
    assert baseline.min() > 0
    assert nearest_neighbour_distances(novel, train).min() > 0.5 * baseline.median()


def test_frechet_distance_with_covariances_that_do_not_commute() -> None:
    # Gaussians stretched along directions 60 degrees apart: S_a S_b != S_b S_a.
    generator = torch.Generator().manual_seed(0)
    scale = torch.diag(torch.tensor([3.0, 0.1, 1.0]))
    angle = torch.tensor(math.pi / 3)
    rotation = torch.eye(3)
    rotation[:2, :2] = torch.stack(
        [
            torch.stack([angle.cos(), -angle.sin()]),
            torch.stack([angle.sin(), angle.cos()]),
        ]
    )
    a = torch.randn(4000, 3, generator=generator) @ scale
    b = torch.randn(5000, 3, generator=generator) @ (rotation @ scale).T
    b += torch.tensor([1.0, -2.0, 0.5])
    mean_a, mean_b = a.double().mean(0).numpy(), b.double().mean(0).numpy()
    cov_a, cov_b = np.cov(a.double().numpy().T), np.cov(b.double().numpy().T)
    product = cov_a @ cov_b
    assert np.abs(product - cov_b @ cov_a).max() > 0.5 * np.abs(product).max()
    shift = float(np.sum((mean_a - mean_b) ** 2))
    expected = shift + float(
        np.trace(cov_a + cov_b - 2 * scipy.linalg.sqrtm(product).real)
    )
    # The shortcut that is only right for commuting covariances is far off here.
    root_a, root_b = scipy.linalg.sqrtm(cov_a).real, scipy.linalg.sqrtm(cov_b).real
    shortcut = shift + float(np.trace(cov_a + cov_b - 2 * root_a @ root_b))
    assert abs(shortcut - expected) > 0.2 * expected
    assert float(frechet_distance(a, b)) == pytest.approx(expected, rel=1e-5)
    assert float(frechet_distance(b, a)) == pytest.approx(expected, rel=1e-5)


def test_alignment_scores_leave_out_the_ignore_label() -> None:
    # Class 0 is unlabelled: the model never predicts it, so it must not count.
    fake = torch.tensor([[[0, 0, 1, 2]], [[0, 0, 0, 0]]])
    prediction = torch.tensor([[[1, 2, 1, 2]], [[1, 1, 1, 1]]])
    plain = alignment_scores(fake, prediction, 3)
    ignored = alignment_scores(fake, prediction, 3, ignore_index=0)
    # Pair 0: classes 1 and 2 agree on the labelled pixels: IoU 1 for both.
    assert ignored[0] == pytest.approx(1.0)
    assert plain[0] < 0.5
    # Pair 1 holds no labelled pixel: nothing to agree on.
    assert ignored[1] == 0
