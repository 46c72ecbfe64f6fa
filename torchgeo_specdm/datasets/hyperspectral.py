"""Labelled hyperspectral scenes stored as MATLAB files, cut into spatially split patches."""

import itertools
import os
from collections.abc import Callable, Sequence
from typing import ClassVar, Literal

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor
from torchgeo.datasets import DatasetNotFoundError, NonGeoDataset

from ..types import Path, Sample
from .blocks import Block, block_class_counts, grid_blocks, stratified_assignment
from .patches import ScenePatches
from .plotting import plot_segmentation, rgb_band_indices
from .validation import (
    InvalidInputError,
    check_bands,
    check_finite,
    check_same_size,
    read_mat,
)

#: Wavelengths (nm) shown as red, green and blue in true-colour plots.
TRUE_COLOUR_NM: tuple[float, float, float] = (640.0, 550.0, 470.0)


def sensor_bands(
    num_bands: int, first_nm: float, last_nm: float, dropped: Sequence[int] = ()
) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """Names and approximate centres of a sensor's bands that a scene keeps.

    The centres are spread evenly from ``first_nm`` to ``last_nm``: an
    approximation for scenes distributed without their sensor's calibration, good
    enough to pick bands (e.g. for a true-colour plot), not for spectral matching.

    Args:
        num_bands: bands the sensor records.
        first_nm: centre of its first band, in nanometres.
        last_nm: centre of its last band, in nanometres.
        dropped: 1-based numbers of the bands the scene leaves out.

    Returns:
        the kept bands' names (``'B001'``: the sensor's 1-based band number) and
        their centres in nanometres.
    """
    centres = np.linspace(first_nm, last_nm, num_bands)
    skip = set(dropped)
    kept = [number for number in range(1, num_bands + 1) if number not in skip]
    names = tuple(f'B{number:03d}' for number in kept)
    return names, tuple(round(float(centres[number - 1]), 1) for number in kept)


def nearest_bands(
    bands: Sequence[str],
    wavelengths: Sequence[float],
    targets: Sequence[float] = TRUE_COLOUR_NM,
) -> tuple[str, ...]:
    """The bands whose centres lie nearest some wavelengths.

    Args:
        bands: band names.
        wavelengths: centre of each band, in nanometres.
        targets: wanted wavelengths, in nanometres.

    Returns:
        one band name per target.
    """
    centres = np.asarray(wavelengths)
    return tuple(bands[int(np.abs(centres - target).argmin())] for target in targets)


class HyperspectralScene(NonGeoDataset):
    """Base class of labelled hyperspectral scenes stored as two MATLAB files.

    A subclass names the files and describes the scene through class attributes:
    :attr:`image_file` (an H x W x C cube) and :attr:`label_file` (an H x W map of
    class codes), the array names :attr:`image_key` and :attr:`label_key`,
    :attr:`all_bands` with their approximate centres :attr:`wavelengths`,
    :attr:`classes`, and :attr:`label_codes` (raw code -> class index). Files are
    read with :func:`scipy.io.loadmat`; when a file has no array of the expected
    name, its only 3-D (cube) or 2-D (labels) numeric array is used instead.

    The scene is split spatially into disjoint parts, in one of two ways
    (``split_method``):

    * ``'blocks'``: along ``split_axis``, the scene is cut into three blocks
      (train, val, test, in that order, sized by ``split_fractions``). Fields
      that lie in one corner of the scene can miss from the val or test block.
    * ``'stratified_blocks'``: the scene is cut into a grid of ``block_grid``
      nearly equal blocks, and each block goes to train, val or test as a whole:
      ``round(fraction * blocks)`` blocks to val and to test, the rest to train,
      chosen (by :func:`~torchgeo_specdm.datasets.blocks.stratified_assignment`,
      from the label map alone, with a fixed seed) so that every class is in
      every part where the blocks allow it, with class shares close to
      ``split_fractions``. The assignment does not depend on ``seed``.

    Patches of a split are cut only inside its part, so no pixel of one split
    appears in a patch of another, overlaps included; no guard band is needed
    for that. With ``'stratified_blocks'``, random crops may take any window
    that lies wholly inside the part (so across two neighbouring train blocks),
    drawn as a uniformly random pixel of the part and then a uniformly random
    window around it (a block whose neighbours belong to other parts holds few
    windows, but its pixels are drawn as often as any others),
    while grids (``num_patches=None``) tile each block on its own with step
    ``stride`` and add windows flush with the block's far edges, so every pixel
    of the part is in some grid patch. Parts touch along block edges, and a field
    that crosses an edge lies in both parts: the split keeps pixels and patches
    apart, not fields.

    A split keeps the bounding box of its part in memory as :attr:`image` and
    :attr:`mask`, with :attr:`region` marking the part's pixels; pixels of other
    parts inside the box are zeroed in both (class 0, unlabelled), so they
    reach neither statistics nor labels. :meth:`window` says where a patch lies in
    the scene and :attr:`part_blocks` which blocks the part holds.

    Samples are ``{'image': float32 [C, H, W], 'mask': int64 [H, W]}``. Index 0
    of :attr:`classes` is 'Unlabelled' in every scene.

    .. versionadded:: 0.1
    """

    #: Name of the image cube file below ``root``.
    image_file: ClassVar[str]
    #: Name of the label map file below ``root``.
    label_file: ClassVar[str]
    #: Name of the H x W x C cube in :attr:`image_file`.
    image_key: ClassVar[str]
    #: Name of the H x W label map in :attr:`label_file`.
    label_key: ClassVar[str]
    #: Names of the bands stored in the cube, in file order.
    all_bands: tuple[str, ...]
    #: Approximate centre of each of :attr:`all_bands`, in nanometres.
    wavelengths: ClassVar[tuple[float, ...]]
    #: Bands nearest 640, 550 and 470 nm, shown as red, green and blue.
    rgb_bands: tuple[str, ...]
    #: Class names; index 0 is 'Unlabelled'.
    classes: ClassVar[tuple[str, ...]]
    #: Raw label code -> class index.
    label_codes: ClassVar[dict[int, int]]
    splits: ClassVar[tuple[str, ...]] = ('train', 'val', 'test')

    def __init__(
        self,
        root: Path = 'data',
        split: Literal['train', 'val', 'test'] = 'train',
        bands: Sequence[str] | None = None,
        patch_size: int = 16,
        num_patches: int | None = None,
        stride: int | None = None,
        split_fractions: Sequence[float] = (0.6, 0.2, 0.2),
        split_axis: Literal['width', 'height'] = 'width',
        split_method: Literal['blocks', 'stratified_blocks'] = 'blocks',
        block_grid: Sequence[int] = (5, 5),
        seed: int | None = 0,
        transforms: Callable[[Sample], Sample] | None = None,
    ) -> None:
        """Initialize a new HyperspectralScene instance.

        Args:
            root: root directory where the dataset can be found.
            split: one of 'train', 'val' or 'test'.
            bands: bands to return, a subset of :attr:`all_bands` (default: all).
            patch_size: side of each square patch in pixels.
            num_patches: random crops per epoch; ``None`` cuts a grid instead.
            stride: step of the grid in pixels (default ``patch_size``). With
                ``'blocks'``, rows and columns left over at the block's far edges
                are not covered; with ``'stratified_blocks'``, each block's grid
                ends with windows flush with its far edges.
            split_fractions: shares of the scene given to the train, val and test
                parts, summing to 1 (of its width or height with ``'blocks'``, of
                its grid blocks with ``'stratified_blocks'``).
            split_axis: with ``'blocks'``, 'width' cuts the blocks side by side
                (left to right), 'height' stacks them (top to bottom); unused by
                ``'stratified_blocks'``.
            split_method: 'blocks' (three blocks along ``split_axis``) or
                'stratified_blocks' (grid blocks assigned so every part holds
                every class); see above.
            block_grid: blocks per column and per row (``(rows, columns)``) of
                ``'stratified_blocks'``; each block must hold a patch.
            seed: seed of the random crops, fixed per index; ``None`` draws new
                crops on each access from torch's global generator.
            transforms: a function/transform that takes an input sample
                and returns a transformed version.

        Raises:
            InvalidInputError: if an argument is invalid, a file cannot be used, or
                a block of the split is smaller than one patch.
            DatasetNotFoundError: if the dataset is not found in ``root``.
        """
        name = type(self).__name__
        if split not in self.splits:
            raise InvalidInputError(
                f'split={split!r} is not one of {self.splits}: pick one of those.'
            )
        bands = self.all_bands if bands is None else tuple(bands)
        unknown = [band for band in bands if band not in self.all_bands]
        if unknown or not bands:
            raise InvalidInputError(
                f'bands: {unknown or "empty"} not in {name}. Choose a non-empty '
                f'subset of its {len(self.all_bands)} bands '
                f'({self.all_bands[0]} ... {self.all_bands[-1]}).'
            )
        if patch_size < 1:
            raise InvalidInputError(f'patch_size={patch_size}: must be at least 1.')
        fractions = tuple(float(value) for value in split_fractions)
        if (
            len(fractions) != 3
            or min(fractions) <= 0
            or not np.isclose(sum(fractions), 1)
        ):
            raise InvalidInputError(
                f'split_fractions={list(split_fractions)}: give three positive '
                'shares (train, val, test) that sum to 1, e.g. (0.6, 0.2, 0.2).'
            )
        if split_axis not in ('width', 'height'):
            raise InvalidInputError(
                f"split_axis={split_axis!r}: choose 'width' or 'height'."
            )
        if split_method not in ('blocks', 'stratified_blocks'):
            raise InvalidInputError(
                f"split_method={split_method!r}: choose 'blocks' or "
                "'stratified_blocks'."
            )
        grid = tuple(block_grid)
        num_blocks = int(np.prod(grid)) if grid else 0
        shares = (
            max(1, round(fractions[1] * num_blocks)),
            max(1, round(fractions[2] * num_blocks)),
        )
        if split_method == 'stratified_blocks' and (
            len(grid) != 2
            or any(not isinstance(n, int) or n < 1 for n in grid)
            or sum(shares) >= num_blocks
        ):
            raise InvalidInputError(
                f'block_grid={list(block_grid)}: give two whole numbers of blocks '
                '(rows, columns), at least 1 each, with enough blocks for train '
                f'after val and test take their split_fractions={list(fractions)} '
                'of them (e.g. (5, 5)).'
            )
        self.root = root
        self.split = split
        self.bands = bands
        self.band_indices = [self.all_bands.index(band) for band in bands]
        self.patch_size = patch_size
        self.split_fractions = fractions
        self.split_axis = split_axis
        self.split_method = split_method
        self.block_grid = grid
        self.transforms = transforms
        self._verify()

        scene = self.load_scene()
        self.scene_size = tuple(scene['mask'].shape)
        #: Every block of the split method with its part (0 train, 1 val, 2 test).
        self.block_parts: list[tuple[Block, int]] = self._assign(scene['mask'])
        #: The blocks of this split's part, in scene coordinates.
        self.part_blocks = [
            block
            for block, part in self.block_parts
            if part == self.splits.index(split)
        ]
        self.top, self.left, height, width = self.block(split)
        for _, _, block_height, block_width in self.part_blocks:
            if min(block_height, block_width) >= patch_size:
                continue
            change = (
                f'split_fractions={list(fractions)}'
                if split_method == 'blocks'
                else f'block_grid={list(grid)} (fewer, larger blocks)'
            )
            raise InvalidInputError(
                f'{name} split {split!r}: its block is {block_height} x '
                f'{block_width} px of the {self.scene_size[0]} x '
                f'{self.scene_size[1]} px scene, smaller than '
                f'patch_size={patch_size}. Use a smaller patch_size or change '
                f'{change}.'
            )
        #: Pixels of this split's part inside the bounding box, [H, W].
        self.region = torch.zeros(height, width, dtype=torch.bool)
        for top, left, block_height, block_width in self.part_blocks:
            top, left = top - self.top, left - self.left
            self.region[top : top + block_height, left : left + block_width] = True
        box = (
            ...,
            slice(self.top, self.top + height),
            slice(self.left, self.left + width),
        )
        self.image: Tensor = scene['image'][box].clone()
        self.mask: Tensor = scene['mask'][box].clone()
        self.image[:, ~self.region] = 0
        self.mask[~self.region] = 0
        windows, weights = None, None
        if split_method == 'stratified_blocks':
            windows = self._windows(num_patches is None, stride or patch_size)
            if num_patches is not None:
                weights = self._anchor_weights(windows)
        self.patches = ScenePatches(
            [{'image': self.image, 'mask': self.mask}],
            patch_size,
            num_patches=num_patches,
            stride=stride,
            seed=seed,
            windows=windows,
            window_weights=weights,
        )

    def __len__(self) -> int:
        """Return the number of data points in the dataset.

        Returns:
            length of the dataset
        """
        return len(self.patches)

    def __getitem__(self, index: int) -> Sample:
        """Return an index within the dataset.

        Args:
            index: index to return

        Returns:
            image and mask of that patch
        """
        sample = self.patches[index]
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    def window(self, index: int) -> tuple[int, int]:
        """Where a patch lies in the whole scene.

        Args:
            index: index of the patch.

        Returns:
            the top and left pixel of the patch in scene coordinates; it covers
            ``patch_size`` rows and columns from there.
        """
        _, top, left = self.patches.window(index)
        return self.top + top, self.left + left

    def block(self, split: str) -> Block:
        """The bounding box of the part of the scene that a split's patches come from.

        Args:
            split: one of 'train', 'val' or 'test'.

        Returns:
            top, left, height and width of the box, in pixels: the split's block
            with ``'blocks'``.
        """
        part = self.splits.index(split)
        blocks = [block for block, owner in self.block_parts if owner == part]
        top = min(block[0] for block in blocks)
        left = min(block[1] for block in blocks)
        bottom = max(block[0] + block[2] for block in blocks)
        right = max(block[1] + block[3] for block in blocks)
        return top, left, bottom - top, right - left

    def class_counts(self) -> Tensor:
        """Pixels of each class in this split's part, as its :attr:`mask` holds them.

        Returns:
            int64 [len(classes)]; index 0 counts unlabelled pixels of the part.
        """
        return torch.bincount(self.mask[self.region], minlength=len(self.classes))

    def _assign(self, mask: Tensor) -> list[tuple[Block, int]]:
        """Cut the scene into blocks and give each to a part.

        Args:
            mask: class indices of the whole scene, [H, W].

        Returns:
            every block with its part: 0 train, 1 val, 2 test.
        """
        height, width = self.scene_size
        if self.split_method == 'stratified_blocks':
            blocks = grid_blocks(height, width, self.block_grid)
            counts = block_class_counts(mask, blocks, len(self.classes))
            parts = stratified_assignment(counts, self.split_fractions)
            return [(b, int(p)) for b, p in zip(blocks, parts, strict=True)]
        length = width if self.split_axis == 'width' else height
        edges = np.rint(np.cumsum((0, *self.split_fractions)) * length).astype(int)
        out = []
        for part, (start, stop) in enumerate(itertools.pairwise(edges)):
            if self.split_axis == 'width':
                out.append(((0, int(start), height, int(stop - start)), part))
            else:
                out.append(((int(start), 0, int(stop - start), width), part))
        return out

    def _anchor_weights(self, windows: list[tuple[int, int, int]]) -> Tensor:
        """Odds of each window when a random pixel, then a window around it, is drawn.

        Args:
            windows: every window wholly inside the part, (0, top, left).

        Returns:
            float64 [len(windows)]: the sum, over the window's pixels, of one over
            the number of windows that hold the pixel.
        """
        size = self.patch_size
        starts = torch.zeros(self.region.shape, dtype=torch.float64)
        for _, top, left in windows:
            starts[top, left] = 1

        def box_sums(values: Tensor) -> Tensor:
            total = torch.nn.functional.pad(values, (1, 0, 1, 0)).cumsum(0).cumsum(1)
            return (
                total[size:, size:]
                - total[:-size, size:]
                - total[size:, :-size]
                + total[:-size, :-size]
            )

        # Windows that hold each pixel: those starting up to size - 1 px above
        # and to the left of it.
        holders = box_sums(torch.nn.functional.pad(starts, (size - 1, 0, size - 1, 0)))
        inverse = torch.where(holders > 0, 1 / holders.clamp_min(1), 0)
        weights = box_sums(inverse)
        return torch.tensor([float(weights[top, left]) for _, top, left in windows])

    def _windows(self, grid: bool, stride: int) -> list[tuple[int, int, int]]:
        """The windows of patches inside this split's part, in box coordinates.

        Args:
            grid: each block's grid of step ``stride``, with windows flush with
                its far edges (True); or every window wholly inside the part.
            stride: step of the grid in pixels.

        Returns:
            (0, top, left) of each window.
        """
        size = self.patch_size
        if grid:
            windows = []
            for top, left, height, width in self.part_blocks:
                rows = sorted({*range(0, height - size + 1, stride), height - size})
                cols = sorted({*range(0, width - size + 1, stride), width - size})
                windows += [
                    (0, top - self.top + row, left - self.left + col)
                    for row in rows
                    for col in cols
                ]
            return windows
        inside = torch.nn.functional.pad(self.region.double(), (1, 0, 1, 0))
        total = inside.cumsum(0).cumsum(1)
        sums = (
            total[size:, size:]
            - total[:-size, size:]
            - total[size:, :-size]
            + total[:-size, :-size]
        )
        full = (sums == size * size).nonzero().tolist()
        return [(0, int(top), int(left)) for top, left in full]

    def _verify(self) -> None:
        """Verify that the dataset is present.

        Raises:
            DatasetNotFoundError: if the cube or the label file is missing.
        """
        for filename in (self.image_file, self.label_file):
            if not os.path.isfile(os.path.join(self.root, filename)):
                raise DatasetNotFoundError(self)

    def load_scene(self) -> Sample:
        """Read and check the whole scene.

        Returns:
            ``{'image': float32 [C, H, W], 'mask': int64 [H, W]}`` for the
            selected bands, with class indices in the mask.

        Raises:
            InvalidInputError: if a file is unreadable, lacks its array, has the
                wrong band count, holds NaN or infinite values or unknown label
                codes, or the cube and labels differ in size.
        """
        image_path = os.path.join(self.root, self.image_file)
        label_path = os.path.join(self.root, self.label_file)
        cube = read_mat(image_path, self.image_key, ndim=3)
        image = torch.from_numpy(
            np.ascontiguousarray(cube.transpose(2, 0, 1), dtype=np.float32)
        )
        check_bands(image, len(self.all_bands), image_path)
        check_finite(image, image_path)
        mask = self._remap(read_mat(label_path, self.label_key, ndim=2), label_path)
        check_same_size(image, mask, image_path, label_path)
        if self.band_indices != list(range(len(self.all_bands))):
            image = image[self.band_indices]
        return {'image': image, 'mask': mask}

    def _remap(self, labels: np.ndarray, path: str) -> Tensor:
        """Map raw label codes to class indices.

        Args:
            labels: [H, W] raw codes.
            path: file the labels came from, for the messages.

        Returns:
            the class indices, int64 [H, W].

        Raises:
            InvalidInputError: if a label is not a whole number or an unknown code.
        """
        if not np.issubdtype(labels.dtype, np.integer):
            whole = np.isfinite(labels) & (labels == np.round(labels))
            if not bool(whole.all()):
                raise InvalidInputError(
                    f'{path}: {int((~whole).sum())} labels are not whole numbers. '
                    'Pass the class code map, not scores or a resampled map.'
                )
        codes, inverse = np.unique(labels.astype(np.int64), return_inverse=True)
        unknown = [int(code) for code in codes if int(code) not in self.label_codes]
        if unknown:
            raise InvalidInputError(
                f'{path}: unknown {type(self).__name__} label codes {unknown}. Valid '
                f'raw codes are {sorted(self.label_codes)}; labels must not be '
                'remapped beforehand.'
            )
        lookup = np.array([self.label_codes[int(code)] for code in codes])
        return torch.from_numpy(lookup[inverse].reshape(labels.shape))

    def plot(
        self, sample: Sample, show_titles: bool = True, suptitle: str | None = None
    ) -> Figure:
        """Plot a sample from the dataset.

        The image is a true-colour composite of the bands nearest 640, 550 and
        470 nm (:attr:`rgb_bands`), each stretched between its 2nd and 98th
        percentile.

        Args:
            sample: a sample returned by :meth:`__getitem__`
            show_titles: flag indicating whether to show titles above each panel
            suptitle: optional string to use as a suptitle

        Returns:
            a matplotlib Figure with the rendered sample

        Raises:
            RGBBandsMissingError: if *bands* does not include all RGB bands.
        """
        rgb = rgb_band_indices(self.bands, self.rgb_bands)
        return plot_segmentation(
            sample['image'],
            sample['mask'],
            rgb,
            self.classes,
            prediction=sample.get('prediction'),
            show_titles=show_titles,
            suptitle=suptitle,
        )
