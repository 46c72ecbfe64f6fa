"""The real-data control of benchmarks/real_patches.py."""

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import rasterio
import torch

from torchgeo_specdm.datasets import SyntheticDataset
from torchgeo_specdm.datasets.patches import ScenePatches

from .conftest import ROOT
from .test_downstream import make_heldout_root


def _real_patches(
    oscd_root: Path, test_root: Path, contents: str, out: Path
) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        str(ROOT / 'benchmarks' / 'real_patches.py'),
        '--root',
        str(oscd_root),
        '--test-root',
        str(test_root),
        '--contents',
        contents,
        '--num-samples',
        '6',
        '--out',
        str(out),
    ]
    return subprocess.run(command, check=True, capture_output=True, text=True)


@pytest.mark.timeout(600)
@pytest.mark.parametrize('contents', ['unchanged', 'any'])
def test_real_patches_are_training_crops_with_their_true_masks(
    load_benchmark: Callable[[str], ModuleType],
    oscd_root: Path,
    tmp_path: Path,
    contents: str,
) -> None:
    test_root = tmp_path / 'heldout'
    make_heldout_root(oscd_root, test_root)
    out = tmp_path / contents
    _real_patches(oscd_root, test_root, contents, out)
    manifest = json.loads((out / 'manifest.json').read_text())
    generator = manifest['generator']
    assert manifest['task'] == 'change'
    assert generator['contents'] == contents
    assert not {'bercy', 'pisa'} & set(generator['train_cities'])
    datamodule = load_benchmark('judge').real_datamodule(
        'oscd', str(oscd_root), str(test_root), 16
    )
    datamodule.setup('fit')
    assert generator['train_cities'] == datamodule.train_cities
    scenes = dict(zip(datamodule.train_cities, datamodule.train_dataset.scenes))
    size = datamodule.patch_size
    for sample, (city, top, left) in zip(
        manifest['samples'], generator['windows'], strict=True
    ):
        scene = scenes[city]
        image = scene['image'][..., top : top + size, left : left + size]
        mask = scene['mask'][..., top : top + size, left : left + size]
        for date, key in enumerate(('image1', 'image2')):
            with rasterio.open(out / sample[key]) as source:
                assert np.array_equal(source.read(), image[date].float().numpy())
        with rasterio.open(out / sample['mask']) as source:
            assert np.array_equal(source.read(1), mask.reshape(size, size).numpy())
        if contents == 'unchanged':
            assert sample['class_fractions'] == [1.0, 0.0]
    assert len(SyntheticDataset(out)) == 6
    written = {path: path.read_bytes() for path in sorted(out.rglob('*.tif'))}
    _real_patches(oscd_root, test_root, contents, out)  # a rerun keeps every file
    assert {path: path.read_bytes() for path in sorted(out.rglob('*.tif'))} == written


def test_real_patches_refuse_when_every_window_holds_change(
    load_benchmark: Callable[[str], ModuleType],
) -> None:
    scene = {'image': torch.zeros(2, 3, 8, 8), 'mask': torch.ones(1, 8, 8)}
    train = ScenePatches([scene], patch_size=4, num_patches=4, positive_share=0.25)
    real_patches = load_benchmark('real_patches')
    with pytest.raises(SystemExit, match='hold no changed pixel'):
        real_patches.draw_windows(train, 'unchanged', 3, seed=0)
    windows = real_patches.draw_windows(train, 'any', 3, seed=0)
    assert len(windows) == 3


def test_outside_pool_keeps_the_cities_the_downstream_pool_leaves_out(
    load_benchmark: Callable[[str], ModuleType],
) -> None:
    scenes = [
        {'image': torch.full((2, 3, 8, 8), float(i)), 'mask': torch.zeros(1, 8, 8)}
        for i in range(6)
    ]
    cities = [f'city{i}' for i in range(6)]
    train = ScenePatches(scenes, patch_size=4, num_patches=8, positive_share=0.25)
    pooled = load_benchmark('label_pool').limit(train, 0.25, 3)
    real_patches = load_benchmark('real_patches')
    others, names = real_patches.outside_pool(train, cities, 0.25, 3)
    drawn = [int(scene['image'][0, 0, 0, 0]) for scene in others.scenes]
    assert sorted(drawn) == [i for i in range(6) if i not in pooled.scene_indices]
    assert len(drawn) == 4
    assert names == [cities[i] for i in drawn]
    assert others.positive_share == 0.25
    with pytest.raises(SystemExit, match='none is left'):
        real_patches.outside_pool(train, cities, 0.99, 3)
