"""benchmarks/merge_synthetic.py: several generated folders as one, nothing lost."""

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch

from torchgeo_specdm.datamodules import SimulatedSegmentationDataModule
from torchgeo_specdm.datasets import SyntheticDataset
from torchgeo_specdm.export import DatasetWriter

from .conftest import ROOT, TEST_GENERATOR


def _folder(root: Path, seed: int, count: int, bands: int = 10) -> Path:
    """A generated folder of simulator scenes, written by the real writer."""
    datamodule = SimulatedSegmentationDataModule(num_train=count, size=16, seed=seed)
    datamodule.setup('fit')
    writer = DatasetWriter(
        root,
        'segmentation',
        list(datamodule.bands)[:bands],
        datamodule.num_classes,
        list(datamodule.class_names),
        TEST_GENERATOR,
    )
    for index in range(count):
        sample = datamodule.train_dataset[index]
        extra = {'refined_share': 0.25} if index == 0 else None
        writer.write(
            index,
            sample['image'][:bands],
            sample['mask'],
            seed=100 * seed + index,
            extra=extra,
        )
    writer.finalize(count)
    return root


def test_merged_folder_holds_every_source_sample_in_order(tmp_path: Path) -> None:
    first = _folder(tmp_path / 'a', seed=1, count=3)
    second = _folder(tmp_path / 'b', seed=2, count=2)
    out = tmp_path / 'merged'
    command = [
        sys.executable,
        str(ROOT / 'benchmarks' / 'merge_synthetic.py'),
        '--sources',
        str(first),
        str(second),
        '--out',
        str(out),
    ]
    printed = subprocess.run(command, check=True, capture_output=True, text=True)
    assert '5 samples' in printed.stdout
    merged = SyntheticDataset(out)
    expected = [SyntheticDataset(first)[i] for i in range(3)] + [
        SyntheticDataset(second)[i] for i in range(2)
    ]
    assert len(merged) == 5
    for number, sample in enumerate(expected):
        assert torch.equal(merged[number]['image'], sample['image'])
        assert torch.equal(merged[number]['mask'], sample['mask'])
    assert [record['seed'] for record in merged.samples] == [100, 101, 102, 200, 201]
    assert merged.samples[0]['refined_share'] == 0.25
    assert merged.samples[3]['refined_share'] == 0.25
    sources = merged.manifest['generator']['sources']
    assert [source['num_samples'] for source in sources] == [3, 2]
    written = {path: path.read_bytes() for path in sorted(out.rglob('*.tif'))}
    subprocess.run(command, check=True, capture_output=True)  # a rerun keeps them
    assert {path: path.read_bytes() for path in sorted(out.rglob('*.tif'))} == written


def test_folders_of_other_bands_are_refused(
    load_benchmark: Callable[[str], ModuleType], tmp_path: Path
) -> None:
    merge = load_benchmark('merge_synthetic')
    first = _folder(tmp_path / 'a', seed=1, count=2)
    fewer = _folder(tmp_path / 'b', seed=2, count=2, bands=4)
    with pytest.raises(SystemExit, match='its bands'):
        merge.merge([first, fewer], tmp_path / 'merged')
    assert not (tmp_path / 'merged').exists()
    with pytest.raises(SystemExit, match='at least two'):
        merge.merge([first], tmp_path / 'merged')
