"""Fixed-size patches cut from a few large scenes held in memory."""

from collections.abc import Callable, Sequence

import torch
from torch.utils.data import Dataset

from ..types import Sample
from .validation import InvalidInputError


class ScenePatches(Dataset[Sample]):
    """Patches of large scenes: random crops for training, a regular grid to evaluate.

    Scene datasets such as OSCD hold a handful of large image pairs. Reading them
    once and cutting many patches per epoch gives many optimizer steps per epoch
    without re-reading the files, and a grid gives a deterministic evaluation set.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        scenes: Sequence[Sample],
        patch_size: int,
        num_patches: int | None = None,
        transforms: Callable[[Sample], Sample] | None = None,
    ) -> None:
        """Initialize a new ScenePatches instance.

        Args:
            scenes: samples whose ``image`` ([..., C, H, W]) and ``mask`` ([..., H, W])
                cover the same pixels.
            patch_size: side of each square patch in pixels.
            num_patches: patches per epoch, cropped at random from the scenes in
                turn; ``None`` tiles every scene with a non-overlapping grid.
            transforms: a function/transform that takes an input sample
                and returns a transformed version.

        Raises:
            InvalidInputError: if a scene is smaller than one patch.
        """
        for index, scene in enumerate(scenes):
            height, width = scene['image'].shape[-2:]
            if min(height, width) < patch_size:
                raise InvalidInputError(
                    f'scene {index} is {height} x {width} px, smaller than '
                    f'patch_size={patch_size}. Use a smaller patch_size.'
                )
        self.scenes = list(scenes)
        self.patch_size = patch_size
        self.num_patches = num_patches
        self.transforms = transforms
        self.grid = [
            (index, top, left)
            for index, scene in enumerate(self.scenes)
            for top in range(0, scene['image'].shape[-2] - patch_size + 1, patch_size)
            for left in range(0, scene['image'].shape[-1] - patch_size + 1, patch_size)
        ]

    def __len__(self) -> int:
        """Return the number of patches per epoch.

        Returns:
            length of the dataset
        """
        return len(self.grid) if self.num_patches is None else self.num_patches

    def __getitem__(self, index: int) -> Sample:
        """Return one patch.

        Args:
            index: index to return

        Returns:
            the patch of every tensor of its scene
        """
        if self.num_patches is None:
            scene_index, top, left = self.grid[index]
            scene = self.scenes[scene_index]
        else:
            scene = self.scenes[index % len(self.scenes)]
            height, width = scene['image'].shape[-2:]
            top = int(torch.randint(0, height - self.patch_size + 1, ()))
            left = int(torch.randint(0, width - self.patch_size + 1, ()))
        size = self.patch_size
        sample = {
            key: value[..., top : top + size, left : left + size].clone()
            for key, value in scene.items()
            if isinstance(value, torch.Tensor)
        }
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample
