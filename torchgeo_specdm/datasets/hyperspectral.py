"""Labelled hyperspectral scenes stored as MATLAB files, cut into spatially split patches."""

import os
from collections.abc import Callable, Sequence
from typing import ClassVar, Literal

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor
from torchgeo.datasets import DatasetNotFoundError, NonGeoDataset

from ..types import Path, Sample
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

    The scene is split spatially: along ``split_axis``, it is cut into three
    disjoint blocks (train, val, test, in that order, sized by
    ``split_fractions``). Patches of a split are cut only inside its block, so no
    pixel of one split appears in a patch of another, overlaps included. A split
    yields ``num_patches`` seeded random crops, or a grid with step ``stride``.
    The split's whole block stays in memory as :attr:`image` and :attr:`mask`, and
    :meth:`window` says where a patch lies in the scene.

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
            stride: step of the grid in pixels (default ``patch_size``); rows and
                columns left over at the block's far edges are not covered.
            split_fractions: shares of the scene given to the train, val and test
                blocks, summing to 1.
            split_axis: 'width' cuts the blocks side by side (left to right),
                'height' stacks them (top to bottom).
            seed: seed of the random crops, fixed per index; ``None`` draws new
                crops on each access from torch's global generator.
            transforms: a function/transform that takes an input sample
                and returns a transformed version.

        Raises:
            InvalidInputError: if an argument is invalid, a file cannot be used, or
                the split's block is smaller than one patch.
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
        self.root = root
        self.split = split
        self.bands = bands
        self.band_indices = [self.all_bands.index(band) for band in bands]
        self.patch_size = patch_size
        self.split_fractions = fractions
        self.split_axis = split_axis
        self.transforms = transforms
        self._verify()

        scene = self.load_scene()
        self.scene_size = tuple(scene['mask'].shape)
        self.top, self.left, height, width = self.block(split)
        if min(height, width) < patch_size:
            raise InvalidInputError(
                f'{name} split {split!r}: its block is {height} x {width} px of the '
                f'{self.scene_size[0]} x {self.scene_size[1]} px scene, smaller than '
                f'patch_size={patch_size}. Use a smaller patch_size or change '
                f'split_fractions={list(fractions)}.'
            )
        region = {
            key: value[..., self.top : self.top + height, self.left : self.left + width]
            for key, value in scene.items()
        }
        self.image: Tensor = region['image'].clone()
        self.mask: Tensor = region['mask'].clone()
        self.patches = ScenePatches(
            [{'image': self.image, 'mask': self.mask}],
            patch_size,
            num_patches=num_patches,
            stride=stride,
            seed=seed,
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

    def block(self, split: str) -> tuple[int, int, int, int]:
        """The region of the scene that a split's patches come from.

        Args:
            split: one of 'train', 'val' or 'test'.

        Returns:
            top, left, height and width of the block, in pixels.
        """
        height, width = self.scene_size
        length = width if self.split_axis == 'width' else height
        edges = np.rint(np.cumsum((0, *self.split_fractions)) * length).astype(int)
        position = self.splits.index(split)
        start, stop = int(edges[position]), int(edges[position + 1])
        if self.split_axis == 'width':
            return 0, start, height, stop - start
        return start, 0, stop - start, width

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
