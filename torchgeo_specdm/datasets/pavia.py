"""Pavia University hyperspectral scene."""

from typing import ClassVar

from .hyperspectral import HyperspectralScene, nearest_bands, sensor_bands

_BANDS, _WAVELENGTHS = sensor_bands(103, 430.0, 860.0)


class PaviaU(HyperspectralScene):
    """Pavia University hyperspectral scene.

    A 610 x 340 px ROSIS scene over the University of Pavia, Italy (1.3 m pixels),
    distributed on the GIC (UPV/EHU) `Hyperspectral Remote Sensing Scenes
    <https://www.ehu.eus/ccwintco/index.php/Hyperspectral_Remote_Sensing_Scenes>`__
    page.

    Dataset format:

    * ``PaviaU.mat``: ``paviaU``, 610 x 340 x 103
    * ``PaviaU_gt.mat``: ``paviaU_gt``, 610 x 340 class codes 0-9

    Bands: ROSIS records 115 bands over about 430-860 nm; the scene keeps 103
    after noisy bands were removed. The files hold no wavelengths:
    :attr:`wavelengths` spreads the 103 centres evenly over 430-860 nm, so they are
    **approximate**. Band names number the 103 kept bands. Codes 1-9 are the
    classes, 0 is unlabelled.

    .. versionadded:: 0.1
    """

    image_file = 'PaviaU.mat'
    label_file = 'PaviaU_gt.mat'
    image_key = 'paviaU'
    label_key = 'paviaU_gt'
    all_bands = _BANDS
    wavelengths = _WAVELENGTHS
    rgb_bands = nearest_bands(_BANDS, _WAVELENGTHS)
    classes: ClassVar[tuple[str, ...]] = (
        'Unlabelled',
        'Asphalt',
        'Meadows',
        'Gravel',
        'Trees',
        'Painted metal sheets',
        'Bare Soil',
        'Bitumen',
        'Self-Blocking Bricks',
        'Shadows',
    )
    label_codes: ClassVar[dict[int, int]] = {code: code for code in range(10)}
