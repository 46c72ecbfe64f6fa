"""The equal-steps downstream protocol: same steps, one judge, paired intervals."""

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch

from torchgeo_specdm.datamodules import (
    OSCDPatchDataModule,
    SimulatedSegmentationDataModule,
)
from torchgeo_specdm.datasets import InvalidInputError
from torchgeo_specdm.datasets.patches import ScenePatches
from torchgeo_specdm.evaluation.judges import best_f1_threshold
from torchgeo_specdm.export import DatasetWriter

from .conftest import ROOT, TEST_GENERATOR

STEPS = 3


@pytest.fixture
def generated(tmp_path: Path) -> Path:
    """A generated folder of 8 simulator scenes, written by the real writer."""
    datamodule = SimulatedSegmentationDataModule(num_train=8, size=32, seed=99)
    datamodule.setup('fit')
    writer = DatasetWriter(
        tmp_path / 'gen',
        'segmentation',
        list(datamodule.bands),
        datamodule.num_classes,
        list(datamodule.class_names),
        TEST_GENERATOR,
    )
    for index in range(8):
        sample = datamodule.train_dataset[index]
        writer.write(index, sample['image'], sample['mask'], seed=index)
    writer.finalize(8)
    return tmp_path / 'gen'


@pytest.mark.timeout(900)
def test_every_regime_takes_the_same_steps_under_one_judge(
    generated: Path, tmp_path: Path
) -> None:
    out = tmp_path / 'results'
    command = [
        sys.executable,
        str(ROOT / 'benchmarks' / 'downstream.py'),
        '--dataset',
        'simulated-segmentation',
        '--specdm-synthetic',
        str(generated),
        '--regimes',
        'real',
        'real+specdm',
        'real+specdm-filt',
        'pretrain-finetune',
        '--extra-synthetic',
        f'guided={generated}',
        '--fractions',
        '0.1',
        '--seeds',
        '0',
        '1',
        '--pool-seed',
        '7',
        '--steps',
        str(STEPS),
        '--batch-size',
        '4',
        '--judge',
        str(tmp_path / 'judge'),
        '--judge-steps',
        '2',
        '--out',
        str(out),
        '--work-dir',
        str(tmp_path / 'work'),
    ]
    subprocess.run(command, check=True, capture_output=True, cwd=tmp_path)
    result = json.loads((out / 'downstream_simulated-segmentation.json').read_text())
    assert result['protocol']['name'] == 'equal-steps'
    assert result['protocol']['max_steps'] == STEPS
    runs = result['runs']
    regimes = {entry['regime'] for entry in runs}
    assert regimes == {
        'real',
        'real+specdm',
        'real+specdm-filt',
        'pretrain-finetune',
        'real+guided',
    }
    # One labelled pool (the generators') for every training seed.
    assert result['protocol']['pool_seed'] == 7
    assert {entry['pool_seed'] for entry in runs} == {7}
    # Appending synthetic pairs changes the data, never the step count.
    assert {entry['optimizer_steps'] for entry in runs} == {STEPS}
    record = json.loads((tmp_path / 'judge' / 'judge.json').read_text())
    assert result['judge']['sha256'] == record['sha256']
    assert {entry['judge_sha256'] for entry in runs} == {record['sha256']}
    assert set(result['generators']) == {'specdm', 'guided'}
    for generator in result['generators'].values():
        assert generator['kid']['n_fake'] == 8
        assert generator['alignment']['real_mean'] > 0
    assert {entry['split'] for entry in runs} == {'test'}
    comparisons = result['comparisons']
    assert {(c['regime'], c['fraction'], c['metric']) for c in comparisons} >= {
        ('real+specdm', 0.1, 'miou'),
        ('pretrain-finetune', 0.1, 'miou'),
        ('real+guided', 0.1, 'miou'),
    }
    for comparison in comparisons:
        assert comparison['seeds'] == [0, 1]
        low, high = comparison['ci95']
        assert low <= comparison['mean_difference'] <= high
        if comparison['reading'] == 'helps':
            assert low > 0
        elif comparison['reading'] == 'hurts':
            assert high < 0
        else:
            assert low <= 0 <= high
    text = (out / 'downstream_simulated-segmentation.md').read_text()
    assert record['sha256'][:12] in text
    assert '95 % interval' in text
    # A second invocation reuses every finished run instead of training it again.
    again = subprocess.run(
        command, check=True, capture_output=True, text=True, cwd=tmp_path
    )
    assert again.stdout.count('finished in an earlier invocation') == len(runs)
    rerun = json.loads((out / 'downstream_simulated-segmentation.json').read_text())
    assert [entry['metrics'] for entry in rerun['runs']] == [
        entry['metrics'] for entry in runs
    ]


def test_a_finished_run_is_reused_only_with_the_same_settings(
    load_benchmark: Callable[[str], ModuleType], tmp_path: Path
) -> None:
    benchmark = load_benchmark('downstream')
    path = tmp_path / 'real-0.1-0-None.json'
    settings = {'steps': 200, 'lr': 0.001, 'overrides': {'size': 32}}
    benchmark.write_atomically(path, {'settings': settings, 'run': {'metrics': 1}})
    assert benchmark.finished_run(path, settings) == {'metrics': 1}
    assert benchmark.finished_run(path, settings | {'steps': 300}) is None
    assert benchmark.finished_run(tmp_path / 'missing.json', settings) is None
    assert list(tmp_path.iterdir()) == [path]


def test_paired_difference_known_answers(
    load_benchmark: Callable[[str], ModuleType],
) -> None:
    benchmark = load_benchmark('downstream')
    # mean 0.2, sd 0.1, n 3: t(0.975, 2) = 4.3027 -> half-width 0.2484.
    spread = benchmark.paired_difference([0.1, 0.2, 0.3])
    assert spread['mean_difference'] == pytest.approx(0.2)
    assert spread['ci95'] == pytest.approx([0.2 - 0.24841, 0.2 + 0.24841], abs=1e-4)
    assert spread['reading'] == 'no measurable difference'
    assert benchmark.paired_difference([0.1, 0.11, 0.12])['reading'] == 'helps'
    assert benchmark.paired_difference([-0.1, -0.11, -0.12])['reading'] == 'hurts'
    assert benchmark.paired_difference([0.3])['ci95'] is None


def test_regimes_pair_against_another_regime_by_seed(
    load_benchmark: Callable[[str], ModuleType],
) -> None:
    benchmark = load_benchmark('downstream')
    scores = {'real': [0.70, 0.72], 'real+a': [0.80, 0.81], 'real+a+b': [0.83, 0.83]}
    runs = [
        {
            'regime': regime,
            'fraction': 0.1,
            'seed': seed,
            'ratio': None,
            'metrics': {'miou': values[seed]},
        }
        for regime, values in scores.items()
        for seed in (0, 1)
    ]
    rows = benchmark.comparisons(runs, ['miou'], 'real+a', ['real+a+b'])
    assert [(row['regime'], row['seeds']) for row in rows] == [('real+a+b', [0, 1])]
    assert rows[0]['mean_difference'] == pytest.approx(0.025)
    against_real = benchmark.comparisons(runs, ['miou'])
    assert {row['regime'] for row in against_real} == {'real+a', 'real+a+b'}
    planned = set(scores)
    assert benchmark.against_pairs(['real+a+b:real+a'], planned) == [
        ('real+a+b', 'real+a')
    ]
    for wrong in ('real+a+b', 'real+c:real', 'real+a:real+a'):
        with pytest.raises(SystemExit, match='REGIME:REFERENCE'):
            benchmark.against_pairs([wrong], planned)


def test_change_centred_patches_hold_change() -> None:
    mask = torch.zeros(1, 64, 64, dtype=torch.long)
    mask[0, 50, 7] = 1
    scene = {'image': torch.zeros(2, 3, 64, 64), 'mask': mask}
    centred = ScenePatches([scene], 16, num_patches=50, seed=0, positive_share=1.0)
    assert all(int(centred[i]['mask'].sum()) == 1 for i in range(50))
    uniform = ScenePatches([scene], 16, num_patches=50, seed=0)
    assert sum(int(uniform[i]['mask'].sum()) for i in range(50)) < 25
    with pytest.raises(InvalidInputError, match=r'positive_share=1\.5'):
        ScenePatches([scene], 16, num_patches=5, positive_share=1.5)


def test_oscd_excluded_cities_never_train_or_validate(oscd_root: Path) -> None:
    datamodule = OSCDPatchDataModule(
        root=str(oscd_root), exclude_cities=['pisa', 'bercy'], patch_size=64
    )
    datamodule.setup('fit')
    seen = set(datamodule.train_cities) | set(datamodule.val_cities)
    assert len(seen) == 8
    assert not seen & {'pisa', 'bercy'}
    with pytest.raises(InvalidInputError, match='atlantis'):
        OSCDPatchDataModule(root=str(oscd_root), exclude_cities=['atlantis']).setup(
            'fit'
        )


def test_change_threshold_is_the_best_f1_on_the_given_labels() -> None:
    # Changed pixels have probability 0.7, unchanged ones 0.2 or 0.6: any
    # threshold in [0.6, 0.7) separates them; 0.6 is the lowest of the grid.
    target = torch.tensor([1, 1, 0, 0, 0])
    probability = torch.tensor([0.7, 0.7, 0.2, 0.6, 0.6])
    assert best_f1_threshold(probability, target) == 0.6
    # A detector calibrated for too much change: everything above 0.9 but
    # the changed pixels score 0.97.
    probability = torch.tensor([0.97, 0.97, 0.92, 0.91, 0.93])
    assert best_f1_threshold(probability, target) == 0.95


def test_alignment_filter_needs_scores_that_rank_the_pairs(
    load_benchmark: Callable[[str], ModuleType], generated: Path
) -> None:
    benchmark = load_benchmark('downstream')
    manifest_path = generated / 'manifest.json'
    manifest = json.loads(manifest_path.read_text())

    def threshold(scores: list[float]) -> float | None:
        for pair, score in zip(manifest['samples'], scores):
            pair['alignment'] = score
        manifest_path.write_text(json.dumps(manifest))
        return benchmark.alignment_threshold(str(generated))

    assert threshold([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]) == pytest.approx(0.4)
    # Half the pairs at 0: the median is the lowest, so the pairs above it stay.
    assert threshold([0, 0, 0, 0, 0.2, 0.3, 0.5, 0.9]) == pytest.approx(0.2)
    # Every pair alike (e.g. no change the judge recognises): nothing to filter.
    assert threshold([0.0] * 8) is None
