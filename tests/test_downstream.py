"""Scoring downstream models on purely real held-out data."""

import argparse
import json
import math
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
from torchgeo_specdm.datamodules.registry import demo_datamodule
from torchgeo_specdm.datasets.validation import InvalidInputError
from torchgeo_specdm.evaluation.judges import (
    encoder_features,
    held_out_split,
    make_downstream_task,
    predict_labels,
    score_downstream,
    segmentation_scores,
)
from torchgeo_specdm.generation.guidance import guide_input

from .conftest import ROOT


def make_heldout_root(oscd_root: Path, out: Path) -> None:
    """A held-out root of bercy and pisa, made by benchmarks/heldout_oscd.py."""
    subprocess.run(
        [
            sys.executable,
            str(ROOT / 'benchmarks' / 'heldout_oscd.py'),
            '--root',
            str(oscd_root),
            '--out',
            str(out),
            '--cities',
            'bercy',
            'pisa',
        ],
        check=True,
        capture_output=True,
    )


def test_oscd_without_test_labels_scores_on_val(oscd_root: Path) -> None:
    assert held_out_split(OSCDPatchDataModule(root=str(oscd_root))) == 'val'


def test_heldout_oscd_root_has_a_test_split(oscd_root: Path, tmp_path: Path) -> None:
    out = tmp_path / 'heldout'
    make_heldout_root(oscd_root, out)
    datamodule = OSCDPatchDataModule(root=str(out), patch_size=64)
    assert held_out_split(datamodule) == 'test'
    assert datamodule.test_dataset is not None
    assert len(datamodule.test_dataset) > 0  # type: ignore[arg-type]
    task = make_downstream_task(13, 2, change=True)
    scores = score_downstream(task, datamodule, 'test')
    assert scores.keys() == {'f1', 'precision', 'recall', 'iou'}
    assert all(0 <= value <= 1 for value in scores.values())


def test_siamese_change_detector_takes_the_two_dates_apart() -> None:
    torch.manual_seed(0)
    siamese = make_downstream_task(13, 2, change=True, change_model='fcsiamdiff')
    fused = make_downstream_task(13, 2, change=True)
    first, second = torch.randn(2, 1, 1, 13, 32, 32).unbind(0)
    unchanged = [date.expand(-1, 2, -1, -1, -1) for date in (first, second)]
    with torch.no_grad():
        # FC-Siam-diff decodes feature differences: two identical dates look alike
        # whatever they show, so the input must reach it as [B, 2, C, H, W].
        siamese_logits = [siamese.eval()(guide_input(x, siamese)) for x in unchanged]
        fused_logits = [fused.eval()(guide_input(x, fused)) for x in unchanged]
    torch.testing.assert_close(siamese_logits[0], siamese_logits[1])
    assert not torch.allclose(fused_logits[0], fused_logits[1])
    assert guide_input(unchanged[0], fused).shape == (1, 26, 32, 32)
    pairs = torch.cat(unchanged)
    assert predict_labels(siamese, pairs).shape == (2, 32, 32)
    assert encoder_features(siamese, pairs).shape == (2, 2 * 512)


@pytest.mark.parametrize('ignore_index', [None, 0])
def test_segmentation_scores_match_their_definition(ignore_index: int | None) -> None:
    datamodule = SimulatedSegmentationDataModule(
        num_train=4, num_val=4, num_test=4, size=16, batch_size=4
    )
    datamodule.ignore_index = ignore_index  # type: ignore[attr-defined]
    torch.manual_seed(0)
    task = make_downstream_task(10, datamodule.num_classes, change=False)
    scores = score_downstream(task, datamodule, 'test')
    datamodule.setup('test')
    batch = datamodule.aug(next(iter(datamodule.test_dataloader())))
    with torch.no_grad():
        prediction = task(batch['image']).argmax(1)
    target = batch['mask']
    if ignore_index is not None:
        kept = target != ignore_index
        prediction, target = prediction[kept], target[kept]
    assert scores['oa'] == pytest.approx(float((prediction == target).float().mean()))
    ious = {
        f'iou/{datamodule.class_names[c]}': float(
            ((prediction == c) & (target == c)).sum()
        )
        / float(((prediction == c) | (target == c)).sum())
        for c in range(datamodule.num_classes)
        if c != ignore_index and ((prediction == c) | (target == c)).any()
    }
    names = [
        f'iou/{name}'
        for c, name in enumerate(datamodule.class_names)
        if c != ignore_index
    ]
    assert [k for k in scores if k.startswith('iou/')] == names
    for key in names:
        if key in ious:
            assert scores[key] == pytest.approx(ious[key], abs=1e-6)
        else:
            assert math.isnan(scores[key])
    assert scores['miou'] == pytest.approx(sum(ious.values()) / len(ious), abs=1e-6)


def test_ignored_class_is_left_out_of_the_miou() -> None:
    # Salinas-A style: 0 = unlabelled is ignored; the model may still predict it.
    prediction = torch.tensor([0, 1, 1, 2, 2, 0, 1])
    target = torch.tensor([0, 0, 1, 1, 2, 2, 1])
    scores = segmentation_scores(prediction, target, 4, ignore_index=0)
    # Kept pixels (target != 0): class 1 has TP 2, FN 1 -> 2/3; class 2 has TP 1,
    # FP 1, FN 1 -> 1/3; class 3 occurs nowhere: NaN; class 0 is ignored: no key.
    assert scores.keys() == {'miou', 'oa', 'iou/1', 'iou/2', 'iou/3'}
    assert math.isnan(scores['iou/3'])
    assert scores['iou/1'] == pytest.approx(2 / 3)
    assert scores['iou/2'] == pytest.approx(1 / 3)
    assert scores['miou'] == pytest.approx(0.5)
    assert scores['oa'] == pytest.approx(3 / 5)


def test_per_class_keys_use_class_names_when_they_match() -> None:
    prediction = torch.tensor([0, 1, 1, 0])
    target = torch.tensor([0, 1, 0, 0])
    named = segmentation_scores(prediction, target, 2, class_names=['sea', 'land'])
    assert named['iou/sea'] == pytest.approx(2 / 3)
    assert named['iou/land'] == pytest.approx(1 / 2)
    assert named['miou'] == pytest.approx((2 / 3 + 1 / 2) / 2)
    indexed = segmentation_scores(prediction, target, 2, class_names=['sea'])
    assert {k for k in indexed if k.startswith('iou/')} == {'iou/0', 'iou/1'}


def test_benchmark_summary_takes_the_union_of_per_class_keys(
    load_benchmark: Callable[[str], ModuleType],
) -> None:
    benchmark = load_benchmark('downstream')
    runs = [
        {
            'regime': 'real',
            'fraction': 1.0,
            'ratio': None,
            'metrics': {'miou': 0.5, 'oa': 0.8, 'iou/a': 0.4, 'iou/b': 0.6},
        },
        {
            'regime': 'real',
            'fraction': 1.0,
            'ratio': None,
            'metrics': {'miou': 0.7, 'oa': 0.9, 'iou/a': 0.6, 'iou/b': math.nan},
        },
        {
            'regime': 'real+rebalanced',
            'fraction': 1.0,
            'ratio': None,
            'metrics': {'miou': 0.2, 'oa': 0.3, 'iou/c': 0.2},
        },
    ]
    rows = benchmark.summarise(runs)
    assert rows[0]['seeds'] == 2
    assert rows[0]['iou/a']['mean'] == pytest.approx(0.5)
    assert rows[0]['iou/b'] == {'mean': pytest.approx(0.6), 'std': 0.0, 'n': 1}
    assert 'iou/c' not in rows[0]
    assert 'iou/a' not in rows[1]
    table = benchmark.markdown_table(rows, ['iou/a', 'iou/b', 'iou/c'], ['a', 'b', 'c'])
    assert table[0].endswith('| a | b | c |')
    assert table[2].endswith('| - |')
    assert table[3].startswith('| real+rebalanced | 1.0 | all | 1 | - | - | 0.200')
    assert 'real+rebalanced' in benchmark.REGIMES
    assert benchmark.SYNTHETIC_NEEDED['real+targeted'] == 'targeted'


def test_baseline_comparison_tabulates_per_class_angles(
    tmp_path: Path, load_benchmark: Callable[[str], ModuleType]
) -> None:
    comparison = load_benchmark('baseline_comparison')
    angles = {}
    for label, corn in (('two', 4.5), ('one', None)):
        folder = tmp_path / label
        (folder / 'fidelity').mkdir(parents=True)
        metrics = {
            'class_spectrum_sam_degrees': {'soil': 1.0, 'corn': corn},
            'class_spectrum_sam_degrees_train': {'soil': 0.5, 'corn': 3.0},
        }
        (folder / 'fidelity' / 'metrics.json').write_text(json.dumps(metrics))
        angles[label] = comparison.class_angles(folder)
    table = comparison.class_table(angles)
    assert table[3] == (
        '| class | two, vs validation | two, vs training | one, vs validation '
        '| one, vs training |'
    )
    assert table[5] == '| soil | 1.00 | 0.50 | 1.00 | 0.50 |'
    assert table[6] == '| corn | 4.50 | 3.00 | - | 3.00 |'
    assert table[7] == '| **largest** | **4.50** | **3.00** | **1.00** | **3.00** |'
    # A run scored before the training-split angles existed gives no table.
    (tmp_path / 'old' / 'fidelity').mkdir(parents=True)
    (tmp_path / 'old' / 'fidelity' / 'metrics.json').write_text(
        json.dumps({'class_spectrum_sam_degrees': {'soil': 1.0}})
    )
    angles['old'] = comparison.class_angles(tmp_path / 'old')
    assert comparison.class_table(angles) == []


def test_change_detection_config_runs_on_real_oscd(
    oscd_root: Path, tmp_path: Path
) -> None:
    from torchgeo_specdm.cli import main

    args = ['fit', '--config', str(ROOT / 'benchmarks/configs/change_detection.yaml')]
    args += ['--config', str(ROOT / 'datamodules/oscd_patches.yaml')]
    args += [f'--data.dict_kwargs.root={oscd_root}', '--data.init_args.batch_size=2']
    args += ['--trainer.fast_dev_run=true', f'--trainer.default_root_dir={tmp_path}']
    main(args)


def test_miou_averages_the_classes_present_in_the_ground_truth() -> None:
    # Class 2 is only predicted (a false positive): its IoU of 0 is reported but
    # stays out of the mean, which covers the target's classes 0 and 1.
    prediction = torch.tensor([0, 0, 1, 2])
    target = torch.tensor([0, 0, 1, 1])
    scores = segmentation_scores(prediction, target, 3)
    assert scores['iou/2'] == 0.0
    assert scores['iou/1'] == pytest.approx(1 / 2)
    assert scores['miou'] == pytest.approx((1.0 + 1 / 2) / 2)


def test_generators_never_see_the_test_cities(
    load_benchmark: Callable[[str], ModuleType], oscd_root: Path, tmp_path: Path
) -> None:
    benchmark = load_benchmark('generators')
    held_out = tmp_path / 'heldout'
    make_heldout_root(oscd_root, held_out)
    data_kwargs = benchmark.training_split('oscd', str(held_out))
    assert data_kwargs == {'exclude_cities': ['bercy', 'pisa']}
    datamodule = demo_datamodule('oscd', oscd_root, 4, data_kwargs)
    datamodule.setup('fit')
    seen = {*datamodule.train_cities, *datamodule.val_cities}  # type: ignore[attr-defined]
    assert len(seen) == 8
    assert seen.isdisjoint({'bercy', 'pisa'})
    with pytest.raises(SystemExit, match='needs --test-root'):
        benchmark.training_split('oscd', None)
    assert benchmark.training_split('simulated-segmentation', None) == {}


def test_generators_learn_from_the_pool_that_real_only_trains_on(
    load_benchmark: Callable[[str], ModuleType], oscd_root: Path, tmp_path: Path
) -> None:
    generators = load_benchmark('generators')
    label_pool = load_benchmark('label_pool')
    judge = load_benchmark('judge')
    held_out = tmp_path / 'heldout'
    make_heldout_root(oscd_root, held_out)
    pool = generators.labelled_pool('oscd', str(oscd_root), str(held_out), 0.25, 3)
    real_only = label_pool.LimitedDataModule(
        judge.real_datamodule('oscd', str(oscd_root), str(held_out), 4), 0.25, 3
    )
    real_only.setup('fit')
    assert pool == {'city_pool': judge.kept_cities(real_only)}
    assert len(pool['city_pool']) == 2  # a quarter of the 6 training cities

    data_kwargs = generators.training_split('oscd', str(held_out)) | pool
    datamodule = demo_datamodule('oscd', oscd_root, 4, data_kwargs)
    datamodule.setup('fit')
    assert sorted(datamodule.train_cities) == sorted(pool['city_pool'])  # type: ignore[attr-defined]
    assert datamodule.val_cities == real_only.real.val_cities  # type: ignore[attr-defined]

    assert generators.labelled_pool('oscd', str(oscd_root), None, 1.0, 3) == {}
    assert generators.labelled_pool('salinas-a', None, None, 0.1, 3) == {
        'label_fraction': 0.1,
        'seed': 3,
    }
    with pytest.raises(SystemExit, match=r'alignment\.py --fraction'):
        generators.labelled_pool('simulated-segmentation', None, None, 0.1, 3)
    with pytest.raises(InvalidInputError, match='city_pool: atlantis'):
        OSCDPatchDataModule(root=str(oscd_root), city_pool=['atlantis']).setup('fit')


def test_quick_trains_generators_only_without_folders_and_on_one_pool(
    load_benchmark: Callable[[str], ModuleType], tmp_path: Path
) -> None:
    downstream = load_benchmark('downstream')
    given = argparse.Namespace(
        specdm_synthetic='A', baseline_synthetic=None, fractions=[0.1], pool_seed=None
    )
    downstream.quick_generators(given)
    assert given.specdm_synthetic == 'A'
    assert given.baseline_synthetic is None
    unpooled = argparse.Namespace(
        specdm_synthetic=None,
        baseline_synthetic=None,
        fractions=[0.1, 0.05],
        pool_seed=None,
        work_dir=str(tmp_path),
    )
    with pytest.raises(SystemExit, match='pass --pool-seed'):
        downstream.quick_generators(unpooled)
    assert not any(tmp_path.iterdir())


def test_report_counts_runs_reused_from_an_earlier_invocation(
    load_benchmark: Callable[[str], ModuleType],
) -> None:
    downstream = load_benchmark('downstream')
    text = downstream.run_time_text(3, 3.0, 2, 0.1)
    assert text == (
        'wall time 0.1 min; the 3 runs trained in 3.0 min, 2 of them in an earlier '
        'invocation'
    )
    assert 'earlier' not in downstream.run_time_text(3, 3.0, 0, 3.0)


def test_runs_of_two_labelled_pools_are_kept_apart(
    load_benchmark: Callable[[str], ModuleType], tmp_path: Path
) -> None:
    downstream = load_benchmark('downstream')
    paths = {
        downstream.run_record_path(tmp_path, 'real', 0.1, 0, None, pool)
        for pool in (None, 0, 1)
    }
    assert len(paths) == 3
    assert downstream.run_record_path(tmp_path, 'real', 1.0, 2, None, None) == (
        tmp_path / 'real-1.0-2-None.json'
    )
