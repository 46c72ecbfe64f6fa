"""Speed, memory and scaling of SpecDM: every figure a ratio measured in one run.

1. Sampler parity: DPM-Solver++ (10 to 25 steps) and DDIM-50 against DDPM ancestral
   sampling at 1000 steps, same model and seeds: wall time per pair, and the class-
   spectrum SAM and class-histogram TV against real validation data (alignment too
   when a real-trained downstream model is given).
2. Pipeline overhead: SpecDMPipeline's denoising loop against diffusers' own
   DDIMPipeline driving the same U-Net, latent size, scheduler, steps and noise.
3. Training throughput: the LatentDiffusion task under a Lightning Trainer against a
   bare PyTorch loop doing the same work on the same cached latents, and the share of
   a step spent between batches (data loading, transfer, augmentation).
4. Memory and scaling: peak RSS and wall time of fresh ``specdm sample`` processes
   against the number of pairs; time and memory of one pair against image size and
   band count (untrained models of the default sizes).
5. Sharded generation: ``specdm sample --devices 2`` against ``--devices 1``, with the
   SHA-256 of every file.
6. GPU path: the task's options, the U-Net's FLOPs per training step and the
   achieved TFLOP/s.

Timings take a warm-up, then the median of repeats; the two sides of a ratio run
alternately in the same process. Writes benchmarks/results/<name>.json and <name>.md
and prints the ratio table.

Example:
    python benchmarks/speed.py --quick
    python benchmarks/speed.py --name speed_full \\
        --checkpoint outputs/specdm_cpu/simulated-segmentation-two_stream/diffusion.ckpt \\
        --oscd-checkpoint outputs/specdm_cpu/oscd-two_stream/diffusion.ckpt \\
        --oscd-root ../shared/data/oscd
"""

import argparse
import ctypes
import gc
import inspect
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use('Agg')
import diffusers
import lightning
import torch
import torch.nn.functional as F
from common import benchmark_datamodule, machine
from diffusers import DDIMPipeline, DDPMScheduler, UNet2DModel
from diffusers.training_utils import EMAModel, compute_snr
from lightning.pytorch import Callback, Trainer, seed_everything
from speed_report import PARITY_GOAL, SPEEDUP_GOAL, markdown, notes, summary, table
from torch import Tensor
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

import torchgeo_specdm
from torchgeo_specdm.datamodules.registry import build_datamodule
from torchgeo_specdm.evaluation.judges import load_downstream, predict_labels
from torchgeo_specdm.generation.pipeline import SAMPLERS, make_scheduler, sample_seed
from torchgeo_specdm.metrics import (
    alignment_scores,
    class_histogram_tv,
    class_spectrum_sam,
)
from torchgeo_specdm.sample import file_sha256, generate
from torchgeo_specdm.tasks import LatentDiffusion, TwoStreamVAE
from torchgeo_specdm.tasks.latent_cache import LatentCache, random_dihedral
from torchgeo_specdm.tasks.utils import timed_trainer

RESULTS = Path(__file__).parent / 'results'

#: Steps of the short DDPM runs that time a DDPM step beside the fast samplers.
PROBE_STEPS = 25

#: The U-Net of benchmarks/configs/diffusion.yaml, the size the results are about.
DEFAULT_UNET = {'block_out_channels': (64, 128, 128), 'layers_per_block': 1}


@dataclass(frozen=True)
class Settings:
    """Sizes of one benchmark run."""

    pairs: int = 16
    repeats: int = 3
    fast_samplers: tuple[tuple[str, int], ...] = (
        ('dpmpp', 10),
        ('dpmpp', 15),
        ('dpmpp', 20),
        ('dpmpp', 25),
        ('ddim', 50),
    )
    overhead_batch: int = 16
    overhead_steps: int = 25
    overhead_repeats: int = 5
    train_scenes: int = 256
    train_warmup: int = 3
    train_steps: int = 16
    train_repeats: int = 3
    memory_counts: tuple[int, int, int] = (64, 256, 1024)
    memory_steps: int = 25
    shard_count: int = 16
    shard_steps: int = 10
    scaling_repeats: int = 7
    configs: tuple[tuple[int, int], ...] = (
        (64, 13),
        (128, 13),
        (256, 13),
        (64, 4),
        (64, 204),
    )


QUICK = Settings(
    train_steps=12,
    memory_counts=(64, 512, 1024),
    memory_steps=2,
    shard_count=8,
    shard_steps=2,
)


# Measuring

#: The clock of every timing: CPU seconds of this process (set by ``--clock``).
CLOCK: dict[str, Any] = {'name': 'cpu', 'now': time.process_time}


def now() -> float:
    """The benchmark clock's reading, in seconds."""
    value: float = CLOCK['now']()
    return value


def timed(function: Callable[[], Any], repeats: int) -> list[float]:
    """Wall times of ``repeats`` calls.

    Args:
        function: the work.
        repeats: calls to time.

    Returns:
        the seconds of each call.
    """
    times = []
    for _ in range(repeats):
        start = now()
        function()
        times.append(now() - start)
    return times


def _status_kib(field: str, status: Path = Path('/proc/self/status')) -> int:
    for line in status.read_text().splitlines():
        if line.startswith(field + ':'):
            return int(line.split()[1])
    raise KeyError(field)


def peak_rss_increase_mib(function: Callable[[], Any]) -> float | None:
    """Peak resident memory a call adds to the process, in MiB.

    Frees what the allocator holds, resets the kernel's high-water mark
    (``/proc/self/clear_refs``), runs the call and reads ``VmHWM``.

    Args:
        function: the work.

    Returns:
        the increase, or ``None`` where the kernel does not allow the reset.
    """
    gc.collect()
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except OSError:
        pass
    before = _status_kib('VmRSS')
    try:
        Path('/proc/self/clear_refs').write_text('5')
    except OSError:
        function()
        return None
    function()
    return (_status_kib('VmHWM') - before) / 1024


#: GNU time, whose ``%M`` is the peak RSS of the command alone.
GNU_TIME = Path('/usr/bin/time')


def run_child(command: Sequence[str], log: Path, threads: int) -> dict[str, Any]:
    """Run a command in a fresh process; its times and peak RSS.

    The peak RSS comes from GNU time's ``%M`` where it is installed, else from
    the child's ``VmHWM`` read every 0.1 s. (``wait4``'s ``ru_maxrss`` would be
    wrong: a child forked from this large process starts at this process's size.)

    Args:
        command: the command.
        log: file for its output.
        threads: OMP_NUM_THREADS of the child.

    Returns:
        wall and CPU seconds, the time on the benchmark clock and the peak RSS
        (MiB) of the command.

    Raises:
        RuntimeError: if the command fails.
    """
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    log.parent.mkdir(parents=True, exist_ok=True)
    rss_file = log.with_suffix('.rss')
    gnu_time = GNU_TIME.exists()
    if gnu_time:
        command = [str(GNU_TIME), '-f', '%M', '-o', str(rss_file), *command]
    peak_kib = 0
    with open(log, 'w') as out:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if not gnu_time:
                try:
                    proc = Path(f'/proc/{child.pid}/status')
                    peak_kib = max(peak_kib, _status_kib('VmHWM', proc))
                except (OSError, KeyError):
                    pass
            time.sleep(0.1)
        wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f'{" ".join(command)} failed; see {log}')
    if gnu_time:
        peak_kib = int(rss_file.read_text().split()[-1])
    cpu = usage.ru_utime + usage.ru_stime
    return {
        'seconds': cpu if CLOCK['name'] == 'cpu' else wall,
        'wall_seconds': wall,
        'cpu_seconds': cpu,
        'peak_rss_mib': peak_kib / 1024,
        'rss_source': 'GNU time %M' if gnu_time else 'VmHWM polled every 0.1 s',
    }


def specdm_command() -> list[str]:
    """The ``specdm`` command of this environment."""
    script = Path(sys.executable).with_name('specdm')
    if script.exists():
        return [str(script)]
    return [sys.executable, '-c', 'from torchgeo_specdm.cli import main; main()']


def provenance() -> dict[str, Any]:
    """The commit of the imported package and its files that differ from it."""
    root = Path(torchgeo_specdm.__file__).resolve().parents[1]

    def git(*args: str) -> str:
        return subprocess.run(
            ['git', *args], check=False, cwd=root, capture_output=True, text=True
        ).stdout.strip()

    return {
        'commit': git('rev-parse', 'HEAD'),
        'modified_package_files': git(
            'status', '--porcelain', '--', 'torchgeo_specdm'
        ).splitlines(),
    }


def _stack(dataset: Any, limit: int) -> tuple[Tensor, Tensor]:
    samples = [dataset[i] for i in range(min(limit, len(dataset)))]
    return (
        torch.stack([s['image'] for s in samples]),
        torch.stack([s['mask'] for s in samples]),
    )


# 0. A tiny model for --quick


def train_quick_model(
    work: Path, vae_minutes: float, diffusion_minutes: float
) -> tuple[Path, dict[str, Any]]:
    """Train a tiny two-stream VAE and latent diffusion model on the simulator.

    Args:
        work: folder for the checkpoints.
        vae_minutes: VAE training budget.
        diffusion_minutes: diffusion training budget.

    Returns:
        the diffusion checkpoint and what was trained.
    """
    seed_everything(0)

    def data() -> Any:
        return build_datamodule(
            'simulated-segmentation', num_train=256, num_val=16, batch_size=16
        )

    def trainer(minutes: float) -> Trainer:
        return timed_trainer(
            minutes, work, limit_val_batches=0, enable_progress_bar=False
        )

    vae = TwoStreamVAE(
        base_channels=16,
        mask_base_channels=8,
        mask_latent_channels=4,
        lr=2e-3,
        patience=1000,
        num_plots=0,
    )
    vae_trainer = trainer(vae_minutes)
    vae_trainer.fit(vae, datamodule=data())
    vae_path = work / 'vae.ckpt'
    vae_trainer.save_checkpoint(vae_path)
    diffusion = LatentDiffusion(
        vae_checkpoint=str(vae_path),
        block_out_channels=(32, 64),
        lr=1e-3,
        patience=1000,
        sample_every_n_epochs=10**6,
    )
    diffusion_trainer = trainer(diffusion_minutes)
    diffusion_trainer.fit(diffusion, datamodule=data())
    path = work / 'diffusion.ckpt'
    diffusion_trainer.save_checkpoint(path)
    return path, {
        'vae': 'TwoStreamVAE base_channels=16, mask_base_channels=8',
        'vae_steps': vae_trainer.global_step,
        'vae_minutes': vae_minutes,
        'unet_block_out_channels': [32, 64],
        'diffusion_steps': diffusion_trainer.global_step,
        'diffusion_minutes': diffusion_minutes,
    }


# 1. Sampler parity


def _label(sampler: str, steps: int) -> str:
    return f'{sampler}-{steps}'


def sampler_parity(
    checkpoint: Path,
    dataset: str,
    root: str | None,
    downstream_path: str | None,
    settings: Settings,
) -> dict[str, Any]:
    """Fast samplers against DDPM-1000 on one model: time per pair and fidelity.

    Args:
        checkpoint: a LatentDiffusion checkpoint.
        dataset: the dataset family it was trained on.
        root: its root (real datasets).
        downstream_path: a real-trained downstream checkpoint, for alignment.
        settings: run sizes.

    Returns:
        one row per sampler and the reference's noise level.
    """
    model = LatentDiffusion.from_checkpoint(checkpoint)
    classes = model.vae.autoencoder.num_classes
    datamodule = benchmark_datamodule(dataset, root)
    datamodule.setup('fit')
    real_image, real_mask = _stack(datamodule.val_dataset, 64)
    change = model.vae.hparams['num_images'] == 2
    downstream = load_downstream(downstream_path, change) if downstream_path else None
    pipelines = {name: model.pipeline(name) for name in SAMPLERS}  # type: ignore[arg-type]
    for pipeline in pipelines.values():
        pipeline.set_progress_bar_config(disable=True)
    pairs = settings.pairs

    def sample(sampler: str, steps: int, seed: int = 0) -> Any:
        return pipelines[sampler](
            num_samples=pairs, batch_size=pairs, seed=seed, num_inference_steps=steps
        )

    def first_timestep(sampler: str, steps: int) -> int:
        scheduler = make_scheduler(sampler, dict(model.noise_scheduler.config))
        scheduler.set_timesteps(steps)
        return int(scheduler.timesteps[0])

    def alignment(image: Tensor, mask: Tensor) -> Tensor:
        normalised = datamodule.aug({'image': image.clone(), 'mask': mask.clone()})
        predicted = predict_labels(downstream, normalised['image'])
        return alignment_scores(mask, predicted, classes)

    def fidelity(image: Tensor, mask: Tensor, aligned: bool = True) -> dict[str, float]:
        metrics = {
            'class_spectrum_sam_degrees': float(
                class_spectrum_sam(image, mask, real_image, real_mask, classes)
            ),
            'class_histogram_tv': float(class_histogram_tv(mask, real_mask, classes)),
        }
        if aligned and downstream is not None:
            metrics['alignment'] = float(alignment(image, mask).mean())
        return metrics

    for name in SAMPLERS:  # warm-up
        sample(name, 2)
    times: dict[str, list[float]] = {_label(*row): [] for row in settings.fast_samplers}
    outputs: dict[str, Any] = {}
    # A DDPM step costs the same at any step count: short DDPM runs interleaved
    # with the fast samplers time it under the same load, for the speed-ups.
    probe = ('ddpm', PROBE_STEPS)
    probe_times, decode_times = [], []
    for repeat in range(settings.repeats):
        order = [*settings.fast_samplers, probe][:: 1 if repeat % 2 == 0 else -1]
        for sampler, steps in order:
            start = now()
            output = sample(sampler, steps)
            elapsed = now() - start
            if (sampler, steps) == probe:
                probe_times.append(elapsed)
            else:
                outputs[_label(sampler, steps)] = output
                times[_label(sampler, steps)].append(elapsed)
        latents = output.latents
        start = now()
        pipelines['ddpm'].decode(latents)
        decode_times.append(now() - start)
    decode = statistics.median(decode_times)
    step_seconds = (statistics.median(probe_times) - decode) / PROBE_STEPS
    estimate = decode + 1000 * step_seconds
    start = now()
    reference = sample('ddpm', 1000)
    times['ddpm-1000'] = [now() - start]
    outputs['ddpm-1000'] = reference

    # Noise level of the reference's metrics: bootstrap over its pairs (alignment
    # is a mean over pairs: its standard error).
    generator = torch.Generator().manual_seed(0)
    boot: dict[str, list[float]] = {}
    for _ in range(100):
        index = torch.randint(0, pairs, (pairs,), generator=generator)
        metrics = fidelity(reference.image[index], reference.mask[index], False)
        for key, value in metrics.items():
            boot.setdefault(key, []).append(value)
    noise = {key: statistics.stdev(values) for key, values in boot.items()}
    if downstream is not None:
        scores = alignment(reference.image, reference.mask)
        noise['alignment'] = float(scores.std() / pairs**0.5)

    reference_metrics = fidelity(reference.image, reference.mask)
    # The noise floor: DDPM-1000 against itself with other seeds.
    other = sample('ddpm', 1000, seed=1)
    other_metrics = fidelity(other.image, other.mask)
    floor = {
        key: abs(value - reference_metrics[key]) / abs(reference_metrics[key])
        for key, value in other_metrics.items()
    }
    direct = times['ddpm-1000'][0]
    rows = []
    for sampler, steps in [*settings.fast_samplers, ('ddpm', 1000)]:
        label = _label(sampler, steps)
        seconds = statistics.median(times[label])
        metrics = fidelity(outputs[label].image, outputs[label].mask)
        difference = {
            key: abs(value - reference_metrics[key]) / abs(reference_metrics[key])
            for key, value in metrics.items()
        }
        reference = direct if sampler == 'ddpm' else estimate
        speedup = reference / seconds
        rows.append(
            {
                'sampler': sampler,
                'steps': steps,
                'label': label,
                'first_timestep': first_timestep(sampler, steps),
                'repeats': len(times[label]),
                'seconds_per_pair': seconds / pairs,
                'denoise_seconds_per_pair': (seconds - decode) / pairs,
                'speedup_vs_ddpm_1000': speedup,
                'denoise_speedup_vs_ddpm_1000': (reference - decode)
                / (seconds - decode),
                'speedup_vs_ddpm_1000_single_run': direct / seconds,
                'metrics': metrics,
                'relative_difference': difference,
                'parity': max(difference.values()) <= PARITY_GOAL,
                'fast_enough': speedup >= SPEEDUP_GOAL,
            }
        )
    return {
        'checkpoint': os.fspath(checkpoint),
        'dataset': dataset,
        'pairs': pairs,
        'batch_size': pairs,
        'latent_shape': list(model.latent_shape()),
        'unet_block_out_channels': list(model.hparams['block_out_channels']),
        'prediction_type': model.hparams['prediction_type'],
        'beta_schedule': model.hparams['beta_schedule'],
        'num_real': len(real_image),
        'decode_seconds_per_pair': decode / pairs,
        'ddpm_step_seconds_per_batch': step_seconds,
        'ddpm_1000_seconds_per_pair_interleaved': estimate / pairs,
        'ddpm_1000_seconds_per_pair_single_run': direct / pairs,
        'speedup_reference': f'DDPM-1000 time = decode + 1000 x the DDPM step time of '
        f'{PROBE_STEPS}-step DDPM runs interleaved with the fast samplers; the single '
        '1000-step run (which gives the samples) is timed too',
        'decode_in_unet_steps': decode / step_seconds,
        'reference_metrics': reference_metrics,
        'reference_bootstrap_se': noise,
        'reference_seed_1_metrics': other_metrics,
        'noise_floor': floor,
        'last_training_beta': float(model.noise_scheduler.betas[-1]),
        'alignment': 'measured'
        if downstream is not None
        else 'not measured: no '
        'real-trained downstream model given (--downstream / --oscd-downstream)',
        'rows': rows,
    }


def recommend(parity: dict[str, Any]) -> dict[str, Any]:
    """The fastest fast sampler that meets parity (and the speed goal if one does).

    Args:
        parity: the result of :func:`sampler_parity`.

    Returns:
        the row's label and why.
    """
    rows = [row for row in parity['rows'] if row['sampler'] != 'ddpm']
    both = [row for row in rows if row['parity'] and row['fast_enough']]
    matching = both or [row for row in rows if row['parity']]
    if not matching:
        return {'label': None, 'reason': 'no fast sampler meets parity'}
    best = min(matching, key=lambda row: row['seconds_per_pair'])
    reason = 'meets parity and the speed goal' if both else 'meets parity only'
    return {'label': best['label'], 'reason': reason}


# 2. Pipeline overhead


def pipeline_overhead(model: LatentDiffusion, settings: Settings) -> dict[str, Any]:
    """SpecDMPipeline's loop against diffusers' DDIMPipeline on the same U-Net.

    Both start from the same per-sample noise and stop before decoding (the VAE
    decode is excluded on our side; DDIMPipeline's clamp to [0, 1] is kept on
    theirs), so the outputs are compared too.

    Args:
        model: the task whose U-Net both drive.
        settings: run sizes.

    Returns:
        times, the ratio and whether the outputs agree.
    """
    ours = model.pipeline('ddim')
    ours.set_progress_bar_config(disable=True)
    peer = DDIMPipeline(
        unet=model.unet,
        scheduler=make_scheduler('ddim', dict(model.noise_scheduler.config)),
    )
    peer.set_progress_bar_config(disable=True)
    batch, steps = settings.overhead_batch, settings.overhead_steps

    def run_ours(count: int = steps) -> Tensor:
        output = ours(
            num_samples=batch,
            batch_size=batch,
            seed=0,
            num_inference_steps=count,
            output_type='latent',
        )
        return (output.latents / 2 + 0.5).clamp(0, 1)

    def run_peer(count: int = steps) -> Tensor:
        generators = [
            torch.Generator().manual_seed(sample_seed(0, index))
            for index in range(batch)
        ]
        output = peer(
            batch_size=batch,
            generator=generators,
            num_inference_steps=count,
            eta=0.0,
            output_type='pt',
        )
        return output.images

    with torch.no_grad():
        run_ours(2)
        run_peer(2)
        ours_times, peer_times = [], []
        for repeat in range(settings.overhead_repeats):
            pair = [(run_ours, ours_times), (run_peer, peer_times)]
            for function, store in pair[:: 1 if repeat % 2 == 0 else -1]:
                store.extend(timed(function, 1))
        difference = float((run_ours() - run_peer()).abs().max())
    ours_median, peer_median = (
        statistics.median(ours_times),
        statistics.median(peer_times),
    )
    ratios = [peer / ours for ours, peer in zip(ours_times, peer_times)]
    return {
        'peer': 'diffusers.DDIMPipeline',
        'scheduler': 'DDIMScheduler (eta=0) from the training config',
        'batch_size': batch,
        'steps': steps,
        'latent_shape': list(model.latent_shape()),
        'unet_block_out_channels': list(model.hparams['block_out_channels']),
        'vae_decode': 'excluded on both sides',
        'repeats': settings.overhead_repeats,
        'ours_seconds': ours_median,
        'peer_seconds': peer_median,
        'ours_ms_per_step': 1000 * ours_median / steps,
        'peer_ms_per_step': 1000 * peer_median / steps,
        'ratio': statistics.median(ratios),
        'ratio_each_repeat': ratios,
        'max_abs_output_difference': difference,
    }


# 3. Training throughput


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


# 4. Memory and scaling


def sample_memory(
    checkpoint: Path, work: Path, settings: Settings, threads: int
) -> dict[str, Any]:
    """Peak RSS and wall time of fresh ``specdm sample`` processes against N.

    Args:
        checkpoint: a LatentDiffusion checkpoint.
        work: folder for the generated datasets.
        settings: run sizes.
        threads: threads of each process.

    Returns:
        one run per N, the RSS ratio and the linearity of the time per pair.
    """
    runs = []
    for count in settings.memory_counts:
        out = work / 'memory' / f'n{count}'
        shutil.rmtree(out, ignore_errors=True)
        command = [
            *specdm_command(),
            'sample',
            '--checkpoint',
            os.fspath(checkpoint),
            '--num-samples',
            str(count),
            '--out',
            os.fspath(out),
            '--steps',
            str(settings.memory_steps),
            '--batch-size',
            '16',
        ]
        run = run_child(command, work / 'memory' / f'n{count}.log', threads)
        runs.append(
            {'num_samples': count, **run, 'seconds_per_pair': run['seconds'] / count}
        )
        shutil.rmtree(out, ignore_errors=True)
    counts = [run['num_samples'] for run in runs]
    seconds = [run['seconds'] for run in runs]
    slopes = [
        (seconds[i + 1] - seconds[i]) / (counts[i + 1] - counts[i]) for i in (0, 1)
    ]
    return {
        'command': f'specdm sample --steps {settings.memory_steps} --batch-size 16 (sampler dpmpp), one fresh '
        'process per N',
        'runs': runs,
        'rss_ratio': runs[-1]['peak_rss_mib'] / runs[0]['peak_rss_mib'],
        'marginal_seconds_per_pair': slopes,
        'linearity': slopes[1] / slopes[0],
        'fixed_seconds': seconds[0] - slopes[0] * counts[0],
    }


def _one_pair(size: int, bands: int, repeats: int) -> dict[str, Any]:
    """Time and memory of one pair of an untrained model of the default sizes."""
    torch.manual_seed(0)
    vae = TwoStreamVAE(
        in_channels=bands, num_classes=8, num_images=1, mask_latent_channels=4
    ).eval()
    task = LatentDiffusion(
        vae=vae, latent_size=[size // 4, size // 4], **DEFAULT_UNET
    ).eval()
    pipeline = task.pipeline('dpmpp')
    pipeline.set_progress_bar_config(disable=True)
    latent = torch.randn(1, *task.latent_shape())
    with torch.no_grad():
        task.unet(latent, 500)
        pipeline.decode(latent)
        unet = statistics.median(timed(lambda: task.unet(latent, 500), repeats))
        decode = statistics.median(timed(lambda: pipeline.decode(latent), repeats))
    memory = peak_rss_increase_mib(
        lambda: pipeline(num_samples=1, num_inference_steps=2)
    )
    return {
        'size': size,
        'bands': bands,
        'latent_shape': list(task.latent_shape()),
        'unet_step_seconds': unet,
        'decode_seconds': decode,
        'pair_seconds_25_steps': 25 * unet + decode,
        'sampling_peak_rss_increase_mib': memory,
    }


def size_and_band_scaling(settings: Settings) -> dict[str, Any]:
    """Time and memory of one pair against image size and band count.

    Untrained two-stream VAEs (vae.yaml sizes) and U-Nets (diffusion.yaml sizes)
    built by the package, batch 1.

    Args:
        settings: run sizes.

    Returns:
        one row per (size, bands), with ratios to the first row.
    """
    rows = [
        _one_pair(size, bands, settings.scaling_repeats)
        for size, bands in settings.configs
    ]
    base = rows[0]
    for row in rows:
        row['time_ratio'] = row['pair_seconds_25_steps'] / base['pair_seconds_25_steps']
        row['pixel_ratio'] = (row['size'] / base['size']) ** 2
        memory, base_memory = (
            row['sampling_peak_rss_increase_mib'],
            base['sampling_peak_rss_increase_mib'],
        )
        if memory is not None and base_memory:
            row['memory_ratio'] = memory / base_memory
    return {
        'models': 'untrained TwoStreamVAE (base 32, 4 + 4 latent channels, f=4) and '
        'U-Net (64, 128, 128), batch 1; time = 25 U-Net steps + VAE decode; memory '
        '= peak RSS added by a 2-step sampling call',
        'rows': rows,
    }


# 5. Sharded generation


def sharded_generation(
    checkpoint: Path, work: Path, settings: Settings, threads: int
) -> dict[str, Any]:
    """``specdm sample --devices 2`` against ``--devices 1``, file by file.

    Args:
        checkpoint: a LatentDiffusion checkpoint.
        work: folder for the generated datasets.
        settings: run sizes.
        threads: threads of each process.

    Returns:
        the SHA-256 of every file and whether the runs agree.
    """
    digests, runs = {}, {}
    for devices in (1, 2):
        out = work / 'sharded' / f'devices{devices}'
        shutil.rmtree(out, ignore_errors=True)
        command = [
            *specdm_command(),
            'sample',
            '--checkpoint',
            os.fspath(checkpoint),
            '--num-samples',
            str(settings.shard_count),
            '--out',
            os.fspath(out),
            '--steps',
            str(settings.shard_steps),
            '--batch-size',
            '4',
            '--seed',
            '7',
            '--devices',
            str(devices),
        ]
        runs[devices] = run_child(command, out.with_suffix('.log'), threads)
        digests[devices] = {
            str(path.relative_to(out)): file_sha256(path)
            for path in sorted(out.rglob('*'))
            if path.is_file()
        }
        manifest = json.loads((out / 'manifest.json').read_text())
        ids = [sample['id'] for sample in manifest['samples']]
        runs[devices]['ids_complete'] = ids == list(range(settings.shard_count))
    differing = sorted(
        name
        for name in set(digests[1]) | set(digests[2])
        if digests[1].get(name) != digests[2].get(name)
    )
    return {
        'command': f'specdm sample --num-samples {settings.shard_count} --steps {settings.shard_steps} --batch-size 4 --seed 7 '
        '--devices 1|2',
        'files': len(digests[1]),
        'identical': not differing and bool(digests[1]),
        'differing_files': differing,
        'no_duplicates_or_gaps': all(run['ids_complete'] for run in runs.values()),
        'wall_seconds': {
            f'devices_{d}': run['wall_seconds'] for d, run in runs.items()
        },
        'sha256': digests[1],
    }


# 6. GPU path


def gpu_options() -> dict[str, Any]:
    """Which GPU-path options the task and the trainer offer."""
    parameters = inspect.signature(LatentDiffusion.__init__).parameters
    return {
        'channels_last': 'channels_last' in parameters,
        'compile_unet': 'compile_unet' in parameters,
        'bf16_mixed': 'Trainer option: --trainer.precision bf16-mixed',
        'gpu_measurements': 'not measured: no GPU was lent to this session '
        '(training steps/s, pairs/s at 128 px and OSCD size, GPU memory, '
        'torch.compile speed-up)',
    }


def default_label() -> str:
    """The label of ``specdm sample``'s default sampler, e.g. 'dpmpp-15'."""
    parameters = inspect.signature(generate).parameters
    return _label(parameters['sampler'].default, parameters['steps'].default)


def rerender(path: Path) -> None:
    """Rebuild a results file's table and report for the current default sampler.

    Args:
        path: the JSON an earlier run wrote.
    """
    result = json.loads(path.read_text())
    label = default_label()
    result['rerendered'] = {
        'commit': provenance()['commit'],
        'measured_default': result['rerendered']['measured_default']
        if 'rerendered' in result
        else result['default_sampler'],
    }
    result['default_sampler'] = label
    result['summary'] = summary(result)
    path.write_text(json.dumps(result, indent=2) + '\n')
    path.with_suffix('.md').write_text(markdown(result))
    print('\n'.join(table(result['summary'])))
    print(f'rewrote {path} and {path.with_suffix(".md")} for the default {label}')


def main() -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument('--quick', action='store_true', help='small sizes (< 10 min)')
    parser.add_argument('--checkpoint', help='LatentDiffusion .ckpt on the simulator')
    parser.add_argument(
        '--dataset',
        default='simulated-segmentation',
        choices=['simulated-segmentation', 'simulated-change'],
        help='simulator family of --checkpoint',
    )
    parser.add_argument('--downstream', help='real-trained model for alignment')
    parser.add_argument('--oscd-checkpoint', help='LatentDiffusion .ckpt on OSCD')
    parser.add_argument('--oscd-root', help='OSCD root')
    parser.add_argument('--oscd-downstream', help='real-trained OSCD change model')
    parser.add_argument('--threads', type=int, default=1, help='torch threads')
    parser.add_argument(
        '--clock',
        choices=['cpu', 'wall'],
        default='cpu',
        help='time CPU seconds of the benchmark process and its children (other '
        'jobs on a shared machine do not inflate them; with one thread they equal '
        'wall time on an idle machine) or wall seconds',
    )
    parser.add_argument('--vae-minutes', type=float, default=0.6)
    parser.add_argument('--diffusion-minutes', type=float, default=1.2)
    parser.add_argument('--work-dir', default='outputs/speed')
    parser.add_argument('--name', default='speed', help='results file stem')
    parser.add_argument(
        '--rerender',
        metavar='JSON',
        help='rebuild the table and report of an earlier results JSON for the '
        "current default sampler (measures nothing; the run's samplers must "
        'include it)',
    )
    options = parser.parse_args()
    if options.rerender:
        rerender(Path(options.rerender))
        return
    if options.checkpoint is None and not options.quick:
        parser.error('give --checkpoint, or --quick to train a tiny model first')
    if options.oscd_checkpoint and not options.oscd_root:
        parser.error('--oscd-checkpoint needs --oscd-root')
    started = time.perf_counter()
    torch.set_num_threads(options.threads)
    if options.clock == 'wall':
        CLOCK.update(name='wall', now=time.perf_counter)
    seed_everything(0)
    settings = QUICK if options.quick else Settings()
    work = Path(options.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        'command': 'python ' + ' '.join(sys.argv),
        'machine': machine(),
        'threads': torch.get_num_threads(),
        'clock': CLOCK['name'],
        'torch': torch.__version__,
        'diffusers': diffusers.__version__,
        'lightning': lightning.__version__,
        'code': provenance(),
        'quick': options.quick,
        'default_sampler': default_label(),
        'section_seconds': {},
    }

    partial = work / f'{options.name}.partial.json'

    def section(name: str, function: Callable[[], Any]) -> Any:
        print(f'[speed] {name} ...', flush=True)
        start = time.perf_counter()
        value = function()
        result['section_seconds'][name] = time.perf_counter() - start
        # What finished so far survives a failure in a later section.
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(
            json.dumps(result | {name: value}, indent=2, default=str) + '\n'
        )
        return value

    if options.checkpoint:
        checkpoint = Path(options.checkpoint)
    else:
        checkpoint, result['quick_model'] = section(
            'quick model',
            lambda: train_quick_model(
                work / 'quick_model', options.vae_minutes, options.diffusion_minutes
            ),
        )
    result['parity'] = {}
    jobs = [(options.dataset, checkpoint, None, options.downstream)]
    if options.oscd_checkpoint:
        jobs.append(
            (
                'oscd',
                Path(options.oscd_checkpoint),
                options.oscd_root,
                options.oscd_downstream,
            )
        )
    for dataset, path, root, downstream in jobs:
        parity = section(
            f'parity {dataset}',
            lambda job=(path, dataset, root, downstream): sampler_parity(
                *job, settings
            ),
        )
        parity['recommended'] = recommend(parity)
        result['parity'][dataset] = parity
    if not options.oscd_checkpoint:
        result['parity_oscd'] = 'not measured: no --oscd-checkpoint and --oscd-root'

    trained = LatentDiffusion.from_checkpoint(checkpoint)
    if options.checkpoint:
        model = trained
    else:
        # The tiny U-Net trained for parity is not the size that matters for
        # throughput: time the diffusion.yaml U-Net (untrained) on the same VAE.
        model = LatentDiffusion(
            vae=trained.vae,
            latent_size=list(trained.latent_shape()[1:]),
            **DEFAULT_UNET,
        ).eval()
    result['pipeline_overhead'] = section(
        'pipeline overhead', lambda: pipeline_overhead(model, settings)
    )
    result['training'] = section(
        'training throughput',
        lambda: training_throughput(
            model, options.dataset, work / 'training', settings
        ),
    )
    result['memory'] = section(
        'sample memory',
        lambda: sample_memory(checkpoint, work, settings, options.threads),
    )
    result['scaling'] = section(
        'size and bands', lambda: size_and_band_scaling(settings)
    )
    result['sharded'] = section(
        'sharded generation',
        lambda: sharded_generation(checkpoint, work, settings, options.threads),
    )
    result['gpu_options'] = gpu_options()
    result['summary'] = summary(result)
    result['wall_seconds'] = time.perf_counter() - started
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f'{options.name}.json').write_text(json.dumps(result, indent=2) + '\n')
    (RESULTS / f'{options.name}.md').write_text(markdown(result))
    print()
    print('\n'.join(table(result['summary'])))
    print()
    print('\n'.join(notes(result)))
    print(
        f'\nwall time {result["wall_seconds"] / 60:.1f} min; wrote '
        f'{RESULTS / options.name}.json and .md'
    )


if __name__ == '__main__':
    main()
