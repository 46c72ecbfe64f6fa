"""Training learns: each task overfits one small batch under a real Lightning Trainer."""

from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer, seed_everything

from torchgeo_specdm.datamodules import SimulatedSegmentationDataModule
from torchgeo_specdm.tasks import LatentDiffusion, TwoStreamVAE
from torchgeo_specdm.types import Sample

from .conftest import LossCurve

#: The loss after overfitting, at most this fraction of the loss at the start.
VAE_FRACTION = 0.35
DIFFUSION_FRACTION = 0.5


def _one_batch() -> SimulatedSegmentationDataModule:
    """Four 16 px scenes in one batch, without the random flips of training."""
    datamodule = SimulatedSegmentationDataModule(
        num_train=4, num_val=4, size=16, batch_size=4
    )
    datamodule.train_aug = datamodule.aug
    return datamodule


def _overfit(
    task: LightningModule, steps: int, root: Path, *callbacks: Callback
) -> None:
    # One batch is one epoch here: no validation, so the plateau schedule (given
    # a large patience by the tasks below) keeps the learning rate.
    Trainer(
        overfit_batches=1,
        max_steps=steps,
        check_val_every_n_epoch=10**6,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
        default_root_dir=root,
    ).fit(task, datamodule=_one_batch())


@pytest.fixture(scope='module')
def overfit_vae(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[TwoStreamVAE, list[float]]:
    seed_everything(0)
    vae = TwoStreamVAE(
        base_channels=8,
        mask_base_channels=8,
        downsampling_factor=2,
        lr=5e-3,
        patience=1000,
        num_plots=0,
    )
    losses = LossCurve()
    _overfit(vae, 60, tmp_path_factory.mktemp('vae'), losses)
    return vae, losses.losses


def test_vae_overfits_one_batch(overfit_vae: tuple[TwoStreamVAE, list[float]]) -> None:
    _, losses = overfit_vae
    assert len(losses) == 60
    end = sum(losses[-5:]) / 5
    assert end < VAE_FRACTION * losses[0], f'loss {losses[0]:.3f} -> {end:.3f}'


class _FixedDrawLoss(Callback):
    """The diffusion objective on fixed noise and timesteps, before training."""

    def __init__(self, batch: Sample) -> None:
        self.batch = batch
        self.start: float | None = None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        assert isinstance(pl_module, LatentDiffusion)
        self.start = fixed_draw_loss(pl_module, self.batch)


def fixed_draw_loss(task: LatentDiffusion, batch: Sample) -> float:
    """The task's min-SNR v-loss of a batch's latents, averaged over 8 seeded draws."""
    latent = task.vae.encode(batch['image'], batch['mask'])
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(0)
        return float(sum(task._loss(latent) for _ in range(8)) / 8)


def test_latent_diffusion_overfits_one_batch(
    overfit_vae: tuple[TwoStreamVAE, list[float]], tmp_path: Path
) -> None:
    vae, _ = overfit_vae
    datamodule = _one_batch()
    datamodule.setup('fit')
    batch = datamodule.aug(next(iter(datamodule.train_dataloader())))
    seed_everything(0)
    task = LatentDiffusion(
        vae=vae,
        block_out_channels=(16, 32),
        attention=False,
        cache_latents=False,
        lr=3e-3,
        patience=1000,
        sample_every_n_epochs=10**6,
    )
    losses, start = LossCurve(), _FixedDrawLoss(batch)
    _overfit(task, 150, tmp_path, losses, start)
    assert len(losses.losses) == 150
    assert start.start is not None
    end = fixed_draw_loss(task, batch)
    assert end < DIFFUSION_FRACTION * start.start, f'{start.start:.3f} -> {end:.3f}'
