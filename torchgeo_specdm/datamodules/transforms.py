"""Batch augmentations that keep images, dates and masks aligned."""

from typing import Any

import kornia.augmentation as K
import torch
from einops import rearrange
from torch import Tensor, nn

from ..types import Sample


def segmentation_augmentation(
    mean: Tensor, std: Tensor, train: bool
) -> K.AugmentationSequential:
    """Normalisation, and for training random flips and 90 degree rotations.

    Args:
        mean: per-band mean, [C].
        std: per-band standard deviation, [C].
        train: add the random geometric augmentations.

    Returns:
        a kornia augmentation over ``{'image': [B, C, H, W], 'mask': [B, H, W]}``.
    """
    augs: list[Any] = [K.Normalize(mean=mean, std=std)]
    if train:
        augs += [
            K.RandomHorizontalFlip(p=0.5),
            K.RandomVerticalFlip(p=0.5),
            K.RandomRotation90(times=(0, 3), p=0.5),
        ]
    return K.AugmentationSequential(*augs, data_keys=None, keepdim=True)


class BitemporalAugmentation(nn.Module):
    """Apply the same normalisation and geometric augmentation to both dates and mask.

    The dates are folded into the channel axis, so one draw of each random
    augmentation moves both images and the change mask together.

    .. versionadded:: 0.1
    """

    def __init__(self, mean: Tensor, std: Tensor, train: bool) -> None:
        """Initialize a new BitemporalAugmentation instance.

        Args:
            mean: per-band mean, [C].
            std: per-band standard deviation, [C].
            train: add random flips and 90 degree rotations.
        """
        super().__init__()
        self.mean = mean
        self.std = std
        self.train_mode = train

    def forward(self, batch: Sample) -> Sample:
        """Augment a batch.

        Args:
            batch: ``{'image': [B, T, C, H, W], 'mask': [B, 1, H, W], ...}``.

        Returns:
            the augmented batch, in the same layout.
        """
        image = batch['image']
        dates = image.shape[1]
        aug = segmentation_augmentation(
            self.mean.repeat(dates), self.std.repeat(dates), self.train_mode
        )
        folded = {
            'image': rearrange(image, 'b t c h w -> b (t c) h w'),
            'mask': batch['mask'][:, 0],
        }
        folded = aug(folded)
        out = dict(batch)
        out['image'] = rearrange(folded['image'], 'b (t c) h w -> b t c h w', t=dates)
        out['mask'] = folded['mask'].to(torch.long).unsqueeze(1)
        return out
