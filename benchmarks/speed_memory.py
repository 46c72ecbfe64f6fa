"""Memory jobs of speed.py: `specdm sample` against N, size and bands, sharding."""

import json
import os
import shutil
import statistics
from pathlib import Path
from typing import Any

import torch
from speed_measure import (
    DEFAULT_UNET,
    Settings,
    peak_rss_increase_mib,
    run_child,
    specdm_command,
    timed,
)

from torchgeo_specdm.sample import file_sha256
from torchgeo_specdm.tasks import LatentDiffusion, TwoStreamVAE


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
