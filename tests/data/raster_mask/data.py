#!/usr/bin/env python3
"""Write small fake GeoTIFF tiles with a CRS and a matching mask layer (rasterio).

The layout a geospatial user has: image tiles in one folder and a land-cover map (the
mask layer) in another, georeferenced in one projected CRS. Six 32 x 32 px image tiles
at 10 m in UTM 32N form a 3 x 2 grid; each has 4 bands (B02, B03, B04, B08, uint16
reflectance x 10000). The mask layer is one uint8 raster of 4 classes (0 background,
1 water, 2 forest, 3 built-up) that overhangs the tiles by 8 px to the east, so the
datamodule draws patches only where both layers exist (their intersection).
"""

import os
import shutil

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

SIZE = 32
RESOLUTION = 10.0
ORIGIN = (500_000.0, 5_300_000.0)
GRID = (3, 2)  # columns, rows
MARGIN = 8  # the mask layer extends this many pixels east of the image tiles
CRS_CODE = 'EPSG:32632'
#: Mean reflectance x 10000 of each class in B02, B03, B04, B08.
SPECTRA = np.array(
    [
        [900, 1100, 1300, 2200],  # background (bare soil, grass)
        [700, 600, 400, 200],  # water
        [300, 600, 300, 3500],  # forest
        [1500, 1500, 1600, 1900],  # built-up
    ],
    dtype=np.float64,
)


def _labels(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Blobs of the four classes: discs of each over background."""
    yy, xx = np.mgrid[:height, :width]
    labels = np.zeros((height, width), dtype=np.uint8)
    for _ in range(6):
        for label in (1, 2, 3):
            cy, cx = rng.uniform(0, height), rng.uniform(0, width)
            radius = rng.uniform(4, 9)
            labels[(yy - cy) ** 2 + (xx - cx) ** 2 < radius**2] = label
    return labels


def _write(path: str, array: np.ndarray, left: float, top: float) -> None:
    profile = {
        'driver': 'GTiff',
        'height': array.shape[1],
        'width': array.shape[2],
        'count': array.shape[0],
        'dtype': array.dtype.name,
        'crs': CRS.from_string(CRS_CODE),
        'transform': from_origin(left, top, RESOLUTION, RESOLUTION),
        'compress': 'deflate',
        'predictor': 2,
    }
    with rasterio.open(path, 'w', **profile) as dst:
        dst.write(array)


def main() -> None:
    rng = np.random.default_rng(0)
    here = os.path.dirname(os.path.abspath(__file__))
    for folder in ('images', 'masks'):
        shutil.rmtree(os.path.join(here, folder), ignore_errors=True)
        os.makedirs(os.path.join(here, folder))
    width = GRID[0] * SIZE + MARGIN
    height = GRID[1] * SIZE
    labels = _labels(rng, height, width)
    noise = rng.normal(0, 40, (4, height, width))
    shade = np.linspace(0.9, 1.1, width)[None, None, :]
    image = (SPECTRA[labels].transpose(2, 0, 1) * shade + noise).round()
    image = np.clip(image, 1, 10000).astype(np.uint16)
    for row in range(GRID[1]):
        for column in range(GRID[0]):
            name = f'tile_{column}_{row}.tif'
            x0, y0 = column * SIZE, row * SIZE
            left = ORIGIN[0] + x0 * RESOLUTION
            top = ORIGIN[1] - y0 * RESOLUTION
            _write(
                os.path.join(here, 'images', name),
                image[:, y0 : y0 + SIZE, x0 : x0 + SIZE],
                left,
                top,
            )
    _write(os.path.join(here, 'masks', 'landcover.tif'), labels[None], *ORIGIN)


if __name__ == '__main__':
    main()
