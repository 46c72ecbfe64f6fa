"""LatentDiffusion's latent-augmentation and mask-loss-weight options."""

from pathlib import Path

import pytest
import torch

from torchgeo_specdm.datamodules import SimulatedSegmentationDataModule
from torchgeo_specdm.datasets.validation import InvalidInputError
from torchgeo_specdm.tasks import LatentDiffusion, TwoStreamVAE
from torchgeo_specdm.tasks.latent_cache import LatentCache, random_dihedral
from torchgeo_specdm.tasks.utils import steps_trainer


def _datamodule() -> SimulatedSegmentationDataModule:
    return SimulatedSegmentationDataModule(
        num_train=8, num_val=4, num_test=4, size=32, batch_size=4
    )


def _fit(vae: Path, tmp_path: Path, **kwargs: object) -> LatentDiffusion:
    model = LatentDiffusion(
        vae_checkpoint=str(vae),
        block_out_channels=(16, 32),
        attention=False,
        sample_every_n_epochs=10_000,
        **kwargs,  # type: ignore[arg-type]
    )
    trainer = steps_trainer(2, tmp_path)
    datamodule = _datamodule()
    trainer.fit(model, datamodule=datamodule)
    model.fitted_datamodule = datamodule  # type: ignore[attr-defined]
    return model


def test_pixel_augmentation_caches_flipped_views(
    tiny_vae: dict[str, Path], tmp_path: Path
) -> None:
    vae = tiny_vae['simulated_segmentation']
    plain = _fit(vae, tmp_path / 'plain', latent_augmentation='none', cache_passes=3)
    pixel = _fit(vae, tmp_path / 'pixel', latent_augmentation='pixel', cache_passes=3)
    assert plain.latent_cache is not None
    assert pixel.latent_cache is not None
    assert len(plain.latent_cache) == len(pixel.latent_cache) == 3 * 8
    # Unaugmented passes encode the same images: the same latents every pass.
    means = plain.latent_cache.mean.unflatten(0, (3, 8))
    assert torch.allclose(means[0], means[1])
    assert torch.allclose(means[0], means[2])
    # Pixel-space flips and rotations encode other views of the images.
    views = pixel.latent_cache.mean.unflatten(0, (3, 8))
    assert not torch.allclose(views[0], views[1])
    # 'none' and 'pixel' leave cached batches as they are; 'dihedral' moves them.
    batch = {'latent_mean': means[0], 'latent_std': means[0].abs()}
    for model in (plain, pixel):
        moved = model.fitted_datamodule.train_aug(batch)  # type: ignore[attr-defined]
        assert torch.equal(moved['latent_mean'], batch['latent_mean'])
    torch.manual_seed(0)
    assert not torch.equal(random_dihedral(batch)['latent_mean'], means[0])


def test_mask_loss_weight_weighs_the_mask_channels(tiny_vae: dict[str, Path]) -> None:
    vae = TwoStreamVAE.from_checkpoint(tiny_vae['simulated_segmentation'])
    model = LatentDiffusion(vae=vae, block_out_channels=(16, 32), mask_loss_weight=3.0)
    mask = vae.autoencoder.stream_channels['mask']
    loss = torch.ones(2, vae.autoencoder.latent_channels, 4, 4)
    weighted = model._weigh_channels(loss)
    # Mask channels weigh 3x the image channels; the mean weight stays 1.
    assert torch.allclose(weighted[:, -mask:], 3 * weighted[:, :-mask].mean())
    assert torch.isclose(weighted.mean(), torch.tensor(1.0))
    plain = LatentDiffusion(vae=vae, block_out_channels=(16, 32))
    assert torch.equal(plain._weigh_channels(loss), loss)


@pytest.mark.parametrize('weight', [0.0, -1.0, float('inf'), float('nan')])
def test_bad_mask_loss_weight_is_a_clear_error(weight: float) -> None:
    with pytest.raises(InvalidInputError, match='mask_loss_weight'):
        LatentDiffusion(mask_loss_weight=weight)


def test_mask_loss_weight_needs_a_mask_stream() -> None:
    datamodule = _datamodule()
    vae = TwoStreamVAE(
        architecture='single_stream',
        in_channels=len(datamodule.bands),
        num_classes=datamodule.num_classes,
        num_images=1,
        downsampling_factor=2,
    )
    model = LatentDiffusion(vae=vae, block_out_channels=(16, 32), mask_loss_weight=2.0)
    loss = torch.ones(1, vae.autoencoder.latent_channels, 4, 4)
    with pytest.raises(InvalidInputError, match='no separate mask stream'):
        model._weigh_channels(loss)


def test_latent_cache_build_without_augmentation_is_repeatable(
    tiny_vae: dict[str, Path],
) -> None:
    vae = TwoStreamVAE.from_checkpoint(tiny_vae['simulated_segmentation']).eval()
    datamodule = _datamodule()
    datamodule.setup('fit')
    first = LatentCache.build(vae, datamodule)
    second = LatentCache.build(vae, datamodule)
    assert torch.equal(first.mean, second.mean)
