"""The real OSCD cities load through torchgeo's stock dataset and datamodule."""

from pathlib import Path

import kornia
import pytest
import torch
from packaging.version import Version
from torchgeo.datamodules import OSCDDataModule
from torchgeo.datasets import OSCD

CITIES = {
    'aguasclaras',
    'bercy',
    'bordeaux',
    'paris',
    'rennes',
    'saclay_e',
    'abudhabi',
    'pisa',
    'beihai',
    'hongkong',
}


def test_kornia_is_pinned_below_0_9() -> None:
    # kornia 0.9.0's VideoSequential rejects OSCD's [B, 2, C, H, W] image with a [B, 1, H, W] mask.
    assert Version('0.8.2') <= Version(kornia.__version__) < Version('0.9')


def test_real_cities_load(oscd_root: Path) -> None:
    dataset = OSCD(oscd_root, split='train')
    assert {files['region'] for files in dataset.files} == CITIES
    sample = dataset[0]
    assert sample['image'].shape == (2, 13, 320, 320)
    assert sample['image'].dtype == torch.float32
    assert sample['mask'].shape == (1, 320, 320)
    assert set(sample['mask'].unique().tolist()) <= {0, 1}
    assert 0.004 <= float(sample['mask'].float().mean()) <= 0.11


def test_datamodule_crops_and_normalises_bitemporal_batches(oscd_root: Path) -> None:
    # Each step here raised "Video and mask must have the same number of frames" with kornia 0.9.0.
    datamodule = OSCDDataModule(root=oscd_root, batch_size=4, patch_size=32)
    datamodule.setup('fit')
    assert len(datamodule.train_dataset) == 8
    assert len(datamodule.val_dataset) == 2
    batch = next(iter(datamodule.train_dataloader()))
    assert batch['image'].shape == (4, 2, 13, 32, 32)
    assert batch['mask'].shape == (4, 1, 32, 32)
    normalised = datamodule.aug(batch)
    assert normalised['image'].shape == (4, 2, 13, 32, 32)
    assert normalised['mask'].shape == (4, 1, 32, 32)
    assert abs(float(normalised['image'].mean())) < 3


@pytest.mark.parametrize('bands', [('B04', 'B03', 'B02'), OSCD.all_bands])
def test_band_subsets(oscd_root: Path, bands: tuple[str, ...]) -> None:
    assert OSCD(oscd_root, bands=bands)[1]['image'].shape[1] == len(bands)
