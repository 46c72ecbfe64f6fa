"""Fixed-size patches cut from a few large scenes held in memory."""

from collections.abc import Callable, Sequence

import torch
from torch import Tensor
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
        stride: int | None = None,
        seed: int | None = None,
        positive_share: float = 0.0,
        windows: Sequence[tuple[int, int, int]] | None = None,
        window_weights: Tensor | None = None,
    ) -> None:
        """Initialize a new ScenePatches instance.

        Args:
            scenes: samples whose ``image`` ([..., C, H, W]) and ``mask`` ([..., H, W])
                cover the same pixels.
            patch_size: side of each square patch in pixels.
            num_patches: patches per epoch, cropped at random from the scenes in
                turn; ``None`` tiles every scene with a grid.
            transforms: a function/transform that takes an input sample
                and returns a transformed version.
            stride: step of the grid in pixels; ``None`` is ``patch_size`` (no
                overlap). Rows and columns left over at the bottom and right edges
                are not covered.
            seed: fixes the random crops: they are drawn once from this seed, so
                index ``i`` is always the same crop. ``None`` draws a new crop on
                every access from torch's global generator.
            positive_share: share of the random crops placed around a random
                pixel whose mask is above 0 (a changed pixel in OSCD), so rare
                positives are drawn more often than their share of the scene.
                Scenes without such pixels get uniform crops.
            windows: the only windows (scene index, top, left) that patches may
                take, e.g. those inside an irregular region: the grid is these
                windows (``stride`` is then unused) and random crops pick one of
                them (uniformly, or by ``window_weights``). ``None``: every
                window of the scenes.
            window_weights: relative odds of each of ``windows`` for random
                crops, [len(windows)], non-negative, not all 0.

        Raises:
            InvalidInputError: if a scene is smaller than one patch, ``stride``
                or ``num_patches`` is below 1, ``positive_share`` is outside
                [0, 1], or ``windows`` is empty, leaves its scene or comes with
                a ``positive_share``, or ``window_weights`` do not fit it.
        """
        if not 0 <= positive_share <= 1:
            raise InvalidInputError(
                f'positive_share={positive_share}: must lie in [0, 1].'
            )
        if stride is not None and stride < 1:
            raise InvalidInputError(f'stride={stride}: must be at least 1 pixel.')
        if num_patches is not None and num_patches < 1:
            raise InvalidInputError(
                f'num_patches={num_patches}: must be at least 1, or None for a grid.'
            )
        for index, scene in enumerate(scenes):
            height, width = scene['image'].shape[-2:]
            if min(height, width) < patch_size:
                raise InvalidInputError(
                    f'scene {index} is {height} x {width} px, smaller than '
                    f'patch_size={patch_size}. Use a smaller patch_size.'
                )
        if windows is not None:
            windows = [(int(i), int(top), int(left)) for i, top, left in windows]
            if not windows:
                raise InvalidInputError('windows: empty; give at least one window.')
            if positive_share > 0:
                raise InvalidInputError(
                    f'windows and positive_share={positive_share} cannot be '
                    'combined: random crops pick one of the windows.'
                )
            for index, top, left in windows:
                if not 0 <= index < len(scenes):
                    raise InvalidInputError(f'windows: no scene {index}.')
                height, width = scenes[index]['image'].shape[-2:]
                if not (
                    0 <= top <= height - patch_size and 0 <= left <= width - patch_size
                ):
                    raise InvalidInputError(
                        f'windows: ({index}, {top}, {left}) leaves the {height} x '
                        f'{width} px scene {index} for patch_size={patch_size}.'
                    )
        if window_weights is not None and (
            windows is None
            or window_weights.shape != (len(windows),)
            or bool((window_weights < 0).any())
            or not bool(window_weights.sum() > 0)
        ):
            raise InvalidInputError(
                'window_weights: give one non-negative weight per window of '
                '`windows`, not all 0.'
            )
        self.windows = windows
        self.window_weights = window_weights
        self.scenes = list(scenes)
        self.patch_size = patch_size
        self.num_patches = num_patches
        self.transforms = transforms
        self.stride = patch_size if stride is None else stride
        self.seed = seed
        self.positive_share = positive_share
        self.positives = [
            (scene['mask'].reshape(-1, *scene['mask'].shape[-2:]) > 0).any(0).nonzero()
            for scene in self.scenes
        ]
        self.grid = windows or [
            (index, top, left)
            for index, scene in enumerate(self.scenes)
            for top in range(0, scene['image'].shape[-2] - patch_size + 1, self.stride)
            for left in range(0, scene['image'].shape[-1] - patch_size + 1, self.stride)
        ]
        self.crops: list[tuple[int, int, int]] | None = None
        if num_patches is not None and seed is not None:
            generator = torch.Generator().manual_seed(seed)
            self.crops = [
                self._random_window(index, generator) for index in range(num_patches)
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
        scene_index, top, left = self.window(index)
        scene = self.scenes[scene_index]
        size = self.patch_size
        sample = {
            key: value[..., top : top + size, left : left + size].clone()
            for key, value in scene.items()
            if isinstance(value, torch.Tensor)
        }
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    def window(self, index: int) -> tuple[int, int, int]:
        """Where patch ``index`` lies.

        Unseeded random crops draw a new window on every call.

        Args:
            index: index of the patch.

        Returns:
            the scene index and the top and left pixel of the patch in that scene.
        """
        if self.num_patches is None:
            return self.grid[index]
        if self.crops is not None:
            return self.crops[index]
        return self._random_window(index)

    def _random_window(
        self, index: int, generator: torch.Generator | None = None
    ) -> tuple[int, int, int]:
        """Draw a random window in the scene of a patch.

        Args:
            index: index of the patch; patches take the scenes in turn.
            generator: source of randomness; ``None`` is torch's global generator.

        Returns:
            the scene index and the top and left pixel of the patch.
        """
        if self.windows is not None:
            if self.window_weights is not None:
                pick = int(
                    torch.multinomial(self.window_weights, 1, generator=generator)
                )
            else:
                pick = int(torch.randint(0, len(self.windows), (), generator=generator))
            return self.windows[pick]
        scene_index = index % len(self.scenes)
        height, width = self.scenes[scene_index]['image'].shape[-2:]
        size = self.patch_size
        positives = self.positives[scene_index]
        if (
            len(positives)
            and self.positive_share > 0
            and float(torch.rand((), generator=generator)) < self.positive_share
        ):
            pick = int(torch.randint(0, len(positives), (), generator=generator))
            row, column = (int(v) for v in positives[pick])
            offset = torch.randint(0, size, (2,), generator=generator)
            top = min(max(row - int(offset[0]), 0), height - size)
            left = min(max(column - int(offset[1]), 0), width - size)
            return scene_index, top, left
        top = int(torch.randint(0, height - size + 1, (), generator=generator))
        left = int(torch.randint(0, width - size + 1, (), generator=generator))
        return scene_index, top, left
