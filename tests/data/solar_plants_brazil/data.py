#!/usr/bin/env python3
"""Write a small fake Solar Plants Brazil in its release layout (binary masks).

``<split>/input/img(<n>).tif``: 4-band (Red, Green, Blue, NIR) float32 GeoTIFFs with a
CRS; ``<split>/labels/target(<n>).tif``: float32 masks, 1 on solar panels, 0
elsewhere. 32 x 32 px instead of 256 x 256.
"""

import os
import shutil

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

SIZE = 32
SPLITS = {'train': [1, 2, 3, 4], 'val': [5, 6], 'test': [7, 8]}
#: Mean digital number of background and panels in Red, Green, Blue, NIR.
SPECTRA = np.array([[950, 760, 500, 2450], [420, 450, 520, 900]], dtype=np.float64)


def _write(path: str, array: np.ndarray, index: int) -> None:
    profile = {
        'driver': 'GTiff',
        'height': SIZE,
        'width': SIZE,
        'count': array.shape[0],
        'dtype': 'float32',
        'crs': CRS.from_epsg(32723),
        'transform': from_origin(600_000.0 + 1000 * index, 7_400_000.0, 4.77, 4.77),
        'compress': 'deflate',
    }
    with rasterio.open(path, 'w', **profile) as dst:
        dst.write(array.astype(np.float32))


def main() -> None:
    rng = np.random.default_rng(0)
    here = os.path.dirname(os.path.abspath(__file__))
    for split, numbers in SPLITS.items():
        shutil.rmtree(os.path.join(here, split), ignore_errors=True)
        for folder in ('input', 'labels'):
            os.makedirs(os.path.join(here, split, folder))
        for number in numbers:
            # Rows of panels: a rectangle of stripes.
            panels = np.zeros((SIZE, SIZE), dtype=np.int64)
            top, left = rng.integers(2, SIZE // 2, 2)
            panels[top : top + 12 : 3, left : left + 14] = 1
            panels[top + 1 : top + 12 : 3, left : left + 14] = 1
            image = SPECTRA[panels].transpose(2, 0, 1)
            image += rng.normal(0, 30, image.shape).round()
            _write(
                os.path.join(here, split, 'input', f'img({number}).tif'), image, number
            )
            _write(
                os.path.join(here, split, 'labels', f'target({number}).tif'),
                panels[None].astype(np.float32),
                number,
            )


if __name__ == '__main__':
    main()
