"""OSCDPatchDataModule and ScenePatches on the real OSCD cities."""

from pathlib import Path

import pytest
import torch

from torchgeo_specdm.datamodules import OSCDPatchDataModule
from torchgeo_specdm.datasets import InvalidInputError
from torchgeo_specdm.datasets.patches import ScenePatches


@pytest.fixture(scope='module')
def datamodule(oscd_root: Path) -> OSCDPatchDataModule:
    module = OSCDPatchDataModule(
        root=oscd_root, batch_size=4, patch_size=64, patches_per_epoch=12
    )
    module.setup('fit')
    return module


def test_city_split_matches_torchgeo(datamodule: OSCDPatchDataModule) -> None:
    assert len(datamodule.train_cities) == 8
    assert len(datamodule.val_cities) == 2
    assert set(datamodule.train_cities).isdisjoint(datamodule.val_cities)


def test_training_patches(datamodule: OSCDPatchDataModule) -> None:
    assert len(datamodule.train_dataset) == 12  # type: ignore[arg-type]
    batch = next(iter(datamodule.train_dataloader()))
    assert batch['image'].shape == (4, 2, 13, 64, 64)
    assert batch['mask'].shape == (4, 1, 64, 64)
    augmented = datamodule.train_aug(batch)
    assert augmented['image'].shape == (4, 2, 13, 64, 64)
    assert augmented['mask'].dtype == torch.long


def test_validation_grid_is_fixed(datamodule: OSCDPatchDataModule) -> None:
    dataset = datamodule.val_dataset
    assert len(dataset) == 2 * 5 * 5  # type: ignore[arg-type]
    assert torch.equal(dataset[7]['image'], dataset[7]['image'])  # type: ignore[index]
    scene = dataset.scenes[0]  # type: ignore[union-attr]
    assert torch.equal(dataset[6]['image'], scene['image'][..., 64:128, 64:128])  # type: ignore[index]


def test_scene_smaller_than_patch() -> None:
    scene = {
        'image': torch.zeros(2, 3, 32, 32),
        'mask': torch.zeros(1, 32, 32, dtype=torch.long),
    }
    with pytest.raises(
        InvalidInputError, match='scene 0 is 32 x 32 px, smaller than patch_size=64'
    ):
        ScenePatches([scene], 64)


def test_matched_scene_statistics(oscd_root: Path) -> None:
    module = OSCDPatchDataModule(
        root=oscd_root, patch_size=64, match_scene_statistics=True
    )
    module.setup('fit')
    plain = OSCDPatchDataModule(root=oscd_root, patch_size=64)
    plain.setup('fit')
    for matched, original in zip(module.val_dataset.scenes, plain.val_dataset.scenes):  # type: ignore[union-attr]
        image = matched['image']
        # Every band of both dates now has the dataset's mean and std ...
        torch.testing.assert_close(
            image.mean(dim=(-2, -1)), module.mean.expand(2, -1), rtol=1e-3, atol=0.5
        )
        torch.testing.assert_close(
            image.std(dim=(-2, -1)), module.std.expand(2, -1), rtol=1e-3, atol=0.5
        )
        # ... and the pixels keep their order within each band.
        before = original['image'][1, 3].flatten().argsort()
        after = image[1, 3].flatten()[before]
        assert bool((after.diff() >= 0).all())
        assert torch.equal(matched['mask'], original['mask'])
