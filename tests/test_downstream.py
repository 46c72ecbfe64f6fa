"""Scoring downstream models on purely real held-out data."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from torchgeo_specdm.datamodules import (
    OSCDPatchDataModule,
    SimulatedSegmentationDataModule,
)
from torchgeo_specdm.downstream import (
    held_out_split,
    make_downstream_task,
    score_downstream,
)

from .conftest import ROOT


def test_oscd_without_test_labels_scores_on_val(oscd_root: Path) -> None:
    assert held_out_split(OSCDPatchDataModule(root=str(oscd_root))) == 'val'


def test_heldout_oscd_root_has_a_test_split(oscd_root: Path, tmp_path: Path) -> None:
    out = tmp_path / 'heldout'
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
    datamodule = OSCDPatchDataModule(root=str(out), patch_size=64)
    assert held_out_split(datamodule) == 'test'
    assert len(datamodule.test_dataset) > 0
    task = make_downstream_task(13, 2, change=True)
    scores = score_downstream(task, datamodule, 'test')
    assert scores.keys() == {'f1', 'precision', 'recall', 'iou'}
    assert all(0 <= value <= 1 for value in scores.values())


def test_segmentation_scores_match_their_definition() -> None:
    datamodule = SimulatedSegmentationDataModule(
        num_train=4, num_val=4, num_test=4, size=16, batch_size=4
    )
    torch.manual_seed(0)
    task = make_downstream_task(10, datamodule.num_classes, change=False)
    scores = score_downstream(task, datamodule, 'test')
    datamodule.setup('test')
    batch = datamodule.aug(next(iter(datamodule.test_dataloader())))
    with torch.no_grad():
        prediction = task(batch['image']).argmax(1)
    target = batch['mask']
    assert scores['oa'] == pytest.approx(float((prediction == target).float().mean()))
    ious = [
        float(((prediction == c) & (target == c)).sum())
        / float(((prediction == c) | (target == c)).sum())
        for c in range(datamodule.num_classes)
        if ((prediction == c) | (target == c)).any()
    ]
    assert scores['miou'] == pytest.approx(sum(ious) / len(ious), abs=1e-6)
