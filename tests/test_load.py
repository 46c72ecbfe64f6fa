"""SyntheticDataset under load: many workers, many samples, several epochs (slow)."""

import os
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from torchgeo_specdm.datasets import SyntheticDataset
from torchgeo_specdm.export import DatasetWriter
from torchgeo_specdm.types import Sample

from .conftest import TEST_GENERATOR

NUM_SAMPLES = 10_000


def _rss_mib() -> float:
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    raise RuntimeError('no VmRSS in /proc/self/status')


class _TaggedByProcess(SyntheticDataset):
    """A SyntheticDataset whose samples name the process that read them."""

    def __getitem__(self, index: int) -> Sample:
        return super().__getitem__(index) | {'pid': torch.tensor(os.getpid())}


@pytest.mark.slow
def test_every_sample_once_per_epoch_with_flat_memory(tmp_path: Path) -> None:
    writer = DatasetWriter(
        tmp_path,
        'segmentation',
        bands=['B02', 'B03', 'B04', 'B08'],
        num_classes=2,
        class_names=['a', 'b'],
        generator=TEST_GENERATOR,
    )
    for index in range(NUM_SAMPLES):
        image = torch.full((4, 8, 8), float(index))
        writer.write(index, image, torch.zeros(8, 8, dtype=torch.long), seed=index)
    writer.finalize(NUM_SAMPLES)

    dataset = _TaggedByProcess(tmp_path)
    loader = DataLoader(
        dataset, batch_size=64, shuffle=True, num_workers=8, persistent_workers=True
    )
    rss, readers = [], []
    for _ in range(3):
        batches = list(loader)
        seen = torch.cat([batch['image'][:, 0, 0, 0].long() for batch in batches])
        assert seen.numel() == NUM_SAMPLES
        assert torch.equal(seen.sort().values, torch.arange(NUM_SAMPLES))
        readers.append(set(torch.cat([batch['pid'] for batch in batches]).tolist()))
        rss.append(_rss_mib())
    assert rss[-1] < rss[0] * 1.1 + 16, f'main-process RSS grew over epochs: {rss} MiB'
    # Eight worker processes read the samples, the same ones every epoch.
    assert len(readers[0]) == 8
    assert os.getpid() not in readers[0]
    assert readers[1] == readers[2] == readers[0]
