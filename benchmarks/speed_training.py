"""Training job of speed.py: the Lightning task against a bare loop, U-Net FLOPs."""

import itertools
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DModel
from diffusers.training_utils import EMAModel, compute_snr
from lightning.pytorch import Callback, Trainer
from speed_measure import Settings, now
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from torchgeo_specdm.datamodules.registry import build_datamodule
from torchgeo_specdm.tasks import LatentDiffusion
from torchgeo_specdm.tasks.latent_cache import LatentCache, random_dihedral


class StepTimer(Callback):
    """Time stamps of the start and end of every training batch."""

    def __init__(self) -> None:
        """Initialize a new StepTimer instance."""
        self.starts: list[float] = []
        self.ends: list[float] = []

    def on_train_batch_start(self, *args: Any) -> None:
        """Record the start of a batch (after loading, transfer and augmentation).

        Args:
            args: Lightning's arguments.
        """
        self.starts.append(now())

    def on_train_batch_end(self, *args: Any) -> None:
        """Record the end of a batch (after the optimizer and EMA steps).

        Args:
            args: Lightning's arguments.
        """
        self.ends.append(now())

    def periods(self, skip: int) -> tuple[list[float], list[float]]:
        """Step periods and the gaps between batches, after ``skip`` warm-up steps.

        Args:
            skip: warm-up steps to leave out.

        Returns:
            start-to-start periods and end-to-next-start gaps.
        """
        starts, ends = self.starts[skip:], self.ends[skip:]
        periods = [b - a for a, b in itertools.pairwise(starts)]
        gaps = [b - a for a, b in zip(ends, starts[1:])]
        return periods, gaps


def _architecture(model: LatentDiffusion) -> dict[str, Any]:
    keys = (
        'block_out_channels',
        'layers_per_block',
        'attention',
        'prediction_type',
        'beta_schedule',
        'num_train_timesteps',
        'snr_gamma',
        'ema_decay',
        'lr',
    )
    return {key: model.hparams[key] for key in keys}


def _bare_loop(
    model: LatentDiffusion, cache: LatentCache, batch_size: int, steps: int
) -> tuple[list[float], list[float]]:
    """A plain PyTorch loop doing the task's work: its per-step and data times."""
    hparams = model.hparams
    unet = UNet2DModel.from_config(model.unet.config).train()
    scheduler = DDPMScheduler.from_config(model.noise_scheduler.config)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=hparams['lr'])
    decay = hparams['ema_decay']
    ema = (
        None
        if decay is None
        else EMAModel(unet.parameters(), decay=decay, use_ema_warmup=True, power=0.75)
    )
    loader = DataLoader(cache, batch_size=batch_size, shuffle=True, drop_last=True)
    iterator = iter(loader)
    gamma, velocity = hparams['snr_gamma'], hparams['prediction_type'] != 'epsilon'
    periods, data = [], []
    for _ in range(steps):
        start = now()
        try:
            batch = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            batch = next(iterator)
        latent = LatentCache.sample(random_dihedral(batch))
        loaded = now()
        noise = torch.randn_like(latent)
        timesteps = torch.randint(
            0, scheduler.config['num_train_timesteps'], (len(latent),)
        )
        noisy = scheduler.add_noise(latent, noise, timesteps)
        prediction = unet(noisy, timesteps).sample
        target = scheduler.get_velocity(latent, noise, timesteps) if velocity else noise
        if gamma is None:
            loss = F.mse_loss(prediction, target)
        else:
            snr = compute_snr(scheduler, timesteps)
            weights = torch.minimum(snr, torch.full_like(snr, gamma))
            weights = weights / (snr + 1 if velocity else snr)
            loss = F.mse_loss(prediction, target, reduction='none').mean(dim=(1, 2, 3))
            loss = (loss * weights).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if ema is not None:
            ema.step(unet.parameters())
        periods.append(now() - start)
        data.append(loaded - start)
    return periods, data


def training_throughput(
    model: LatentDiffusion, dataset: str, work: Path, settings: Settings
) -> dict[str, Any]:
    """Steps per second of the Lightning task against a bare loop, and U-Net FLOPs.

    Args:
        model: the task whose VAE, U-Net configuration and settings are used.
        dataset: the simulator family to cache latents from.
        work: folder for Lightning's files.
        settings: run sizes.

    Returns:
        step times, ratios, the data share and the FLOPs.
    """
    # Scenes of the size the model was trained on (the U-Net's latent size).
    size = model.latent_shape()[-1] * model.vae.hparams['downsampling_factor']
    datamodule = build_datamodule(
        dataset, num_train=settings.train_scenes, num_val=8, batch_size=16, size=size
    )
    datamodule.setup('fit')
    start = time.perf_counter()
    cache = LatentCache.build(model.vae, datamodule)
    cache_seconds = time.perf_counter() - start
    batch_size = min(16, len(cache))
    architecture = _architecture(model)
    latent_size = list(model.latent_shape()[1:])
    warmup, steps = settings.train_warmup, settings.train_steps

    def lightning_run(channels_last: bool = False) -> tuple[list[float], list[float]]:
        task = LatentDiffusion(
            vae=model.vae,
            cache_latents=False,
            latent_size=latent_size,
            sample_every_n_epochs=10**6,
            patience=1000,
            channels_last=channels_last,
            **architecture,
        )
        cache.install(datamodule)
        timer = StepTimer()
        Trainer(
            max_steps=warmup + steps + 1,
            max_epochs=-1,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[timer],
            default_root_dir=work,
        ).fit(task, datamodule=datamodule)
        return timer.periods(warmup)

    lightning_periods, lightning_gaps, bare_periods, bare_data = [], [], [], []
    ratios, channels_last_ratios = [], []
    for repeat in range(settings.train_repeats):
        periods, gaps = lightning_run()
        lightning_periods += periods
        lightning_gaps += gaps
        bare, data = _bare_loop(model, cache, batch_size, warmup + steps)
        bare_periods += bare[warmup:]
        bare_data += data[warmup:]
        ratios.append(statistics.median(bare[warmup:]) / statistics.median(periods))
        if repeat == 0:
            channels_last_periods, _ = lightning_run(channels_last=True)
            channels_last_ratios.append(
                statistics.median(periods) / statistics.median(channels_last_periods)
            )
    lightning_step = statistics.median(lightning_periods)
    bare_step = statistics.median(bare_periods)
    flops = unet_training_flops(model, batch_size)
    return {
        'dataset': dataset,
        'cached_latents': len(cache),
        'cache_seconds': cache_seconds,
        'batch_size': batch_size,
        'latent_shape': list(model.latent_shape()),
        'unet_block_out_channels': list(architecture['block_out_channels']),
        'timed_steps_per_run': steps - 1,
        'warmup_steps': warmup,
        'runs_each': settings.train_repeats,
        'lightning': 'Trainer(logger=False), LatentDiffusion with the cache installed',
        'bare_loop': 'same work per step: cached posterior sample, random dihedral, '
        'min-SNR loss, AdamW, EMA step',
        'lightning_seconds_per_step': lightning_step,
        'bare_seconds_per_step': bare_step,
        'lightning_steps_per_second': 1 / lightning_step,
        'bare_steps_per_second': 1 / bare_step,
        'ratio': statistics.median(ratios),
        'ratio_each_repeat': ratios,
        'lightning_overhead_ms_per_step': 1000 * (lightning_step - bare_step),
        'between_batch_share': statistics.median(lightning_gaps) / lightning_step,
        'between_batch_share_mean': sum(lightning_gaps) / sum(lightning_periods),
        'bare_data_share': statistics.median(bare_data) / bare_step,
        'channels_last_seconds_per_step': statistics.median(channels_last_periods),
        'channels_last_speedup_cpu': channels_last_ratios[0],
        'unet_flops_per_step': flops,
        'achieved_tflops_bare': flops / bare_step / 1e12,
        'achieved_tflops_lightning': flops / lightning_step / 1e12,
    }


def unet_training_flops(model: LatentDiffusion, batch_size: int) -> int:
    """FLOPs of one U-Net forward and backward pass at a batch size.

    Args:
        model: the task.
        batch_size: latents per step.

    Returns:
        the FLOPs counted by :class:`torch.utils.flop_counter.FlopCounterMode`.
    """
    unet = UNet2DModel.from_config(model.unet.config).train()
    latent = torch.randn(batch_size, *model.latent_shape())
    timesteps = torch.randint(0, 1000, (batch_size,))
    with FlopCounterMode(display=False) as counter:
        unet(latent, timesteps).sample.square().mean().backward()
    return int(counter.get_total_flops())
