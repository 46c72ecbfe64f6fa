"""Sentinel-2 class mean spectra and intra-class variability for the scene simulator.

All tables use the 13 Sentinel-2 MSI bands in torchgeo's OSCD order
(:data:`S2_BANDS`) and reflectance x 10000, the scale of Sentinel-2 L1C/L2A digital
numbers (without the +1000 offset that processing baseline 04.00 adds to products
made since 25 January 2022).

Sources. The numbers are built from Sentinel-2 pixel profiles published by Esri in
two open-source (Apache-2.0) apps; they are copied from those files, not read off
figures. Esri does not document the scenes or the number of pixels behind them:

* :data:`ESRI_L2A_PROFILES`: "typical spectral profiles" of ten land-cover types
  for the app's Sentinel-2 Level-2A (surface reflectance) imagery, "trained using the
  Spectral Sampling Tool" (the file's comment), 12 bands (no B10). Esri, *Imagery Explorer Apps*,
  https://github.com/Esri/imagery-explorer-apps, file
  ``src/sentinel-2-explorer/components/SpectralProfileTool/config.ts``, commit
  ``029bb3564881eedbc6cec9751fdae1563edf2340``. The band order is the app's
  ``SENTINEL2_BAND_NAMES`` (``src/shared/services/sentinel-2/config.ts``, same
  commit): Aerosol, Blue, Green, Red, Veg 1-3, NIR, N-NIR, Vapor, SWIR 1, SWIR 2,
  i.e. B01-B08, B8A, B09, B11, B12 of the ``Sentinel2L2A`` image service.
* :data:`ESRI_L1C_PROFILES`: the older Sentinel Explorer's identify profiles, 13
  bands B01-B12 with B8A after B08 and B10 included; top-of-atmosphere (L1C)
  reflectance, judging by B10 and by the high aerosol and blue values over water
  (the file does not say). Esri, *Imagery-Apps*, https://github.com/Esri/Imagery-Apps, file
  ``Sentinel Explorer/configs/Identify/config_Identify.json``, commit
  ``92d5f9b334ecf8030e01d0a2f56c5677e4d79b43``. Only its B10 (cirrus) values are
  used, because L2A products carry no B10.

Each Esri profile is a single "typical" spectrum of a land-cover type, not a mean
over a labelled data set, and the SegMunich-like classes (:data:`CLASSES`) are
linear mixtures of these endmembers (:data:`CLASS_MIXTURES`) chosen by us to
approximate each class at 10 m (e.g. arable land as bare soil plus crops, urban
fabric as pavement plus trees and lawns). The class spectra are therefore
approximations assembled from real measurements, meant for central-European summer
scenes; they are not statistics of SegMunich or OSCD and were not fitted to them. As in the L2A source, B09 over
land is surface reflectance (close to B8A), not the low top-of-atmosphere value of
L1C, and B10 is 5-22 DN. The intra-class variability (:data:`CLASS_RELATIVE_STD`,
:data:`CLASS_MIXTURE_CONCENTRATION`) and the sensor noise (:data:`SENSOR_NOISE_DN`)
are modelling choices, not measurements.
"""

from collections.abc import Sequence

import numpy as np

#: The 13 Sentinel-2 MSI bands in torchgeo's OSCD order.
S2_BANDS: tuple[str, ...] = (
    'B01',
    'B02',
    'B03',
    'B04',
    'B05',
    'B06',
    'B07',
    'B08',
    'B8A',
    'B09',
    'B10',
    'B11',
    'B12',
)

#: The 10 bands of SegMunich, in the order its files store them.
SEGMUNICH_BANDS: tuple[str, ...] = (
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

#: Band order of :data:`ESRI_L2A_PROFILES` (the L2A service has no B10).
ESRI_L2A_BANDS: tuple[str, ...] = tuple(band for band in S2_BANDS if band != 'B10')

#: Esri Sentinel-2 Explorer typical L2A profiles, surface reflectance in [0, 1],
#: bands :data:`ESRI_L2A_BANDS`. Copied from ``config.ts`` of
#: Esri/imagery-explorer-apps at commit 029bb35 (see the module docstring); 'Cloud'
#: and 'Snow and Ice' are left out.
# fmt: off
ESRI_L2A_PROFILES: dict[str, tuple[float, ...]] = {
    'Sand':               (0.17045, 0.24277, 0.30992, 0.36519, 0.38918, 0.38836, 0.39716, 0.41087, 0.40149, 0.37243, 0.43412, 0.38336),
    'Dry Vegetation':     (0.04732, 0.06093, 0.08916, 0.10076, 0.14655, 0.23523, 0.26743, 0.28261, 0.29321, 0.29663, 0.29241, 0.19994),
    'Paved Surface':      (0.13666875, 0.17266875, 0.20001875, 0.2190375, 0.2344875, 0.229875, 0.232975, 0.22775625, 0.2307875, 0.2256625, 0.27044375, 0.27213125),
    'Bare Soil':          (0.07416, 0.0955, 0.13096, 0.18147, 0.21583, 0.23725, 0.25643, 0.26663, 0.28528, 0.2869, 0.38474, 0.29332),
    'Healthy Vegetation': (0.02361, 0.02915, 0.05346, 0.02994, 0.07978, 0.31964, 0.42837, 0.43847, 0.45124, 0.44848, 0.17451, 0.08004),
    'Trees':              (0.01122, 0.01668, 0.03298, 0.02081, 0.05829, 0.1655, 0.19975, 0.21482, 0.21806, 0.21181, 0.09833, 0.05031),
    'Turbid Water':       (0.07213, 0.09002, 0.12151, 0.14041, 0.14911, 0.10413, 0.10868, 0.09596, 0.08182, 0.0334, 0.01894, 0.01684),
    'Clear Water':        (0.01823, 0.02118, 0.02177, 0.00924, 0.00842, 0.00337, 0.00364, 0.00281, 0.00253, -0.00038, 0.00299, 0.003),
}
# fmt: on

#: Esri Sentinel Explorer identify profiles, L1C top-of-atmosphere reflectance in
#: [0, 1], bands :data:`S2_BANDS`. Copied from ``config_Identify.json`` of
#: Esri/Imagery-Apps at commit 92d5f9b (see the module docstring); 'cloud' and
#: 'snow' are left out. Used here for B10 only.
# fmt: off
ESRI_L1C_PROFILES: dict[str, tuple[float, ...]] = {
    'desert':             (0.2121, 0.2203, 0.2703, 0.3643, 0.3759, 0.3932, 0.426, 0.4066, 0.4432, 0.141, 0.0022, 0.5477, 0.4689),
    'drygrass':           (0.1347, 0.119, 0.1189, 0.1552, 0.1659, 0.1802, 0.205, 0.2094, 0.2354, 0.0549, 0.0018, 0.3401, 0.2355),
    'concrete':           (0.2416, 0.2381, 0.242, 0.2711, 0.2814, 0.2928, 0.3016, 0.2696, 0.3068, 0.1042, 0.0011, 0.3076, 0.2281),
    'lushgrass':          (0.1307, 0.0981, 0.0875, 0.0506, 0.0901, 0.2563, 0.3342, 0.3195, 0.3801, 0.035, 0.0009, 0.1821, 0.0631),
    'urban':              (0.1843, 0.1172, 0.0984, 0.0888, 0.1115, 0.0938, 0.1112, 0.0784, 0.0962, 0.0493, 0.0011, 0.1232, 0.1194),
    'rock':               (0.1524, 0.1449, 0.1483, 0.1521, 0.1522, 0.1566, 0.1601, 0.1458, 0.1577, 0.056, 0.0005, 0.1291, 0.1062),
    'forest':             (0.115, 0.0852, 0.064, 0.0406, 0.0763, 0.2183, 0.273, 0.2763, 0.3115, 0.0974, 0.0011, 0.082, 0.0315),
    'water':              (0.1231, 0.0959, 0.0776, 0.0612, 0.0509, 0.0301, 0.0285, 0.0223, 0.019, 0.0059, 0.0006, 0.0044, 0.0037),
}
# fmt: on

#: Which L1C profile lends its B10 value to each L2A endmember (nearest cover type).
B10_SOURCE: dict[str, str] = {
    'Sand': 'desert',
    'Dry Vegetation': 'drygrass',
    'Paved Surface': 'concrete',
    'Bare Soil': 'rock',
    'Healthy Vegetation': 'lushgrass',
    'Trees': 'forest',
    'Turbid Water': 'water',
    'Clear Water': 'water',
}


def _endmember(name: str) -> np.ndarray:
    """Build one 13-band endmember in DN from the Esri profiles.

    Args:
        name: key of :data:`ESRI_L2A_PROFILES`.

    Returns:
        reflectance x 10000 in :data:`S2_BANDS` order, negatives clipped to 0.
    """
    l2a = dict(zip(ESRI_L2A_BANDS, ESRI_L2A_PROFILES[name], strict=True))
    l2a['B10'] = ESRI_L1C_PROFILES[B10_SOURCE[name]][S2_BANDS.index('B10')]
    spectrum = np.array([l2a[band] for band in S2_BANDS]) * 10000
    spectrum = np.clip(np.round(spectrum), 0, None)
    spectrum.flags.writeable = False
    return spectrum


#: Endmember spectra, reflectance x 10000 in :data:`S2_BANDS` order: the L2A
#: profiles (the only negative value, Clear Water B09 = -4, clipped to 0) with B10
#: from :data:`ESRI_L1C_PROFILES` through :data:`B10_SOURCE`.
ENDMEMBERS: dict[str, np.ndarray] = {
    name: _endmember(name) for name in ESRI_L2A_PROFILES
}

#: SegMunich-like land-cover classes simulated, in label order.
CLASSES: tuple[str, ...] = (
    'Arable land',
    'Pastures',
    'Forests',
    'Surface water',
    'Urban fabric',
    'Buildings',
    'Open spaces',
    'Wetlands',
)

#: Each class as fractions of :data:`ENDMEMBERS` (our modelling choice; sums to 1).
CLASS_MIXTURES: dict[str, dict[str, float]] = {
    # fields at every stage, from bare to full crop cover
    'Arable land': {'Bare Soil': 0.5, 'Healthy Vegetation': 0.4, 'Dry Vegetation': 0.1},
    # managed grassland, mostly green
    'Pastures': {'Healthy Vegetation': 0.8, 'Dry Vegetation': 0.15, 'Bare Soil': 0.05},
    # closed canopy (the Esri 'Trees' profile is a dark, conifer-like canopy)
    'Forests': {'Trees': 1.0},
    # lakes and rivers, mostly clear with some suspended sediment
    'Surface water': {'Clear Water': 0.85, 'Turbid Water': 0.15},
    # residential: sealed surfaces with street trees and gardens
    'Urban fabric': {'Paved Surface': 0.55, 'Trees': 0.25, 'Healthy Vegetation': 0.2},
    # bright roofs and concrete
    'Buildings': {'Paved Surface': 0.9, 'Bare Soil': 0.1},
    # bare soil, sand and sparse dry vegetation
    'Open spaces': {'Bare Soil': 0.6, 'Sand': 0.3, 'Dry Vegetation': 0.1},
    # wet meadows and reed beds over shallow water
    'Wetlands': {
        'Healthy Vegetation': 0.55,
        'Dry Vegetation': 0.15,
        'Clear Water': 0.3,
    },
}

#: Dirichlet concentration of the per-parcel mixture fractions around
#: :data:`CLASS_MIXTURES` (modelling choice): low values give parcels of very
#: different make-up (arable fields from bare to green), high values nearly fixed
#: fractions. Single-endmember classes ignore it.
CLASS_MIXTURE_CONCENTRATION: dict[str, float] = {
    'Arable land': 2.5,
    'Pastures': 20.0,
    'Forests': 50.0,
    'Surface water': 80.0,
    'Urban fabric': 12.0,
    'Buildings': 10.0,
    'Open spaces': 8.0,
    'Wetlands': 10.0,
}

#: Relative standard deviation of the multiplicative brightness variation within a
#: class (illumination, canopy structure, moisture; modelling choice, 5-15 %). It is
#: split between a low-frequency field, per-parcel offsets and per-pixel texture.
CLASS_RELATIVE_STD: dict[str, float] = {
    'Arable land': 0.10,
    'Pastures': 0.08,
    'Forests': 0.10,
    'Surface water': 0.15,
    'Urban fabric': 0.12,
    'Buildings': 0.12,
    'Open spaces': 0.10,
    'Wetlands': 0.12,
}

#: Standard deviation of additive sensor noise per band in DN, :data:`S2_BANDS`
#: order (modelling choice: a few DN, less for the dark cirrus band).
SENSOR_NOISE_DN: tuple[float, ...] = (
    4.0,
    3.0,
    3.0,
    3.0,
    4.0,
    4.0,
    4.0,
    4.0,
    5.0,
    5.0,
    1.0,
    4.0,
    4.0,
)


def _class_spectrum(name: str) -> np.ndarray:
    """Mix the endmembers of one class.

    Args:
        name: key of :data:`CLASS_MIXTURES`.

    Returns:
        reflectance x 10000 in :data:`S2_BANDS` order.
    """
    spectrum = sum(
        (
            fraction * ENDMEMBERS[member]
            for member, fraction in CLASS_MIXTURES[name].items()
        ),
        start=np.zeros(len(S2_BANDS)),
    )
    spectrum.flags.writeable = False
    return spectrum


#: Class mean spectra, reflectance x 10000 in :data:`S2_BANDS` order: the
#: :data:`CLASS_MIXTURES` of :data:`ENDMEMBERS`.
CLASS_SPECTRA: dict[str, np.ndarray] = {name: _class_spectrum(name) for name in CLASSES}


def band_indices(bands: Sequence[str]) -> list[int]:
    """Positions of Sentinel-2 band names in :data:`S2_BANDS`.

    Args:
        bands: band names, each one of :data:`S2_BANDS`.

    Returns:
        the index of each band in :data:`S2_BANDS`.

    Raises:
        ValueError: if a band name is unknown.
    """
    unknown = [band for band in bands if band not in S2_BANDS]
    if unknown:
        raise ValueError(f'unknown Sentinel-2 bands {unknown}; valid bands: {S2_BANDS}')
    return [S2_BANDS.index(band) for band in bands]


def class_spectra(
    classes: Sequence[str] = CLASSES, bands: Sequence[str] = S2_BANDS
) -> np.ndarray:
    """Class mean spectra as an array.

    Args:
        classes: class names, keys of :data:`CLASS_SPECTRA`.
        bands: band names, each one of :data:`S2_BANDS`.

    Returns:
        [len(classes), len(bands)] reflectance x 10000, float64.
    """
    indices = band_indices(bands)
    return np.stack([CLASS_SPECTRA[name][indices] for name in classes])
