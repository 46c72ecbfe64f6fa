"""Simulated Sentinel-2 scenes: the embedded default data source, no download needed."""

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from scipy import ndimage
from torchgeo.datasets import NonGeoDataset

from ..types import Sample
from .plotting import plot_change, plot_segmentation, rgb_band_indices
from .spectra import (
    CLASS_MIXTURE_CONCENTRATION,
    CLASS_MIXTURES,
    CLASS_RELATIVE_STD,
    CLASSES,
    ENDMEMBERS,
    S2_BANDS,
    SEGMUNICH_BANDS,
    SENSOR_NOISE_DN,
)
from .validation import InvalidInputError

__all__ = ('SEGMUNICH_BANDS', 'SimulatedChange', 'SimulatedSegmentation')

#: Endmember names, in the order of the last axis of the mixture weights.
_MEMBERS: tuple[str, ...] = tuple(ENDMEMBERS)
#: [E, 13] endmember spectra in DN.
_MEMBER_SPECTRA: np.ndarray = np.stack([ENDMEMBERS[name] for name in _MEMBERS])
#: Class index by name.
_CLASS: dict[str, int] = {name: index for index, name in enumerate(CLASSES)}
#: [K] relative brightness standard deviation of each class.
_RELATIVE_STD: np.ndarray = np.array([CLASS_RELATIVE_STD[name] for name in CLASSES])
#: [13] sensor noise in DN.
_NOISE: np.ndarray = np.array(SENSOR_NOISE_DN, dtype=np.float32)

#: Rough share of each class in a scene (central-European landscape; modelling choice).
_PRIORS: dict[str, float] = {
    'Arable land': 0.30,
    'Pastures': 0.16,
    'Forests': 0.22,
    'Surface water': 0.05,
    'Urban fabric': 0.14,
    'Buildings': 0.03,
    'Open spaces': 0.05,
    'Wetlands': 0.05,
}

#: Land-cover colours for plots, in :data:`CLASSES` order.
_CMAP = ListedColormap(
    [
        '#f3d36b',  # Arable land
        '#a6d96a',  # Pastures
        '#1b7837',  # Forests
        '#2b83ba',  # Surface water
        '#e34a33',  # Urban fabric
        '#7f0000',  # Buildings
        '#d9b38c',  # Open spaces
        '#66c2a4',  # Wetlands
    ],
    name='simulated_land_cover',
)

#: Kinds of inserted change: (classes they can replace, classes they leave, weight).
_CHANGES: dict[str, tuple[tuple[str, ...], tuple[str, ...], float]] = {
    'construction': (
        ('Arable land', 'Pastures', 'Forests', 'Open spaces', 'Wetlands'),
        ('Buildings', 'Urban fabric'),
        0.55,
    ),
    'clearing': (('Forests', 'Pastures', 'Wetlands'), ('Open spaces',), 0.2),
    'demolition': (('Buildings', 'Urban fabric'), ('Open spaces',), 0.1),
    'flooding': (
        ('Arable land', 'Pastures', 'Open spaces', 'Wetlands'),
        ('Surface water',),
        0.1,
    ),
    'drying': (('Surface water', 'Wetlands'), ('Open spaces',), 0.05),
}


def _check_bands(bands: Sequence[str], all_bands: Sequence[str]) -> tuple[str, ...]:
    """Validate a band selection.

    Args:
        bands: requested band names.
        all_bands: valid band names.

    Returns:
        the bands as a tuple.

    Raises:
        InvalidInputError: if ``bands`` is empty or names an unknown band.
    """
    if isinstance(bands, str):
        bands = (bands,)
    unknown = [band for band in bands if band not in all_bands]
    if unknown:
        raise InvalidInputError(
            f'bands={list(bands)!r}: {unknown} not simulated. Valid bands are '
            f'{tuple(all_bands)}; pass a non-empty subset, in any order.'
        )
    if not bands:
        raise InvalidInputError(
            f'bands is empty: pass a non-empty subset of {tuple(all_bands)}.'
        )
    return tuple(bands)


def _check_integer(name: str, value: int, minimum: int) -> int:
    """Validate an integer argument.

    Args:
        name: argument name, for the message.
        value: argument value.
        minimum: smallest valid value.

    Returns:
        the value as an int.

    Raises:
        InvalidInputError: if ``value`` is not an integer of at least ``minimum``.
    """
    try:
        number = operator.index(value)
    except TypeError:
        raise InvalidInputError(f'{name}={value!r} must be an integer.') from None
    if number < minimum:
        raise InvalidInputError(f'{name}={value} must be at least {minimum}.')
    return number


def _smooth_fields(
    rng: np.random.Generator, count: int, size: int, sigma: float
) -> np.ndarray:
    """Gaussian-filtered white noise fields with unit standard deviation.

    Filtering is done with an FFT on a grid padded by three sigma, so that the
    fields do not wrap around the tile edges.

    Args:
        rng: random generator.
        count: number of fields.
        size: side of each field in pixels.
        sigma: Gaussian standard deviation (correlation length) in pixels.

    Returns:
        [count, size, size] float32 fields.
    """
    padded = size + 2 * int(np.ceil(3 * sigma))
    noise = rng.standard_normal((count, padded, padded), dtype=np.float32)
    fy = np.fft.fftfreq(padded)[:, None]
    fx = np.fft.rfftfreq(padded)[None, :]
    gain = np.exp(-2 * (np.pi * sigma) ** 2 * (fy**2 + fx**2)).astype(np.float32)
    fields = np.fft.irfft2(np.fft.rfft2(noise) * gain, s=(padded, padded))
    fields = fields[:, :size, :size]
    fields -= fields.mean(axis=(1, 2), keepdims=True)
    fields /= fields.std(axis=(1, 2), keepdims=True) + 1e-6
    return fields.astype(np.float32, copy=False)


@dataclass
class _Scene:
    """Everything needed to render one scene, independent of the date.

    Attributes:
        labels: [H, W] class of each pixel.
        parcels: [H, W] parcel of each pixel.
        weights: [P, K, E] endmember fractions of each class in each parcel.
        parcel_offset: [P] brightness offset of each parcel, unit variance.
        low: [H, W] low-frequency brightness field, unit variance.
        texture: [H, W] per-pixel brightness texture, unit variance.
    """

    labels: np.ndarray
    parcels: np.ndarray
    weights: np.ndarray
    parcel_offset: np.ndarray
    low: np.ndarray
    texture: np.ndarray


def _layout(rng: np.random.Generator, size: int) -> np.ndarray:
    """Draw a land-cover map: smooth patches plus buildings, roads and a river.

    Args:
        rng: random generator.
        size: side of the map in pixels.

    Returns:
        [size, size] int64 class labels.
    """
    num_classes = len(CLASSES)
    sigma = float(np.exp(rng.uniform(np.log(4), np.log(11))))
    fields = _smooth_fields(rng, num_classes, size, sigma)
    # scene-level class preferences: priors plus a random tilt per scene
    priors = np.log([_PRIORS[name] for name in CLASSES])
    bias = 0.6 * (priors - priors.mean()) + rng.normal(0, 0.7, num_classes)
    labels = np.argmax(fields + bias[:, None, None].astype(np.float32), axis=0)

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)

    # a meandering river
    if rng.random() < 0.25:
        angle = rng.uniform(0, np.pi)
        across = (xx - size / 2) * np.sin(angle) - (yy - size / 2) * np.cos(angle)
        along = (xx - size / 2) * np.cos(angle) + (yy - size / 2) * np.sin(angle)
        wave = rng.uniform(0.5, 3) * np.sin(
            2 * np.pi * along / rng.uniform(20, 60) + rng.uniform(0, 2 * np.pi)
        )
        offset = rng.uniform(-0.35, 0.35) * size
        labels[np.abs(across - offset - wave) < rng.uniform(1.0, 2.5)] = _CLASS[
            'Surface water'
        ]

    # buildings: blocks inside urban fabric
    urban = labels == _CLASS['Urban fabric']
    block = int(rng.integers(3, 6))
    cells = -(-size // block)
    blocks = rng.random((cells, cells)) < rng.uniform(0.25, 0.45)
    blocks = np.repeat(np.repeat(blocks, block, axis=0), block, axis=1)[:size, :size]
    labels[urban & blocks] = _CLASS['Buildings']

    # straight roads (mixed asphalt and verge pixels, labelled urban fabric)
    for _ in range(int(rng.choice(3, p=(0.5, 0.35, 0.15)))):
        angle = rng.uniform(0, np.pi)
        cx, cy = rng.uniform(0, size, 2)
        distance = np.abs((xx - cx) * np.sin(angle) - (yy - cy) * np.cos(angle))
        road = (distance < rng.uniform(0.5, 0.9)) & (labels != _CLASS['Surface water'])
        labels[road] = _CLASS['Urban fabric']
    return labels.astype(np.int64)


def _parcels(rng: np.random.Generator, size: int) -> np.ndarray:
    """Cut the tile into rotated strips of rectangular parcels.

    Args:
        rng: random generator.
        size: side of the tile in pixels.

    Returns:
        [size, size] int64 parcel ids in [0, P).
    """
    angle = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    u = xx * np.cos(angle) + yy * np.sin(angle)
    v = -xx * np.sin(angle) + yy * np.cos(angle)
    height = rng.uniform(8, 18)
    rows = np.floor((v - v.min()) / height).astype(np.int64)
    num_rows = int(rows.max()) + 1
    widths = rng.uniform(8, 30, num_rows)
    shifts = rng.uniform(0, 30, num_rows)
    cols = np.floor((u - u.min() + shifts[rows]) / widths[rows]).astype(np.int64)
    max_cols = int(np.ceil((size * 1.5 + 30) / 8)) + 1
    ids: np.ndarray = rows * max_cols + cols
    return ids


def _simulate_scene(rng: np.random.Generator, size: int) -> _Scene:
    """Draw the layout and the intra-class variation of one scene.

    Args:
        rng: random generator.
        size: side of the scene in pixels.

    Returns:
        the scene.
    """
    labels = _layout(rng, size)
    parcels = _parcels(rng, size)
    _, parcels = np.unique(parcels, return_inverse=True)
    parcels = parcels.reshape(size, size)
    num_parcels = int(parcels.max()) + 1

    weights = np.zeros((num_parcels, len(CLASSES), len(_MEMBERS)), np.float32)
    for k, name in enumerate(CLASSES):
        members = [_MEMBERS.index(member) for member in CLASS_MIXTURES[name]]
        fractions = np.array(list(CLASS_MIXTURES[name].values()))
        if len(members) == 1:
            weights[:, k, members[0]] = 1
        else:
            alpha = CLASS_MIXTURE_CONCENTRATION[name] * fractions
            weights[:, k, members] = rng.dirichlet(alpha, num_parcels)
    # a water body has one make-up, not parcels
    water = _CLASS['Surface water']
    weights[:, water] = weights[0, water]

    sigma_low = rng.uniform(8, 20)
    return _Scene(
        labels=labels,
        parcels=parcels,
        weights=weights,
        parcel_offset=rng.standard_normal(num_parcels).astype(np.float32),
        low=_smooth_fields(rng, 1, size, sigma_low)[0],
        texture=rng.standard_normal((size, size), dtype=np.float32),
    )


def _render(
    scene: _Scene,
    labels: np.ndarray,
    rng: np.random.Generator,
    weights: np.ndarray | None = None,
    gain: np.ndarray | None = None,
) -> np.ndarray:
    """Turn a scene into a 13-band image.

    Args:
        scene: the scene.
        labels: [H, W] classes to render (the scene's, or changed ones).
        rng: random generator, for the sensor noise.
        weights: [P, K, E] endmember fractions replacing the scene's.
        gain: [13, H, W] multiplicative gain (illumination and calibration drift).

    Returns:
        [13, H, W] float32 reflectance x 10000, clipped to [0, 10000].
    """
    if weights is None:
        weights = scene.weights
    # [P, K, 13] spectrum of each class in each parcel
    spectra = weights @ _MEMBER_SPECTRA.astype(np.float32)
    parcels = np.where(labels == _CLASS['Surface water'], 0, scene.parcels)
    image = spectra[parcels, labels]  # [H, W, 13]
    relative = _RELATIVE_STD.astype(np.float32)[labels]
    variation = (
        0.6 * scene.low + 0.5 * scene.parcel_offset[parcels] + 0.4 * scene.texture
    )
    image = np.moveaxis(image * (1 + relative * variation)[..., None], -1, 0)
    if gain is not None:
        image = image * gain
    noise = rng.standard_normal(image.shape, dtype=np.float32)
    image = image + noise * _NOISE[:, None, None]
    return np.clip(image, 0, 10000).astype(np.float32, copy=False)


class _SimulatedDataset(NonGeoDataset):
    """Shared arguments, seeding and indexing of the simulated datasets."""

    all_bands: tuple[str, ...] = S2_BANDS
    rgb_bands: tuple[str, ...] = ('B04', 'B03', 'B02')
    default_bands: tuple[str, ...] = S2_BANDS
    #: Mixed into the seed so that the datasets draw independent scenes.
    _salt = 0

    def __init__(
        self,
        num_samples: int,
        size: int,
        seed: int,
        bands: Sequence[str],
        transforms: Callable[[Sample], Sample] | None,
    ) -> None:
        """Validate and store the arguments.

        Args:
            num_samples: number of samples in the dataset.
            size: side of each sample in pixels.
            seed: base seed.
            bands: bands to return.
            transforms: a function/transform that takes a sample and returns a
                transformed version.
        """
        self.num_samples = _check_integer('num_samples', num_samples, 0)
        self.size = _check_integer('size', size, 8)
        self.seed = _check_integer('seed', seed, 0)
        self.bands = _check_bands(bands, self.all_bands)
        self.band_indices = [self.all_bands.index(band) for band in self.bands]
        self.transforms = transforms

    def __len__(self) -> int:
        """Return the number of samples in the dataset.

        Returns:
            length of the dataset
        """
        return self.num_samples

    def _rng(self, index: int) -> np.random.Generator:
        """Check an index and make the generator of its sample.

        Args:
            index: sample index; negative values count from the end.

        Returns:
            a generator seeded by ``(seed, index)`` only.

        Raises:
            IndexError: if ``index`` is out of range.
        """
        index = operator.index(index)
        if not -self.num_samples <= index < self.num_samples:
            raise IndexError(
                f'index {index} is out of range for a dataset of {self.num_samples}'
            )
        index %= self.num_samples
        return np.random.default_rng(
            np.random.SeedSequence([self.seed, index, self._salt])
        )

    def _rgb_indices(self) -> list[int]:
        """Positions of the RGB bands in :attr:`bands`.

        Returns:
            the indices of :attr:`rgb_bands`.

        Raises:
            RGBBandsMissingError: if a RGB band is not in :attr:`bands`.
        """
        return rgb_band_indices(self.bands, self.rgb_bands)


class SimulatedSegmentation(_SimulatedDataset):
    """Simulated Sentinel-2 land-cover segmentation scenes.

    A scene simulator that stands in for SegMunich-like data, so that every workflow
    runs without downloading anything. Each sample is drawn from its own generator,
    seeded by ``(seed, index)`` only, so it is identical on every call and in every
    worker.

    Scene model:

    * layout: argmax over one Gaussian-filtered noise field per class (random
      correlation length of 4-11 px, random class preferences per scene), so
      classes form patches with smooth edges; blocks of buildings inside urban
      fabric, straight roads and sometimes a meandering river
    * spectra: each class is a mixture of Sentinel-2 endmember spectra whose
      fractions vary from parcel to parcel (rotated strips of rectangular
      parcels), e.g. arable fields from bare soil to full crop cover
    * brightness: class mean x (1 + relative std x (low-frequency field +
      per-parcel offset + per-pixel texture)), then additive sensor noise of a few
      DN per band

    Dataset format:

    * ``image``: float32 [C, size, size], reflectance x 10000 in [0, 10000]
      (Sentinel-2 L2A-like digital numbers)
    * ``mask``: int64 [size, size], class indices into :attr:`classes`

    Dataset classes:

    0. Arable land
    1. Pastures
    2. Forests
    3. Surface water
    4. Urban fabric
    5. Buildings
    6. Open spaces
    7. Wetlands

    Spectra come from measured Sentinel-2 L2A profiles published by Esri (Imagery
    Explorer Apps, Apache-2.0), mixed into these classes; see
    :mod:`torchgeo_specdm.datasets.spectra` for the sources and the caveats.

    .. versionadded:: 0.1
    """

    default_bands: tuple[str, ...] = SEGMUNICH_BANDS
    classes: tuple[str, ...] = CLASSES
    cmap = _CMAP
    _salt = 1

    def __init__(
        self,
        num_samples: int = 64,
        size: int = 64,
        seed: int = 0,
        bands: Sequence[str] = SEGMUNICH_BANDS,
        transforms: Callable[[Sample], Sample] | None = None,
    ) -> None:
        """Initialize a new SimulatedSegmentation instance.

        Args:
            num_samples: number of samples in the dataset.
            size: side of each (square) sample in pixels, at least 8.
            seed: non-negative base seed; sample ``i`` depends on ``(seed, i)`` only.
            bands: bands to return, any non-empty subset of :attr:`all_bands` in any
                order (defaults to SegMunich's 10 bands in SegMunich's order).
            transforms: a function/transform that takes an input sample and returns
                a transformed version.

        Raises:
            InvalidInputError: if an argument is invalid (e.g. an unknown band).
        """
        super().__init__(num_samples, size, seed, bands, transforms)

    def __getitem__(self, index: int) -> Sample:
        """Return the sample at an index.

        Args:
            index: index to return.

        Returns:
            the image and its mask.

        Raises:
            IndexError: if ``index`` is out of range.
        """
        rng = self._rng(index)
        scene = _simulate_scene(rng, self.size)
        image = _render(scene, scene.labels, rng)[self.band_indices]
        sample = {
            'image': torch.from_numpy(np.ascontiguousarray(image)),
            'mask': torch.from_numpy(scene.labels),
        }
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    def plot(
        self, sample: Sample, show_titles: bool = True, suptitle: str | None = None
    ) -> Figure:
        """Plot a sample from the dataset.

        Args:
            sample: a sample returned by :meth:`__getitem__`, optionally with a
                ``prediction``.
            show_titles: flag indicating whether to show titles above each panel.
            suptitle: optional string to use as a suptitle.

        Returns:
            a matplotlib Figure with the rendered sample.

        Raises:
            RGBBandsMissingError: if *bands* does not include all RGB bands.
        """
        return plot_segmentation(
            sample['image'],
            sample['mask'],
            self._rgb_indices(),
            self.classes,
            prediction=sample.get('prediction'),
            show_titles=show_titles,
            suptitle=suptitle,
            cmap=_CMAP,
        )


class SimulatedChange(_SimulatedDataset):
    """Simulated bi-temporal Sentinel-2 change detection pairs.

    A scene simulator that stands in for OSCD-like data. Samples match torchgeo's
    :class:`~torchgeo.datasets.OSCD`: ``image`` [2, C, H, W] and ``mask`` [1, H, W].
    Each sample is drawn from its own generator, seeded by ``(seed, index)`` only.

    Date 1 is a scene as in :class:`SimulatedSegmentation`. Date 2 is the same scene
    with drift everywhere, which the mask does not mark:

    * seasonal shift of the vegetation (fractions move between green and dry
      vegetation, greener or browner)
    * per-band calibration/atmosphere gain and a smooth illumination gradient
    * fresh sensor noise

    plus inserted changes, which the mask marks exactly (the pixels whose land cover
    differs between the dates). Each pair draws a share of change (0-15 % of the
    tile) and cuts blobs from a smooth random field; blobs, in random order, become
    one kind of change each until the share is reached: construction (vegetation or
    soil to buildings or urban fabric, rectangular lots), clearing (forest, grassland
    or wetland to open space), demolition, flooding or drying up. A blob changes only
    the pixels whose class its kind can replace. Over many pairs the changed share
    spans about 0-20 %, median 8 %.

    Dataset format:

    * ``image``: float32 [2, C, size, size], reflectance x 10000 in [0, 10000]
    * ``mask``: int64 [1, size, size], 0: no change, 1: change

    Spectra come from measured Sentinel-2 profiles published by Esri; see
    :mod:`torchgeo_specdm.datasets.spectra` for the sources and the caveats.

    .. versionadded:: 0.1
    """

    classes: tuple[str, ...] = ('No change', 'Change')
    _salt = 2

    def __init__(
        self,
        num_samples: int = 64,
        size: int = 64,
        seed: int = 0,
        bands: Sequence[str] = S2_BANDS,
        transforms: Callable[[Sample], Sample] | None = None,
    ) -> None:
        """Initialize a new SimulatedChange instance.

        Args:
            num_samples: number of samples in the dataset.
            size: side of each (square) sample in pixels, at least 8.
            seed: non-negative base seed; sample ``i`` depends on ``(seed, i)`` only.
            bands: bands to return, any non-empty subset of :attr:`all_bands` in any
                order (defaults to all 13 bands in OSCD's order).
            transforms: a function/transform that takes an input sample and returns
                a transformed version; like torchgeo's OSCD, it gets ``image``
                [1, 2, C, H, W] and ``mask`` [1, 1, H, W] (batch dimension added for
                kornia's ``VideoSequential``) and the batch dimension is removed
                afterwards.

        Raises:
            InvalidInputError: if an argument is invalid (e.g. an unknown band).
        """
        super().__init__(num_samples, size, seed, bands, transforms)

    def _simulate(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Simulate one pair.

        Args:
            index: sample index.

        Returns:
            [2, 13, H, W] image pair, and the [H, W] land cover of each date.
        """
        rng = self._rng(index)
        scene = _simulate_scene(rng, self.size)
        before = scene.labels
        after = _insert_changes(rng, before)

        # seasonal shift: move vegetation fractions between green and dry
        weights = scene.weights.copy()
        green = _MEMBERS.index('Healthy Vegetation')
        dry = _MEMBERS.index('Dry Vegetation')
        shift = rng.uniform(-0.3, 0.3)
        source, target = (green, dry) if shift > 0 else (dry, green)
        moved = abs(shift) * weights[..., source]
        weights[..., source] -= moved
        weights[..., target] += moved

        # calibration/atmosphere gain per band and an illumination gradient
        size = self.size
        band_gain = rng.normal(1, 0.03, len(S2_BANDS)).astype(np.float32)
        angle = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
        ramp = 1 + rng.uniform(0, 0.12) * (xx * np.cos(angle) + yy * np.sin(angle))
        gain = band_gain[:, None, None] * ramp[None]

        image = np.stack(
            [
                _render(scene, before, rng),
                _render(scene, after, rng, weights=weights, gain=gain),
            ]
        )
        return image, before, after

    def __getitem__(self, index: int) -> Sample:
        """Return the sample at an index.

        Args:
            index: index to return.

        Returns:
            the image pair and its change mask.

        Raises:
            IndexError: if ``index`` is out of range.
        """
        image, before, after = self._simulate(index)
        image = np.ascontiguousarray(image[:, self.band_indices])
        mask = (before != after)[None].astype(np.int64)
        sample = {'image': torch.from_numpy(image), 'mask': torch.from_numpy(mask)}
        if self.transforms is not None:
            # like torchgeo's OSCD: VideoSequential needs a batch dimension
            sample['image'] = sample['image'].unsqueeze(0)
            sample['mask'] = sample['mask'].unsqueeze(0)
            sample = self.transforms(sample)
            sample['image'] = sample['image'].squeeze(0)
            sample['mask'] = sample['mask'].squeeze(0)
        return sample

    def plot(
        self, sample: Sample, show_titles: bool = True, suptitle: str | None = None
    ) -> Figure:
        """Plot a sample from the dataset.

        Args:
            sample: a sample returned by :meth:`__getitem__`, optionally with a
                ``prediction``.
            show_titles: flag indicating whether to show titles above each panel.
            suptitle: optional string to use as a suptitle.

        Returns:
            a matplotlib Figure with the rendered sample.

        Raises:
            RGBBandsMissingError: if *bands* does not include all RGB bands.
        """
        return plot_change(
            sample['image'],
            sample['mask'],
            self._rgb_indices(),
            prediction=sample.get('prediction'),
            show_titles=show_titles,
            suptitle=suptitle,
        )


def _insert_changes(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """Insert land-cover changes into a label map.

    Args:
        rng: random generator.
        labels: [H, W] land cover of date 1.

    Returns:
        [H, W] land cover of date 2.
    """
    size = labels.shape[0]
    budget = rng.uniform(0, 0.15) * size * size
    field = _smooth_fields(rng, 1, size, rng.uniform(2, 4.5))[0]
    blobs = field > np.quantile(field, 1 - 1.5 * budget / (size * size))
    components, count = ndimage.label(blobs)
    windows = ndimage.find_objects(components)
    after = labels.copy()
    kinds = list(_CHANGES)
    changed = 0
    for number in rng.permutation(count) + 1:
        if changed >= budget:
            break
        window = windows[number - 1]
        blob = components[window] == number
        under = labels[window]
        majority = CLASSES[int(np.bincount(under[blob]).argmax())]
        options = [kind for kind in kinds if majority in _CHANGES[kind][0]]
        chances = np.array([_CHANGES[kind][2] for kind in options])
        kind = options[int(rng.choice(len(options), p=chances / chances.sum()))]
        sources, targets, _ = _CHANGES[kind]
        if kind == 'construction' and blob.size <= 2 * np.count_nonzero(blob):
            blob = np.ones_like(blob)  # compact building lots become rectangles
        target = targets[int(rng.integers(len(targets)))]
        replace = blob & np.isin(under, [_CLASS[name] for name in sources])
        area = int(np.count_nonzero(replace))
        if changed + area > 1.5 * budget + 16:
            continue  # too large for this scene's share of change
        after[window][replace] = _CLASS[target]
        changed += area
    return after
