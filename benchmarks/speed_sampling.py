"""Sampling jobs of speed.py: the --quick model, sampler parity, pipeline overhead."""

import os
import statistics
from pathlib import Path
from typing import Any

import torch
from common import benchmark_datamodule
from diffusers import DDIMPipeline
from lightning.pytorch import Trainer, seed_everything
from speed_measure import Settings, now, timed
from speed_report import PARITY_GOAL, SPEEDUP_GOAL
from torch import Tensor

from torchgeo_specdm.datamodules.registry import build_datamodule
from torchgeo_specdm.evaluation.judges import load_downstream, predict_labels
from torchgeo_specdm.generation.pipeline import (
    SAMPLERS,
    SpecDMPipelineOutput,
    make_scheduler,
    sample_seed,
)
from torchgeo_specdm.metrics import (
    alignment_scores,
    class_histogram_tv,
    class_spectrum_sam,
)
from torchgeo_specdm.tasks import LatentDiffusion, TwoStreamVAE
from torchgeo_specdm.tasks.utils import timed_trainer

#: Steps of the short DDPM runs that time a DDPM step beside the fast samplers.
PROBE_STEPS = 25


def _stack(dataset: Any, limit: int) -> tuple[Tensor, Tensor]:
    samples = [dataset[i] for i in range(min(limit, len(dataset)))]
    return (
        torch.stack([s['image'] for s in samples]),
        torch.stack([s['mask'] for s in samples]),
    )


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


def sampler_label(sampler: str, steps: int) -> str:
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
    times: dict[str, list[float]] = {
        sampler_label(*row): [] for row in settings.fast_samplers
    }
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
                outputs[sampler_label(sampler, steps)] = output
                times[sampler_label(sampler, steps)].append(elapsed)
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
        label = sampler_label(sampler, steps)
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
    # diffusers' type stubs name its dummy class, not the pipeline
    peer: Any = DDIMPipeline(
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
        assert isinstance(output, SpecDMPipelineOutput)
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
        ours_times: list[float] = []
        peer_times: list[float] = []
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
