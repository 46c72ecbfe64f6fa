"""Losses of the SpecDM tasks."""

import torch
from torch import Tensor


def spectral_angle_loss(
    prediction: Tensor, target: Tensor, eps: float = 1e-6
) -> Tensor:
    """Mean spectral angle (radians) between predicted and target spectra.

    Args:
        prediction: predicted images, band axis at -3 ([..., C, H, W]).
        target: target images of the same shape, in physical units.
        eps: clamp margin that keeps the arccos gradient finite.

    Returns:
        the mean angle over all pixels, in radians.
    """
    dot = (prediction * target).sum(dim=-3)
    norms = prediction.norm(dim=-3) * target.norm(dim=-3)
    cosine = dot / norms.clamp_min(eps)
    return torch.arccos(cosine.clamp(-1 + eps, 1 - eps)).mean()
