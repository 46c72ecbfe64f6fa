"""A GeoDataModule over your own image rasters and a mask layer."""

from collections.abc import Sequence
from typing import Any, Literal

import kornia.augmentation as K
import rasterio
import torch
from kornia.constants import DataKey, Resample
from torchgeo.datamodules import GeoDataModule
from torchgeo.datasets import (
    GeoDataset,
    IntersectionDataset,
    RasterDataset,
    random_bbox_assignment,
    random_grid_cell_assignment,
)
from torchgeo.samplers import GriddedPatchSampler, RandomPatchSampler
from torchgeo.samplers.utils import _to_tuple

from ..datasets.validation import InvalidInputError
from ..types import Path
from .utils import image_statistics


class ImageRasters(RasterDataset):
    """Image rasters (GeoTIFF or any format GDAL reads) found under some paths.

    .. versionadded:: 0.1
    """

    def __init__(
        self, paths: Path | Sequence[Path], filename_glob: str = '*.tif', **kwargs: Any
    ) -> None:
        """Initialize a new ImageRasters instance.

        Args:
            paths: directories to search or files to load.
            filename_glob: names of the files to load.
            **kwargs: further :class:`~torchgeo.datasets.RasterDataset` arguments
                (``crs``, ``res``, ``cache``).
        """
        self.filename_glob = filename_glob
        super().__init__(paths, **kwargs)


class MaskRasters(ImageRasters):
    """A mask layer: rasters of class indices, read with nearest resampling.

    .. versionadded:: 0.1
    """

    is_image = False


class RasterMaskDataModule(GeoDataModule):
    """Image rasters intersected with a mask layer, drawn as random patches.

    The images and the mask layer may be tiled differently and overlap only in
    part: patches are drawn where both exist (a TorchGeo ``IntersectionDataset``),
    reprojected to the images' CRS and resolution. The tiles (or, with
    ``split='grid'``, cells of a grid laid over each tile) are assigned at random to
    disjoint training, validation and test areas. Training patches are drawn by a
    ``RandomPatchSampler``; validation and test patches cover their areas with a
    ``GriddedPatchSampler``.

    Without ``mean`` and ``std``, the per-band statistics are computed from the
    training area's gridded patches, so the images stay in their native units
    (digital numbers) until the batch is normalised.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        image_paths: Path | Sequence[Path],
        mask_paths: Path | Sequence[Path],
        batch_size: int = 16,
        patch_size: int | tuple[int, int] = 64,
        length: int | None = None,
        num_workers: int = 0,
        split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
        split: Literal['tiles', 'grid'] = 'tiles',
        grid_size: int = 6,
        seed: int = 0,
        image_glob: str = '*.tif',
        mask_glob: str = '*.tif',
        bands: Sequence[str] | None = None,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        statistics_patches: int = 32,
        res: float | tuple[float, float] | None = None,
    ) -> None:
        """Initialize a new RasterMaskDataModule instance.

        Args:
            image_paths: folders to search, or files, of image rasters.
            mask_paths: folders to search, or files, of the mask layer (one band of
                class indices).
            batch_size: patches per batch.
            patch_size: patch size in pixels, ``size`` or ``(height, width)``.
            length: training patches per epoch (default: as many as tile the
                training area).
            num_workers: loader processes.
            split_fractions: shares of the training, validation and test areas.
            split: 'tiles' assigns whole overlap tiles to the splits (needs at least
                one tile per split); 'grid' assigns the cells of a
                ``grid_size`` x ``grid_size`` grid laid over each tile.
            grid_size: rows and columns of that grid.
            seed: seed of the split.
            image_glob: file names of the image rasters.
            mask_glob: file names of the mask rasters.
            bands: names of the image bands, for plots and generated datasets.
            num_classes: number of mask classes (default: the task reads it from
                the labels).
            class_names: names of the classes.
            mean: per-band mean of the normalisation (default: computed).
            std: per-band standard deviation of the normalisation (default:
                computed).
            statistics_patches: training patches the statistics are computed from.
            res: resolution to read at, in units of the CRS (default: the first
                image's).

        Raises:
            InvalidInputError: for split fractions that are not three positive
                shares summing to 1, or class names that do not match
                ``num_classes``.
        """
        super().__init__(
            IntersectionDataset,
            batch_size=batch_size,
            patch_size=patch_size,
            length=length,
            num_workers=num_workers,
        )
        fractions = [float(value) for value in split_fractions]
        if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
            raise InvalidInputError(
                f'split_fractions={list(split_fractions)}: give three positive shares '
                '(train, val, test) summing to 1, e.g. [0.8, 0.1, 0.1].'
            )
        if class_names is not None and num_classes is None:
            num_classes = len(class_names)
        if class_names is not None and len(class_names) != num_classes:
            raise InvalidInputError(
                f'class_names has {len(class_names)} names but num_classes='
                f'{num_classes}. Name every class, or leave class_names unset.'
            )
        self.image_paths = image_paths
        self.mask_paths = mask_paths
        self.split_fractions = fractions
        self.split = split
        self.grid_size = grid_size
        self.seed = seed
        self.image_glob = image_glob
        self.mask_glob = mask_glob
        self.res = res
        self.statistics_patches = statistics_patches
        if bands is not None:
            self.bands = tuple(bands)
        if num_classes is not None:
            self.num_classes = num_classes
        if class_names is not None:
            self.class_names = tuple(class_names)
        self._statistics = (mean, std)
        if mean is not None and std is not None:
            self._set_normalisation(torch.tensor(mean), torch.tensor(std))

    def _set_normalisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean, self.std = mean.float(), std.float()
        self.aug = K.AugmentationSequential(
            K.Normalize(mean=self.mean, std=self.std), data_keys=None, keepdim=True
        )
        self.train_aug = K.AugmentationSequential(
            K.Normalize(mean=self.mean, std=self.std),
            K.RandomHorizontalFlip(p=0.5),
            K.RandomVerticalFlip(p=0.5),
            data_keys=None,
            keepdim=True,
            extra_args={
                DataKey.MASK: {'resample': Resample.NEAREST, 'align_corners': None}
            },
        )

    def _dataset(self) -> GeoDataset:
        images = ImageRasters(self.image_paths, self.image_glob, res=self.res)
        masks = MaskRasters(self.mask_paths, self.mask_glob)
        bands = getattr(self, 'bands', None)
        if bands is not None:
            first = images.index.filepath.iloc[0]
            with rasterio.open(first) as source:
                count = source.count
            if count != len(bands):
                raise InvalidInputError(
                    f'bands={list(bands)} names {len(bands)} bands but {first} has '
                    f'{count}. Name every band of the image rasters, in order.'
                )
        try:
            return images & masks
        except RuntimeError as error:
            raise InvalidInputError(
                f'image_paths={self.image_paths!r} and mask_paths={self.mask_paths!r} '
                f'do not overlap ({error}). Pass a mask layer that covers the images, '
                'in any CRS.'
            ) from None

    def setup(self, stage: str) -> None:
        """Split the overlap of images and masks, and set up the samplers.

        Args:
            stage: Either 'fit', 'validate', 'test', or 'predict'.

        Raises:
            InvalidInputError: if a split gets no area or no patch fits in it.
        """
        dataset = self._dataset()
        generator = torch.Generator().manual_seed(self.seed)
        if self.split == 'tiles':
            if len(dataset) < 3:
                raise InvalidInputError(
                    f'image_paths={self.image_paths!r}: images and masks overlap in '
                    f"{len(dataset)} tile(s), too few for split='tiles' (one tile per "
                    "split). Use split='grid' to split each tile into grid cells."
                )
            parts = random_bbox_assignment(dataset, self.split_fractions, generator)
        else:
            parts = random_grid_cell_assignment(
                dataset, self.split_fractions, self.grid_size, generator
            )
        self._check_patch_fits(parts)
        self.train_dataset, self.val_dataset, self.test_dataset = parts
        if self._statistics[0] is None or self._statistics[1] is None:
            self._compute_statistics()
        self.train_sampler = RandomPatchSampler(
            self.train_dataset, size=self.patch_size, length=self.length
        )
        self.val_sampler = GriddedPatchSampler(
            self.val_dataset, size=self.patch_size, stride=self.patch_size
        )
        self.test_sampler = GriddedPatchSampler(
            self.test_dataset, size=self.patch_size, stride=self.patch_size
        )

    def _check_patch_fits(self, parts: Sequence[GeoDataset]) -> None:
        """Check that one patch fits in some tile of every split, as samplers need.

        Args:
            parts: the training, validation and test datasets.

        Raises:
            InvalidInputError: if a split has no tile as large as a patch.
        """
        height, width = _to_tuple(self.patch_size)
        for name, part in zip(('train', 'val', 'test'), parts):
            res_x, res_y = part.res
            bounds = part.index.geometry.bounds
            fits = ((bounds.maxx - bounds.minx) / res_x >= width - 1e-6) & (
                (bounds.maxy - bounds.miny) / res_y >= height - 1e-6
            )
            if not bool(fits.any()):
                raise InvalidInputError(
                    f'patch_size={self.patch_size}: no patch of that size fits in the '
                    f'{name} area (split={self.split!r}, split_fractions='
                    f'{self.split_fractions}). Use a smaller patch_size, or more or '
                    'larger tiles.'
                )

    def _compute_statistics(self) -> None:
        train = self.train_dataset
        assert isinstance(train, GeoDataset)
        sampler = GriddedPatchSampler(
            train, size=self.patch_size, stride=self.patch_size
        )
        images = []
        for index in sampler:
            images.append(train[index]['image'])
            if len(images) >= self.statistics_patches:
                break
        if not images:
            raise InvalidInputError(
                f'patch_size={self.patch_size}: no patch of that size fits in the '
                'training area, so the band statistics cannot be computed. Use a '
                'smaller patch_size.'
            )
        mean, std = image_statistics(images)
        given_mean, given_std = self._statistics
        if given_mean is not None:
            mean = torch.tensor(given_mean)
        if given_std is not None:
            std = torch.tensor(given_std)
        self._set_normalisation(mean, std)
        self._statistics = (mean.tolist(), std.tolist())
