"""Salinas-A hyperspectral scene."""

from typing import ClassVar

from .hyperspectral import HyperspectralScene, nearest_bands, sensor_bands

#: 1-based AVIRIS bands that the "corrected" Salinas cubes leave out (water
#: absorption): 108-112, 154-167 and 224.
SALINAS_DROPPED_BANDS: tuple[int, ...] = (*range(108, 113), *range(154, 168), 224)

_BANDS, _WAVELENGTHS = sensor_bands(224, 400.0, 2500.0, SALINAS_DROPPED_BANDS)


class SalinasA(HyperspectralScene):
    """Salinas-A hyperspectral scene.

    Salinas-A is an 86 x 83 px subscene of the AVIRIS flight line over Salinas
    Valley, California (3.7 m pixels), distributed by the Grupo de Inteligencia
    Computacional (UPV/EHU) on its `Hyperspectral Remote Sensing Scenes
    <https://www.ehu.eus/ccwintco/index.php/Hyperspectral_Remote_Sensing_Scenes>`__
    page. The arrays hold 83 rows and 86 columns.

    Dataset format:

    * ``SalinasA_corrected.mat``: ``salinasA_corrected``, int16 83 x 86 x 204
      at-sensor radiance (scaled integers; a few values are negative)
    * ``SalinasA_gt.mat``: ``salinasA_gt``, uint8 83 x 86 class codes

    Bands: AVIRIS records 224 bands from about 400 to 2500 nm, about 10 nm apart.
    The corrected cube drops the 20 water-absorption bands 108-112, 154-167 and 224
    (1-based), leaving 204. The files hold no wavelengths: :attr:`wavelengths`
    spreads the 224 centres evenly over the nominal 400-2500 nm (9.4 nm apart) and
    keeps the 204. They are **approximate**: real AVIRIS centres come from each
    flight's calibration, are not evenly spaced (four spectrometers that overlap at
    their edges) and can differ from these by a few band widths. Use them to pick
    bands and to label plots, not for spectral matching against libraries. Band
    names are the AVIRIS band numbers, ``'B001'`` to ``'B223'``.

    Classes: the raw codes keep the full Salinas scene's numbering and are remapped
    to contiguous indices: 0 (unlabelled, 1790 px) stays 0, and 1, 10, 11, 12, 13,
    14 become 1 to 6 (391, 1343, 616, 1525, 674 and 799 px).

    The default spatial split cuts the scene into column blocks, 52, 17 and 17 px
    wide (train, val, test, from the left). The fields run diagonally across the
    scene, so Brocoli_green_weeds_1 (top left) lies only in the train block and
    Lettuce_romaine_4wk has no test pixel; every other class is in every block.
    ``split_method='stratified_blocks'`` instead gives 5 x 5 grid blocks to the
    parts so that train, val and test each hold all six classes (pixel counts
    in :class:`~torchgeo_specdm.datamodules.SalinasADataModule`).

    If you use this dataset in your research, cite the AVIRIS acquisition (NASA
    JPL) and the GIC (UPV/EHU) Hyperspectral Remote Sensing Scenes page.

    .. versionadded:: 0.1
    """

    image_file = 'SalinasA_corrected.mat'
    label_file = 'SalinasA_gt.mat'
    image_key = 'salinasA_corrected'
    label_key = 'salinasA_gt'
    all_bands = _BANDS
    wavelengths = _WAVELENGTHS
    rgb_bands = nearest_bands(_BANDS, _WAVELENGTHS)
    classes: ClassVar[tuple[str, ...]] = (
        'Unlabelled',
        'Brocoli_green_weeds_1',
        'Corn_senesced_green_weeds',
        'Lettuce_romaine_4wk',
        'Lettuce_romaine_5wk',
        'Lettuce_romaine_6wk',
        'Lettuce_romaine_7wk',
    )
    label_codes: ClassVar[dict[int, int]] = {
        0: 0,
        1: 1,
        10: 2,
        11: 3,
        12: 4,
        13: 5,
        14: 6,
    }
