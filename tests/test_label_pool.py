"""The labelled pool of a leak-free comparison: one draw shared by generators and seeds."""

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import rasterio
import torch

from torchgeo_specdm.datamodules import SimulatedSegmentationDataModule
from torchgeo_specdm.datamodules.registry import demo_datamodule
from torchgeo_specdm.datasets import SimulatedSegmentation
from torchgeo_specdm.evaluation.judges import predict_labels

from .conftest import ROOT


def _options(pool_seed: int | None) -> argparse.Namespace:
    return argparse.Namespace(
        dataset='simulated-segmentation',
        pool_seed=pool_seed,
        size=None,
        patch_size=None,
        raw_scene_statistics=False,
    )


def _kept(
    load_benchmark: Callable[[str], ModuleType],
    fraction: float,
    seed: int,
    pool_seed: int | None,
) -> list[int]:
    downstream = load_benchmark('downstream')
    pool = load_benchmark('label_pool')
    share, overrides, draw = downstream.real_share_and_overrides(
        _options(pool_seed), fraction, seed
    )
    assert overrides == {}
    datamodule = pool.LimitedDataModule(
        SimulatedSegmentationDataModule(num_train=40, size=16, seed=3), share, draw
    )
    datamodule.setup('fit')
    return list(datamodule.train_dataset.indices)


def test_pool_seed_fixes_the_pool_for_every_training_seed(
    load_benchmark: Callable[[str], ModuleType],
) -> None:
    pooled = [_kept(load_benchmark, 0.25, seed, pool_seed=7) for seed in (0, 1, 2)]
    assert len(pooled[0]) == 10
    assert pooled[0] == pooled[1] == pooled[2]
    drawn = [_kept(load_benchmark, 0.25, seed, pool_seed=None) for seed in (0, 1)]
    assert drawn[0] != drawn[1]
    # A generator trained with --pool-seed 7 (alignment.py's data()) sees this pool.
    alignment = load_benchmark('alignment')
    options = argparse.Namespace(
        dataset='simulated-segmentation',
        root=None,
        fraction=0.25,
        pool_seed=7,
        unlabelled=None,
    )
    generators = alignment.data(options)
    generators.real = SimulatedSegmentationDataModule(num_train=40, size=16, seed=3)
    generators.setup('fit')
    assert list(generators.train_dataset.indices) == pooled[0]


def test_label_fraction_datasets_thin_labels_with_the_pool_seed(
    load_benchmark: Callable[[str], ModuleType],
) -> None:
    pool = load_benchmark('label_pool')
    assert pool.share_and_overrides('salinas-a', 0.1, 4) == (
        1.0,
        {'label_fraction': 0.1, 'seed': 4},
    )
    assert pool.share_and_overrides('simulated-segmentation', 0.1, 4) == (0.1, {})


def test_guide_from_another_pool_is_refused(
    load_benchmark: Callable[[str], ModuleType],
) -> None:
    alignment = load_benchmark('alignment')
    options = argparse.Namespace(fraction=0.1, pool_seed=0, guide='outputs/guides/g')
    alignment.check_guide_pool(options, {'training_pool': {'fraction': 0.1, 'seed': 0}})
    for record in ({}, {'training_pool': {'fraction': 0.1, 'seed': 1}}):
        with pytest.raises(SystemExit, match=re.escape('--fraction 0.1 --pool-seed 0')):
            alignment.check_guide_pool(options, record)
    # Generators that learned from every label may use any guide.
    alignment.check_guide_pool(
        argparse.Namespace(fraction=1.0, pool_seed=0, guide='g'), {}
    )


@pytest.fixture(scope='module')
def pool_guide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A guide trained for 2 steps on the 10 % pool of seed 3, by judge.py itself."""
    work = tmp_path_factory.mktemp('pool_guide')
    out = work / 'guide'
    command = [
        sys.executable,
        str(ROOT / 'benchmarks' / 'judge.py'),
        '--dataset',
        'simulated-segmentation',
        '--role',
        'guide',
        '--fraction',
        '0.1',
        '--pool-seed',
        '3',
        '--steps',
        '2',
        '--out',
        str(out),
    ]
    subprocess.run(command, check=True, capture_output=True, cwd=work)
    return out


@pytest.mark.timeout(600)
def test_guide_learns_from_its_pool_only(pool_guide: Path) -> None:
    record = json.loads((pool_guide / 'judge.json').read_text())
    assert record['role'] == 'guide'
    assert record['training_pool'] == {'fraction': 0.1, 'seed': 3}
    assert record['optimizer_steps'] == 2
    full = demo_datamodule('simulated-segmentation', None)
    full.setup('fit')
    assert record['train_samples'] == round(0.1 * len(full.train_dataset))


def _pseudo_labels(guide: Path, out: Path, pool_seed: int) -> str:
    command = [
        sys.executable,
        str(ROOT / 'benchmarks' / 'pseudo_labels.py'),
        '--dataset',
        'simulated-segmentation',
        '--guide',
        str(guide),
        '--fraction',
        '0.1',
        '--pool-seed',
        str(pool_seed),
        '--num-samples',
        '5',
        '--out',
        str(out),
    ]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


@pytest.mark.timeout(600)
def test_pseudo_labels_are_the_guides_predictions_on_unlabelled_images(
    load_benchmark: Callable[[str], ModuleType], pool_guide: Path, tmp_path: Path
) -> None:
    out = tmp_path / 'pseudo'
    printed = _pseudo_labels(pool_guide, out, pool_seed=3)
    manifest = json.loads((out / 'manifest.json').read_text())
    assert len(manifest['samples']) == 5
    indices = manifest['generator']['train_indices']
    full = demo_datamodule('simulated-segmentation', None)
    full.setup('fit')
    train = full.train_dataset
    assert isinstance(train, SimulatedSegmentation)
    pool = load_benchmark('label_pool')
    kept, _ = pool.pool_order(len(train), 0.1, 3)
    assert len(indices) == 5
    assert not set(indices) & set(kept)
    judge = load_benchmark('judge')
    guide, _ = judge.load_judge(pool_guide, change=False)
    guide.eval()
    samples = [train[i] for i in indices]
    image = torch.stack([sample['image'] for sample in samples])
    mask = torch.stack([sample['mask'] for sample in samples])
    with torch.inference_mode():
        expected = predict_labels(
            guide, full.aug({'image': image.clone(), 'mask': mask.clone()})['image']
        )
    for sample, raw, labels in zip(manifest['samples'], image, expected, strict=True):
        with rasterio.open(out / sample['image']) as source:
            assert np.array_equal(source.read(), raw.numpy())
        with rasterio.open(out / sample['mask']) as source:
            assert np.array_equal(source.read(1), labels.numpy())
    truth = mask.numpy()
    accuracy = float((expected.numpy() == truth).mean())
    assert f'pixel accuracy {accuracy:.3f}' in printed
    written = {path: path.read_bytes() for path in sorted(out.rglob('*.tif'))}
    _pseudo_labels(pool_guide, out, pool_seed=3)  # a rerun keeps every file
    assert {path: path.read_bytes() for path in sorted(out.rglob('*.tif'))} == written


@pytest.mark.timeout(600)
def test_pseudo_labels_refuse_a_guide_of_another_pool(
    pool_guide: Path, tmp_path: Path
) -> None:
    with pytest.raises(subprocess.CalledProcessError) as error:
        _pseudo_labels(pool_guide, tmp_path / 'pseudo', pool_seed=4)
    assert 'judge.py --role guide --fraction 0.1 --pool-seed 4' in error.value.stderr
    assert not (tmp_path / 'pseudo').exists()


def _semi_supervised(guide: Path, unlabelled: Path, pool_seed: int) -> Any:
    return argparse.Namespace(
        dataset='simulated-segmentation',
        root=None,
        fraction=0.1,
        pool_seed=pool_seed,
        unlabelled=str(unlabelled),
        guide=str(guide),
        seed=0,
    )


@pytest.mark.timeout(600)
def test_semi_supervised_generators_learn_from_the_pool_and_its_pseudo_labels(
    load_benchmark: Callable[[str], ModuleType], pool_guide: Path, tmp_path: Path
) -> None:
    out = tmp_path / 'pseudo'
    _pseudo_labels(pool_guide, out, pool_seed=3)
    alignment = load_benchmark('alignment')
    options = _semi_supervised(pool_guide, out, pool_seed=3)
    alignment.check_unlabelled(options)
    datamodule = alignment.data(options)
    datamodule.setup('fit')
    full = demo_datamodule('simulated-segmentation', None)
    full.setup('fit')
    pool = round(0.1 * len(full.train_dataset))
    assert len(datamodule.train_dataset) == pool + 5
    indices = json.loads((out / 'manifest.json').read_text())['generator'][
        'train_indices'
    ]
    for number, index in enumerate(indices):
        added = datamodule.train_dataset[pool + number]
        assert torch.equal(added['image'], full.train_dataset[index]['image'])
    record = alignment.training_pool(options)
    assert record['unlabelled']['num_samples'] == 5
    checkpoint = tmp_path / 'vae' / 'vae.ckpt'
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b'trained')
    pool_only = {'seed': 0, 'training_pool': {'fraction': 0.1, 'seed': 3}}
    (checkpoint.parent / 'train.json').write_text(json.dumps(pool_only))
    with pytest.raises(SystemExit, match='a --work-dir of its own to each training'):
        alignment.saved(checkpoint, options)
    (checkpoint.parent / 'train.json').write_text(
        json.dumps({'seed': 0, 'training_pool': record})
    )
    assert alignment.saved(checkpoint, options)


@pytest.mark.timeout(600)
def test_semi_supervised_generators_refuse_other_pseudo_labels(
    load_benchmark: Callable[[str], ModuleType], pool_guide: Path, tmp_path: Path
) -> None:
    out = tmp_path / 'pseudo'
    _pseudo_labels(pool_guide, out, pool_seed=3)
    alignment = load_benchmark('alignment')
    with pytest.raises(
        SystemExit, match=re.escape('pseudo_labels.py --fraction 0.1 --pool-seed 4')
    ):
        alignment.check_unlabelled(_semi_supervised(pool_guide, out, pool_seed=4))
    with pytest.raises(SystemExit, match=re.escape('has no manifest.json')):
        alignment.check_unlabelled(_semi_supervised(pool_guide, tmp_path, 3))
    manifest = json.loads((out / 'manifest.json').read_text())
    manifest['generator']['checkpoint_sha256'] = '0' * 64
    (out / 'manifest.json').write_text(json.dumps(manifest))
    with pytest.raises(SystemExit, match='labelled by another guide'):
        alignment.check_unlabelled(_semi_supervised(pool_guide, out, pool_seed=3))
