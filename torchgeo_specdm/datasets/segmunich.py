"""SegMunich dataset."""

import os
from collections.abc import Callable, Sequence
from typing import ClassVar, Literal

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor
from torchgeo.datasets import DatasetNotFoundError, NonGeoDataset

from ..types import Path, Sample
from .plotting import plot_segmentation, rgb_band_indices
from .validation import (
    InvalidInputError,
    check_bands,
    check_finite,
    check_labels,
    check_same_size,
    check_split_list,
    read_tiff,
)


class SegMunich(NonGeoDataset):
    """SegMunich dataset.

    `SegMunich <https://github.com/danfenghong/IEEE_TPAMI_SpectralGPT>`__ is a
    Sentinel-2 land-cover segmentation dataset over Munich, released with SpectralGPT.

    Dataset format (the release layout):

    * images: ``<root>/<split>/img/<name>.tif``, float32 128 x 128 x 10, band axis last
      (C x H x W is accepted too), written by tifffile as a multi-page "shaped" TIFF
      that GDAL misreads, so they are read with tifffile
    * labels: ``<root>/<split>/label/<name>.tif``, raw CORINE-like codes
    * split lists: ``<root>/dataset/{train,val,test}.txt``, one name per line without
      the ``.tif`` suffix; without ``val.txt``, a seeded share of train is held out

    Band order: one dataset card lists B01-B07, B8A, B11, B12, but the per-band means
    of a real training tile (``SegMunich_train_img_10.tif``) are 472, 716, 635, 2853,
    1099, 2355, 2767, 2996, 1859 and 1100. Index 3 is NIR-like (it correlates 0.84-0.87
    with indices 5-7 and 0.42-0.54 with the visible bands) and index 4 behaves like
    red-edge B5, which fits B2, B3, B4, B8, B5, B6, B7, B8A, B11, B12 and not the card's
    order (red would be 2853 over vegetation). :attr:`all_bands` follows the data.

    Raw label codes are remapped to 13 contiguous classes: 21->1, 22->2, 23->3, 31->4,
    32->6, 33->7, 41->8, 13->9, 14->10, with 0, 5, 11 and 12 unchanged.

    If you use this dataset in your research, please cite:

    * https://doi.org/10.1109/TPAMI.2024.3362475

    .. versionadded:: 0.1
    """

    all_bands: tuple[str, ...] = (
        'B02',
        'B03',
        'B04',
        'B08',
        'B05',
        'B06',
        'B07',
        'B8A',
        'B11',
        'B12',
    )
    rgb_bands: tuple[str, ...] = ('B04', 'B03', 'B02')
    classes: ClassVar[tuple[str, ...]] = (
        'Background',
        'Arable land',
        'Permanent crops',
        'Pastures',
        'Forests',
        'Surface water',
        'Shrub',
        'Open spaces',
        'Wetlands',
        'Mine dump',
        'Artificial vegetation',
        'Urban fabric',
        'Buildings',
    )
    #: Raw label code -> class index.
    label_codes: ClassVar[dict[int, int]] = {
        0: 0,
        21: 1,
        22: 2,
        23: 3,
        31: 4,
        5: 5,
        32: 6,
        33: 7,
        41: 8,
        13: 9,
        14: 10,
        11: 11,
        12: 12,
    }
    splits: ClassVar[tuple[str, ...]] = ('train', 'val', 'test')

    def __init__(
        self,
        root: Path = 'data',
        split: Literal['train', 'val', 'test'] = 'train',
        bands: Sequence[str] = all_bands,
        transforms: Callable[[Sample], Sample] | None = None,
        val_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        """Initialize a new SegMunich dataset instance.

        Args:
            root: root directory where the dataset can be found.
            split: one of 'train', 'val' or 'test'.
            bands: bands to return, a subset of :attr:`all_bands`.
            transforms: a function/transform that takes an input sample
                and returns a transformed version.
            val_fraction: share of train held out as val when ``val.txt`` is absent.
            seed: seed of that held-out draw.

        Raises:
            InvalidInputError: if ``split``, ``bands`` or ``val_fraction`` is invalid,
                or a split file is empty.
            DatasetNotFoundError: if the dataset is not found in ``root``.
        """
        if split not in self.splits:
            raise InvalidInputError(
                f'split={split!r} is not one of {self.splits}: pick one of those.'
            )
        unknown = [band for band in bands if band not in self.all_bands]
        if unknown or not bands:
            raise InvalidInputError(
                f'bands={list(bands)!r}: {unknown or "empty"} not in SegMunich. '
                f'Choose a non-empty subset of {self.all_bands}.'
            )
        if not 0 < val_fraction < 1:
            raise InvalidInputError(
                f'val_fraction={val_fraction} must lie in (0, 1), e.g. 0.1.'
            )
        self.root = root
        self.split = split
        self.bands = tuple(bands)
        self.band_indices = [self.all_bands.index(band) for band in self.bands]
        self.transforms = transforms
        self.val_fraction = val_fraction
        self.seed = seed
        self._verify()
        self.folder, self.names = self._load_split()
        self._lookup = torch.full((256,), -1, dtype=torch.long)
        for code, index in self.label_codes.items():
            self._lookup[code] = index

    def __len__(self) -> int:
        """Return the number of data points in the dataset.

        Returns:
            length of the dataset
        """
        return len(self.names)

    def __getitem__(self, index: int) -> Sample:
        """Return an index within the dataset.

        Args:
            index: index to return

        Returns:
            image and mask at that index
        """
        name = self.names[index]
        image_path = os.path.join(self.root, self.folder, 'img', f'{name}.tif')
        label_path = os.path.join(self.root, self.folder, 'label', f'{name}.tif')
        image = self._load_image(image_path)
        mask = self._load_target(label_path)
        check_same_size(image, mask, image_path, label_path)
        sample = {'image': image, 'mask': mask}
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    def _verify(self) -> None:
        """Verify that the dataset is present.

        Raises:
            DatasetNotFoundError: if the split list or image folder is missing.
        """
        train_list = os.path.join(self.root, 'dataset', 'train.txt')
        split_list = os.path.join(self.root, 'dataset', f'{self.split}.txt')
        if not (os.path.isfile(split_list) or os.path.isfile(train_list)):
            raise DatasetNotFoundError(self)

    def _read_list(self, split: str) -> list[str]:
        """Read the sample names of one split file.

        Args:
            split: split whose file to read.

        Returns:
            the names, in file order.
        """
        path = os.path.join(self.root, 'dataset', f'{split}.txt')
        with open(path) as f:
            names = [os.path.splitext(line.strip())[0] for line in f if line.strip()]
        check_split_list(names, path)
        return names

    def _load_split(self) -> tuple[str, list[str]]:
        """Find the folder and names of this split.

        Returns:
            the folder below root that holds the files, and the sample names.
        """
        has_val = os.path.isfile(os.path.join(self.root, 'dataset', 'val.txt'))
        if self.split == 'test' or has_val:
            if not os.path.isfile(
                os.path.join(self.root, 'dataset', f'{self.split}.txt')
            ):
                raise DatasetNotFoundError(self)
            return self.split, self._read_list(self.split)
        # No val.txt: hold out a seeded share of train.
        names = self._read_list('train')
        if len(names) < 2:
            raise InvalidInputError(
                f'{os.path.join(self.root, "dataset", "train.txt")}: lists one sample, '
                'too few to hold out a validation split. Add val.txt or more samples.'
            )
        generator = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(len(names), generator=generator).tolist()
        num_val = max(1, round(self.val_fraction * len(names)))
        held_out = set(order[:num_val])
        want_val = self.split == 'val'
        return 'train', [n for i, n in enumerate(names) if (i in held_out) == want_val]

    def _load_image(self, path: str) -> Tensor:
        """Load one image.

        Args:
            path: image file.

        Returns:
            the image, float32 [C, H, W].

        Raises:
            InvalidInputError: if the file is unreadable, has the wrong number of
                bands or holds NaN or Inf values.
        """
        array = read_tiff(path)
        num_bands = len(self.all_bands)
        if array.ndim != 3:
            raise InvalidInputError(
                f'{path}: expected a 3-D image (H x W x {num_bands} or {num_bands} x '
                f'H x W), found shape {array.shape}. Re-export the image with all '
                f'{num_bands} bands.'
            )
        if array.shape[0] != num_bands and array.shape[-1] == num_bands:
            array = array.transpose(2, 0, 1)
        elif array.shape[0] != num_bands and array.shape[-1] < array.shape[0]:
            array = array.transpose(2, 0, 1)  # H x W x C with the wrong C
        image = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        check_bands(image, num_bands, path)
        check_finite(image, path)
        return image[self.band_indices]

    def _load_target(self, path: str) -> Tensor:
        """Load one label map and remap its raw codes to class indices.

        Args:
            path: label file.

        Returns:
            the mask, int64 [H, W].

        Raises:
            InvalidInputError: if the file is unreadable or holds unknown codes.
        """
        array = np.squeeze(read_tiff(path))
        if array.ndim != 2:
            raise InvalidInputError(
                f'{path}: expected a single-band label map, found shape {array.shape}.'
            )
        raw = torch.from_numpy(array.astype(np.int64))
        if int(raw.min()) < 0 or int(raw.max()) > 255:
            check_labels(raw, 256, path)
        mask = self._lookup[raw]
        if bool((mask < 0).any()):
            unknown = sorted(set(raw[mask < 0].unique().tolist()))
            raise InvalidInputError(
                f'{path}: unknown SegMunich label codes {unknown}. Valid raw codes are '
                f'{sorted(self.label_codes)}; labels must not be remapped beforehand.'
            )
        return mask

    def plot(
        self, sample: Sample, show_titles: bool = True, suptitle: str | None = None
    ) -> Figure:
        """Plot a sample from the dataset.

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
