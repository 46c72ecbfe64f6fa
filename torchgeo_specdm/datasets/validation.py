"""Input validation: the one place that turns bad files and arrays into clear errors."""

import os
from collections.abc import Sequence

import numpy as np
import scipy.io
import tifffile
import torch
from torch import Tensor

from ..types import Path


class InvalidInputError(ValueError):
    """A file or argument holds data that cannot be used.

    The message always names the offending file or argument and says how to fix it.

    .. versionadded:: 0.1
    """


#: How to install the optional dependencies of TorchGeo's datasets with this package.
DATASETS_EXTRA = 'pip install "torchgeo-specdm[datasets]"'


def missing_dependency(error: Exception) -> InvalidInputError:
    """Turn TorchGeo's ``DependencyNotFoundError`` into a one-line error with the fix.

    Some TorchGeo datasets read their files with an optional package (h5py for
    ChaBuD and CaBuAr, for instance); TorchGeo's own ``datasets`` extra holds them
    all, and this package's ``datasets`` extra pulls it in.

    Args:
        error: the error TorchGeo raised (its message starts with the package).

    Returns:
        the error to raise instead.
    """
    words = str(error).split()
    package = words[0] if words else 'a package'
    return InvalidInputError(
        f'{package} is not installed, and this dataset reads its files with it. '
        f'Install the optional dataset dependencies: {DATASETS_EXTRA} (or just '
        f'pip install {package}).'
    )


def read_tiff(path: Path) -> np.ndarray:
    """Read a TIFF file with tifffile, turning read failures into clear errors.

    tifffile (not GDAL) reads SegMunich's multi-page "shaped" float32 TIFFs correctly.

    Args:
        path: file to read.

    Returns:
        the array stored in the file.

    Raises:
        InvalidInputError: if the file is missing, truncated or not a TIFF.
    """
    if not os.path.isfile(path):
        raise InvalidInputError(
            f'{path}: file not found. Check that the dataset root and split lists '
            'match the files on disk.'
        )
    try:
        array: np.ndarray = tifffile.imread(path)
    except Exception as error:  # noqa: BLE001 (tifffile raises many types on bad files)
        raise InvalidInputError(
            f'{path}: cannot read this TIFF ({type(error).__name__}: {error}). '
            'The file is truncated or corrupted: re-download or re-export it.'
        ) from None
    return array


def read_mat(path: Path, key: str, ndim: int) -> np.ndarray:
    """Read one numeric array from a MATLAB ``.mat`` file, turning failures into clear errors.

    The array stored under ``key`` is returned. When the file has no such key, the
    file's only numeric array with ``ndim`` dimensions is taken instead, so files
    saved under another variable name still load.

    Args:
        path: file to read (MATLAB 5 to 7.2, as :func:`scipy.io.loadmat` reads).
        key: name of the array in the file.
        ndim: number of dimensions the array must have.

    Returns:
        the array, C-contiguous.

    Raises:
        InvalidInputError: if the file is missing, truncated, not a MAT file or a
            MATLAB v7.3 (HDF5) file, or holds no single matching array.
    """
    if not os.path.isfile(path):
        raise InvalidInputError(
            f'{path}: file not found. Check that the dataset root holds the files.'
        )
    try:
        contents = scipy.io.loadmat(path)
    except NotImplementedError:
        raise InvalidInputError(
            f'{path}: this is a MATLAB v7.3 (HDF5) file, which scipy cannot read. '
            "Re-save it in MATLAB with save(..., '-v7')."
        ) from None
    except Exception as error:  # noqa: BLE001 (scipy raises many types on bad files)
        raise InvalidInputError(
            f'{path}: cannot read this .mat file ({type(error).__name__}: {error}). '
            'The file is truncated or corrupted: re-download it.'
        ) from None
    arrays = {
        name: value
        for name, value in contents.items()
        if not name.startswith('__') and isinstance(value, np.ndarray)
    }
    found = ', '.join(f'{name} {value.shape}' for name, value in arrays.items())
    if key in arrays:
        array = arrays[key]
    else:
        matches = [
            value
            for value in arrays.values()
            if value.ndim == ndim
            and np.issubdtype(value.dtype, np.number)
            and not np.iscomplexobj(value)
        ]
        if len(matches) != 1:
            raise InvalidInputError(
                f'{path}: no array named {key!r}, and {len(matches)} other '
                f'{ndim}-D numeric arrays to use instead. The file holds: '
                f'{found or "no arrays"}. Pass the file that holds {key!r}.'
            )
        array = matches[0]
    if array.ndim != ndim or not np.issubdtype(array.dtype, np.number):
        raise InvalidInputError(
            f'{path}: array {key!r} is {array.dtype} with shape {array.shape}; '
            f'expected a {ndim}-D numeric array.'
        )
    return np.ascontiguousarray(array)


def check_bands(image: Tensor, expected: int, source: Path, axis: int = 0) -> None:
    """Check the band count of an image.

    Args:
        image: image tensor.
        expected: number of bands the dataset was configured with.
        source: file (or argument) the image came from, for the message.
        axis: band axis of ``image``.

    Raises:
        InvalidInputError: if the band count differs.
    """
    found = image.shape[axis]
    if found != expected:
        raise InvalidInputError(
            f'{source}: image has {found} bands, expected {expected}. Pass the file '
            'with the right bands, or set `bands=` to the bands the file holds.'
        )


def check_finite(image: Tensor, source: Path) -> None:
    """Check that an image holds no NaN or infinite values.

    Args:
        image: image tensor.
        source: file (or argument) the image came from, for the message.

    Raises:
        InvalidInputError: if any value is NaN or infinite.
    """
    finite = torch.isfinite(image)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise InvalidInputError(
            f'{source}: image holds {bad} NaN or infinite values. Fill or mask them '
            '(e.g. with the band median) before training, or drop the file.'
        )


def check_labels(mask: Tensor, num_classes: int, source: Path) -> None:
    """Check that every label lies in [0, num_classes).

    Args:
        mask: integer label tensor.
        num_classes: number of classes.
        source: file (or argument) the mask came from, for the message.

    Raises:
        InvalidInputError: if a label lies outside the classes.
    """
    if mask.numel() == 0:
        return
    low, high = int(mask.min()), int(mask.max())
    if low < 0 or high >= num_classes:
        raise InvalidInputError(
            f'{source}: label values span [{low}, {high}], outside the {num_classes} '
            f'classes [0, {num_classes - 1}]. Check the label encoding (raw codes '
            'must be remapped) or the `num_classes` setting.'
        )


def check_same_size(
    image: Tensor, mask: Tensor, image_source: Path, mask_source: Path
) -> None:
    """Check that an image and its mask cover the same pixels.

    Args:
        image: image tensor, spatial size in its last two dimensions.
        mask: mask tensor, spatial size in its last two dimensions.
        image_source: file the image came from, for the message.
        mask_source: file the mask came from, for the message.

    Raises:
        InvalidInputError: if the spatial sizes differ.
    """
    if image.shape[-2:] != mask.shape[-2:]:
        raise InvalidInputError(
            f'{image_source} is {tuple(image.shape[-2:])} pixels but its mask '
            f'{mask_source} is {tuple(mask.shape[-2:])}. Image and mask must cover '
            'the same grid: re-export one of them.'
        )


def check_split_list(names: Sequence[str], source: Path) -> None:
    """Check that a split file lists at least one sample.

    Args:
        names: sample names read from the file.
        source: the split file, for the message.

    Raises:
        InvalidInputError: if the list is empty.
    """
    if not names:
        raise InvalidInputError(
            f'{source}: the split file lists no samples. Write one sample name per '
            'line, or delete the file to fall back to the default split.'
        )
