"""Indian Pines hyperspectral scene."""

from typing import ClassVar

from .hyperspectral import HyperspectralScene, nearest_bands, sensor_bands

#: 1-based bands (of the scene's 220) that the "corrected" cube leaves out (water
#: absorption): 104-108, 150-163 and 220.
INDIAN_PINES_DROPPED_BANDS: tuple[int, ...] = (*range(104, 109), *range(150, 164), 220)

_BANDS, _WAVELENGTHS = sensor_bands(220, 400.0, 2500.0, INDIAN_PINES_DROPPED_BANDS)


class IndianPines(HyperspectralScene):
    """Indian Pines hyperspectral scene.

    A 145 x 145 px AVIRIS scene over agricultural land in north-western Indiana
    (20 m pixels), distributed by Purdue University and on the GIC (UPV/EHU)
    `Hyperspectral Remote Sensing Scenes
    <https://www.ehu.eus/ccwintco/index.php/Hyperspectral_Remote_Sensing_Scenes>`__
    page.

    Dataset format:

    * ``Indian_pines_corrected.mat``: ``indian_pines_corrected``, 145 x 145 x 200
    * ``Indian_pines_gt.mat``: ``indian_pines_gt``, 145 x 145 class codes 0-16

    Bands: 220 bands over about 400-2500 nm; the corrected cube drops the
    water-absorption bands 104-108, 150-163 and 220 (1-based), leaving 200. The
    files hold no wavelengths: :attr:`wavelengths` spreads the 220 centres evenly
    over 400-2500 nm, so they are **approximate** (off by up to a few band widths
    from the real AVIRIS calibration). Band names are the 1-based
    numbers of the 220 bands. Codes 1-16 are the classes, 0 is unlabelled.

    .. versionadded:: 0.1
    """

    image_file = 'Indian_pines_corrected.mat'
    label_file = 'Indian_pines_gt.mat'
    image_key = 'indian_pines_corrected'
    label_key = 'indian_pines_gt'
    all_bands = _BANDS
    wavelengths = _WAVELENGTHS
    rgb_bands = nearest_bands(_BANDS, _WAVELENGTHS)
    classes: ClassVar[tuple[str, ...]] = (
        'Unlabelled',
        'Alfalfa',
        'Corn-notill',
        'Corn-mintill',
        'Corn',
        'Grass-pasture',
        'Grass-trees',
        'Grass-pasture-mowed',
        'Hay-windrowed',
        'Oats',
        'Soybean-notill',
        'Soybean-mintill',
        'Soybean-clean',
        'Wheat',
        'Woods',
        'Buildings-Grass-Trees-Drives',
        'Stone-Steel-Towers',
    )
    label_codes: ClassVar[dict[int, int]] = {code: code for code in range(17)}
