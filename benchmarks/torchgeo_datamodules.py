"""Which of torchgeo's segmentation and change-detection datamodules the VAE trains on.

Nothing can be downloaded here, so for every datamodule whose data can be faked this
script writes small fake files in the dataset's real layout (the file names, folders,
formats and label encodings torchgeo's loader expects), then runs, as a new user
would,

    specdm fit --config benchmarks/configs/vae.yaml --config DATA.yaml --trainer.fast_dev_run=true

once with the class count read from the data and once with the count torchgeo's
own configs give. Each run is a separate process. Writes (with --only: updates)
benchmarks/results/torchgeo_datamodules.{json,md}.

    python benchmarks/torchgeo_datamodules.py [--only l7irish,xbd] [--work DIR]

Datasets that need an optional dependency (h5py for ChaBuD and CaBuAr) run when it
is importable (pip install "torchgeo-specdm[datasets]"); otherwise the run records
the one-line error that names the extra.
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import yaml
from PIL import Image
from rasterio.crs import CRS
from rasterio.transform import from_origin

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / 'benchmarks' / 'results'
RNG = np.random.default_rng(0)


def write_tif(
    path: Path,
    array: np.ndarray,
    left: float = 500_000.0,
    top: float = 5_000_000.0,
    res: float = 30.0,
    epsg: int = 32618,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        'driver': 'GTiff',
        'height': array.shape[-2],
        'width': array.shape[-1],
        'count': array.shape[0],
        'dtype': array.dtype.name,
        'crs': CRS.from_epsg(epsg),
        'transform': from_origin(left, top, res, res),
    }
    with rasterio.open(path, 'w', **profile) as dst:
        dst.write(array)


def blobs(size: int, values: list[int]) -> np.ndarray:
    """A label map of squares of the given values over the first value."""
    labels = np.full((size, size), values[0], dtype=np.uint8)
    for value in values[1:] * 2:
        y, x = RNG.integers(0, size - 8, 2)
        labels[y : y + 8, x : x + 8] = value
    return labels


def png(path: Path, array: np.ndarray, mode: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)


# Fakes, one per dataset layout.


def fake_landsat_clouds(root: Path, sensor: str) -> None:
    """L7 Irish / L8 Biome: per-scene multiband image + mask, codes 0/64/128/192/255."""
    size = 64
    for scene in range(4):
        left = 500_000.0 + scene * size * 30
        codes = blobs(size, [128, 0, 64, 192, 255])
        if sensor == 'l7':
            folder = root / 'austral' / f'p{227 + scene}_r89'
            image = folder / f'L71{227 + scene:03d}089_08920011205.TIF'
            mask = folder / f'L7_p{227 + scene}_r89_newmask2015.TIF'
            bands = 9
        else:
            folder = root / 'barren' / f'LC8{42 + scene:03d}0082013121LGN00'
            image = folder / f'LC8{42 + scene:03d}0082013121LGN00.TIF'
            mask = folder / f'LC8{42 + scene:03d}0082013121LGN00_fixedmask.TIF'
            bands = 11
        data = RNG.integers(1, 255, (bands, size, size)).astype(np.uint8)
        write_tif(image, data, left=left)
        write_tif(mask, codes[None], left=left)


def fake_agrifieldnet(root: Path) -> None:
    """Separate 10 m band files per tile plus a label raster of crop codes."""
    bands: tuple[str, ...] = ('B01', 'B02', 'B03', 'B04', 'B05', 'B06', 'B07', 'B08')
    bands += ('B8A', 'B09', 'B11', 'B12')
    size = 64
    for tile in range(10):
        tile_id = f'{tile:05x}'
        left = 500_000.0 + tile * size * 10
        for band in bands:
            name = f'ref_agrifieldnet_competition_v1_source_{tile_id}_{band}_10m.tif'
            data = RNG.integers(1, 4000, (1, size, size)).astype(np.uint16)
            write_tif(root / 'source' / name, data, left=left, res=10.0, epsg=32644)
        labels = blobs(size, [0, 1, 2, 3, 4, 5, 6, 8, 9, 13, 14, 15, 16, 36])
        name = f'ref_agrifieldnet_competition_v1_labels_train_{tile_id}.tif'
        write_tif(
            root / 'train_labels' / name, labels[None], left=left, res=10.0, epsg=32644
        )


def fake_south_africa(root: Path) -> None:
    """Field folders of Sentinel-1/2 band files per July date, label per field."""
    s1 = ('VH', 'VV')
    s2: tuple[str, ...] = ('B01', 'B02', 'B03', 'B04', 'B05', 'B06', 'B07', 'B08')
    s2 += ('B8A', 'B09', 'B11', 'B12')
    size = 32
    for field in range(10):
        field_id = f'{field + 1}'
        left = 300_000.0 + field * size * 10
        date = '2017_07_01'
        for kind, bands in (('s1', s1), ('s2', s2)):
            for band in bands:
                path = root / 'train' / 'imagery' / kind / field_id / date
                data = RNG.integers(1, 4000, (1, size, size)).astype(np.uint16)
                write_tif(
                    path / f'{field_id}_{date}_{band}_10m.tif',
                    data,
                    left=left,
                    res=10.0,
                    epsg=32634,
                )
        labels = blobs(size, list(range(10)))
        write_tif(
            root / 'train' / 'labels' / f'{field_id}.tif',
            labels[None],
            left=left,
            res=10.0,
            epsg=32634,
        )


def fake_etci2021(root: Path) -> None:
    """VV/VH PNG tiles with water-body and flood PNG masks (0/255), per region."""
    for directory in ('train', 'test', 'test_internal'):
        for region in ('bangladesh', 'nebraska'):
            tiles = root / directory / f'{region}_20170101t000000' / 'tiles'
            for index in range(2):
                name = f'{region}_x-{index}_y-0'
                for product in ('vv', 'vh'):
                    data = RNG.integers(0, 255, (32, 32, 3)).astype(np.uint8)
                    png(tiles / product / f'{name}_{product}.png', data, 'RGB')
                for label in ('water_body_label', 'flood_label'):
                    mask = (blobs(32, [0, 1]) * 255).astype(np.uint8)
                    png(tiles / label / f'{name}.png', mask, 'L')


def fake_spacenet1(root: Path) -> None:
    """3-band GeoTIFF chips and GeoJSON building footprints (rasterised to 0/1)."""
    base = root / 'SN1_buildings' / 'train'
    for index in range(1, 11):
        left, top = -43.68 + 0.004 * index, -22.95
        res = 0.004 / 100
        data = RNG.integers(1, 255, (3, 100, 100)).astype(np.uint8)
        write_tif(
            base / '3band' / f'3band_AOI_1_RIO_img{index}.tif',
            data,
            left=left,
            top=top,
            res=res,
            epsg=4326,
        )
        x0, y0 = left + 20 * res, top - 20 * res
        x1, y1 = left + 60 * res, top - 60 * res
        feature = {
            'type': 'Feature',
            'properties': {},
            'geometry': {
                'type': 'Polygon',
                'coordinates': [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]],
            },
        }
        path = base / 'geojson' / f'Geo_AOI_1_RIO_img{index}.geojson'
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps({'type': 'FeatureCollection', 'features': [feature]})
        )


def fake_levircd(root: Path) -> None:
    """A/B RGB PNG pairs with 0/255 change labels; the split is the name's prefix."""
    for split in ('train', 'val', 'test'):
        for index in range(2):
            name = f'{split}_{index + 1}.png'
            for folder in ('A', 'B'):
                data = RNG.integers(0, 255, (64, 64, 3)).astype(np.uint8)
                png(root / folder / name, data, 'RGB')
            mask = (blobs(64, [0, 1]) * 255).astype(np.uint8)
            png(root / 'label' / name, mask, 'L')


def fake_wildfire_h5(root: Path, name: str) -> None:
    """ChaBuD / CaBuAr: one HDF5 file of pre/post-fire patches, masks, folds."""
    import h5py

    files = (
        ['train_eval.hdf5'] if name == 'chabud' else ['512x512.hdf5', 'chabud_test.h5']
    )
    for filename in files:
        with h5py.File(root / filename, 'w') as f:
            for index, fold in enumerate(
                [0, 1, 2, 'chabud'] if name == 'cabuar' else [0, 1, 2]
            ):
                group = f.create_group(f'uuid{index}')
                group.attrs['fold'] = fold
                for key in ('pre_fire', 'post_fire'):
                    group[key] = RNG.integers(0, 10000, (32, 32, 12)).astype(np.uint16)
                group['mask'] = blobs(32, [0, 1])[..., None]


# The datamodules tried: kind, fake, data config, torchgeo's class count.

KINDS: list[dict[str, Any]] = [
    {
        'name': 'l7irish',
        'kind': 'GeoDataModule (RasterDataset & mask layer, 5 classes)',
        'fake': lambda root: fake_landsat_clouds(root, 'l7'),
        'class_path': 'torchgeo.datamodules.L7IrishDataModule',
        'init_args': {'batch_size': 2, 'patch_size': 32, 'length': 4},
        'dict_kwargs': {},
        'num_classes': 5,
    },
    {
        'name': 'l8biome',
        'kind': 'GeoDataModule (RasterDataset & mask layer, 5 classes)',
        'fake': lambda root: fake_landsat_clouds(root, 'l8'),
        'class_path': 'torchgeo.datamodules.L8BiomeDataModule',
        'init_args': {'batch_size': 2, 'patch_size': 32, 'length': 4},
        'dict_kwargs': {},
        'num_classes': 5,
    },
    {
        'name': 'agrifieldnet',
        'kind': 'GeoDataModule (band files & label layer, 14 classes)',
        'fake': fake_agrifieldnet,
        'class_path': 'torchgeo.datamodules.AgriFieldNetDataModule',
        'init_args': {'batch_size': 2, 'patch_size': 32, 'length': 4},
        'dict_kwargs': {},
        'num_classes': 14,
    },
    {
        'name': 'south_africa_crop_type',
        'kind': 'GeoDataModule (RasterDataset with its own labels, 10 classes)',
        'fake': fake_south_africa,
        'class_path': 'torchgeo.datamodules.SouthAfricaCropTypeDataModule',
        'init_args': {'batch_size': 2, 'patch_size': 16, 'length': 4},
        'dict_kwargs': {},
        'num_classes': 10,
    },
    {
        'name': 'etci2021',
        'kind': 'NonGeoDataModule, binary masks (flood)',
        'fake': fake_etci2021,
        'class_path': 'torchgeo.datamodules.ETCI2021DataModule',
        'init_args': {'batch_size': 2},
        'dict_kwargs': {},
        'num_classes': 2,
    },
    {
        'name': 'spacenet1',
        'kind': 'NonGeoDataModule, binary masks (buildings, shifted to 1/2)',
        'fake': fake_spacenet1,
        'class_path': 'torchgeo.datamodules.SpaceNet1DataModule',
        'init_args': {'batch_size': 2},
        'dict_kwargs': {},
        'num_classes': 3,
    },
    {
        'name': 'levircd',
        'kind': 'NonGeoDataModule, binary change',
        'fake': fake_levircd,
        'class_path': 'torchgeo.datamodules.LEVIRCDDataModule',
        'init_args': {'batch_size': 2, 'patch_size': 32},
        'dict_kwargs': {},
        'num_classes': 2,
    },
    {
        'name': 'chabud',
        'kind': 'NonGeoDataModule, binary change (needs h5py)',
        'fake': lambda root: fake_wildfire_h5(root, 'chabud'),
        'class_path': 'torchgeo.datamodules.ChaBuDDataModule',
        'init_args': {'batch_size': 2},
        'dict_kwargs': {'checksum': False},
        'num_classes': 2,
    },
    {
        'name': 'cabuar',
        'kind': 'NonGeoDataModule, binary change (needs h5py)',
        'fake': lambda root: fake_wildfire_h5(root, 'cabuar'),
        'class_path': 'torchgeo.datamodules.CaBuArDataModule',
        'init_args': {'batch_size': 2},
        'dict_kwargs': {'checksum': False},
        'num_classes': 2,
    },
]

#: Tried by the test suite on fake files committed in tests/data (or real data).
COVERED_BY_TESTS = [
    (
        'RasterMaskDataModule',
        'GeoDataModule (your rasters & mask layer)',
        'tests/test_geo.py',
    ),
    (
        'SolarPlantsBrazilDataModule',
        'NonGeoDataModule, binary masks',
        'tests/test_mask_kinds.py',
    ),
    ('xBDDataModule', 'NonGeoDataModule, 5-class change', 'tests/test_mask_kinds.py'),
    (
        'OSCDDataModule',
        'NonGeoDataModule, binary change (real OSCD)',
        'tests/test_vae_task.py',
    ),
]


#: GeoDataModules not faked here (their layouts need several layers each), with why.
NOT_TRIED = [
    (
        'ChesapeakeCVPRDataModule (5 and 7 classes), NAIPChesapeakeDataModule',
        (
            'layouts of per-tile NAIP, land-cover, NLCD, Landsat and building layers '
            'not faked yet; same RasterDataset & mask, RandomPatchSampler path as '
            'L7 Irish'
        ),
    ),
    (
        (
            'Sentinel2CDL, Sentinel2EuroCrops, Sentinel2NCCM, '
            'Sentinel2SouthAmericaSoybean, MMFlood, IOBench datamodules'
        ),
        'not faked yet (Sentinel-2 SAFE-style band files plus a label layer each)',
    ),
]


def run_fit(config: Path, work: Path, extra: list[str]) -> dict[str, Any]:
    args = [sys.executable, '-m', 'torchgeo_specdm.cli', 'fit']
    args += ['--config', str(ROOT / 'benchmarks' / 'configs' / 'vae.yaml')]
    args += ['--config', str(config), '--trainer.fast_dev_run=true']
    args += [
        '--model.init_args.base_channels=8',
        '--model.init_args.mask_base_channels=8',
    ]
    args += [
        f'--trainer.default_root_dir={work}',
        '--trainer.enable_progress_bar=false',
    ]
    args += extra
    environment = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            filter(None, [str(ROOT), os.environ.get('PYTHONPATH')])
        ),
    )
    start = time.perf_counter()
    process = subprocess.run(
        args, capture_output=True, text=True, env=environment, check=False
    )
    seconds = time.perf_counter() - start
    lines = [line for line in process.stderr.splitlines() if line.strip()]
    error = next(
        (line for line in reversed(lines) if 'rror' in line), lines[-1] if lines else ''
    )
    return {
        'ok': process.returncode == 0,
        'returncode': process.returncode,
        'seconds': round(seconds, 1),
        'error': '' if process.returncode == 0 else error[:400],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--only', help='comma-separated names to run')
    parser.add_argument('--work', help='folder for the fake data (default: a temp dir)')
    parser.add_argument(
        '--render', action='store_true', help='only rewrite the .md from the .json'
    )
    options = parser.parse_args()
    if options.render:
        render(json.loads((RESULTS / 'torchgeo_datamodules.json').read_text()))
        return
    kinds = KINDS
    if options.only:
        names = options.only.split(',')
        kinds = [kind for kind in KINDS if kind['name'] in names]
    work = Path(options.work or tempfile.mkdtemp(prefix='torchgeo-datamodules-'))
    results = []
    for kind in kinds:
        root = work / kind['name'] / 'data'
        root.mkdir(parents=True, exist_ok=True)
        fake: Callable[[Path], None] = kind['fake']
        try:
            fake(root)
            faked = ''
        except ImportError as error:  # h5py missing: the datamodule reports it
            faked = f'fake not written ({error})'
        config = work / kind['name'] / 'data.yaml'
        data = {
            'class_path': kind['class_path'],
            'init_args': dict(kind['init_args'], num_workers=0),
            'dict_kwargs': dict(kind['dict_kwargs'], root=str(root))
            if kind['name']
            not in ('l7irish', 'l8biome', 'agrifieldnet', 'south_africa_crop_type')
            else dict(kind['dict_kwargs'], paths=str(root)),
        }
        config.write_text(yaml.safe_dump({'data': data}))
        row = {
            'name': kind['name'],
            'kind': kind['kind'],
            'class_path': kind['class_path'],
            'faked': faked,
        }
        row['inferred'] = run_fit(config, work / kind['name'] / 'inferred', [])
        row['explicit'] = run_fit(
            config,
            work / kind['name'] / 'explicit',
            [f'--model.init_args.num_classes={kind["num_classes"]}'],
        )
        row['num_classes'] = kind['num_classes']
        row['h5py'] = importlib.util.find_spec('h5py') is not None
        print(json.dumps(row), flush=True)
        results.append(row)
    # Merge into the stored results, so runs with --only complete the table.
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / 'torchgeo_datamodules.json'
    stored = (
        {row['name']: row for row in json.loads(path.read_text())}
        if path.exists()
        else {}
    )
    stored.update({row['name']: row for row in results})
    order = [kind['name'] for kind in KINDS]
    results = sorted(stored.values(), key=lambda row: order.index(row['name']))
    path.write_text(json.dumps(results, indent=1) + '\n')
    render(results)


def render(results: list[dict[str, Any]]) -> None:
    lines = [
        '# torchgeo datamodules through `specdm fit` (TwoStreamVAE, fast_dev_run)',
        '',
        (
            "Fake files in each dataset's real layout, written by "
            '`benchmarks/torchgeo_datamodules.py`; one process per run.'
        ),
        '',
        "| datamodule | kind | classes read from the data | `num_classes` as torchgeo's config |",
        '| --- | --- | --- | --- |',
    ]
    for row in results:
        cells = []
        for key in ('inferred', 'explicit'):
            result = row[key]
            cells.append(
                'trains'
                if result['ok']
                else f'fails: {result["error"]}'.replace('|', '/')
            )
        explicit = f'{cells[1]} ({row["num_classes"]})'
        lines.append(
            f'| `{row["class_path"].split(".")[-1]}` | {row["kind"]} | {cells[0]} | {explicit} |'
        )
    needs = [row for row in results if 'h5py' in row['kind']]
    if needs:
        lines += ['']
        for row in needs:
            name = row['class_path'].split('.')[-1]
            if row.get('h5py'):
                lines.append(f'- `{name}` ran with h5py installed.')
            else:
                lines.append(f'- `{name}` ran without h5py.')
            if row.get('without_h5py'):
                lines.append(f'  Without h5py: `{row["without_h5py"]}`')
    lines += [
        '',
        'Also run by the test suite, on committed fake files or real data:',
        '',
    ]
    lines += [f'- `{name}` ({kind}): `{test}`' for name, kind, test in COVERED_BY_TESTS]
    lines += ['', 'Not tried:', '']
    lines += [f'- {names}: {why}.' for names, why in NOT_TRIED]
    (RESULTS / 'torchgeo_datamodules.md').write_text('\n'.join(lines) + '\n')


if __name__ == '__main__':
    main()
