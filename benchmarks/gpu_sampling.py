"""Sampling figures of benchmarks/gpu.py: the pipeline alone and `specdm sample` end to end."""

import hashlib
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from gpu_measure import allocated_memory, peak_memory, reset_peak_memory, synchronize

from torchgeo_specdm.tasks import LatentDiffusion


def pipeline_sweep(
    task: LatentDiffusion,
    device: torch.device,
    sizes: tuple[int, ...],
    batch_sizes: tuple[int, ...],
    steps: int,
    repeats: int,
) -> list[dict[str, Any]]:
    """Pairs per second and peak memory of the default sampler, per image size and batch.

    The model is fully convolutional, so one trained model samples every size: the
    U-Net's latent size is set to ``size / f``. Each configuration gets one warm-up
    batch, then ``repeats`` timed batches of new sample indices.
    """
    task.to(device).eval()
    pipeline = task.pipeline('dpmpp')
    pipeline.set_progress_bar_config(disable=True)
    factor = task.vae.autoencoder.downsampling_factor
    trained_size = task.unet.config['sample_size']
    rows = []
    for size in sizes:
        task.unet.register_to_config(sample_size=[size // factor] * 2)
        for batch in batch_sizes:
            row: dict[str, Any] = {
                'size': size,
                'batch_size': batch,
                'memory_before_bytes': allocated_memory(device),
            }
            try:
                reset_peak_memory(device)
                pipeline(
                    indices=list(range(batch)),
                    batch_size=batch,
                    num_inference_steps=steps,
                )
                seconds = []
                for repeat in range(1, repeats + 1):
                    indices = list(range(repeat * batch, (repeat + 1) * batch))
                    synchronize(device)
                    start = time.perf_counter()
                    pipeline(
                        indices=indices, batch_size=batch, num_inference_steps=steps
                    )
                    synchronize(device)
                    seconds.append(time.perf_counter() - start)
                median = statistics.median(seconds)
                row |= {
                    'seconds_per_batch': seconds,
                    'pairs_per_second': batch / median,
                    'peak_memory_bytes': peak_memory(device),
                }
            except torch.OutOfMemoryError as error:
                row['error'] = f'out of memory: {error}'.splitlines()[0]
            rows.append(row)
            print(f'sampling {size} px, batch {batch}: {row}', flush=True)
    task.unet.register_to_config(sample_size=trained_size)
    return rows


def _device_used(device: torch.device) -> int:
    free, total = torch.cuda.mem_get_info(device)
    return int(total - free)


def run_sample(
    checkpoint: Path, out: Path, num_samples: int, batch_size: int, steps: int
) -> dict[str, Any]:
    """One real `specdm sample` process: its wall time, peak RSS and device memory.

    The device memory is the card's used memory (all processes), polled every
    50 ms while the child runs, less what was in use before it started.
    """
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    command = [
        sys.executable,
        '-m',
        'torchgeo_specdm.cli',
        'sample',
        '--checkpoint',
        os.fspath(checkpoint),
        '--num-samples',
        str(num_samples),
        '--out',
        os.fspath(out),
        '--batch-size',
        str(batch_size),
        '--steps',
        str(steps),
        '--seed',
        '0',
        '--accelerator',
        'gpu' if device.type == 'cuda' else 'cpu',
    ]
    peak = {'used': 0}
    done = threading.Event()
    baseline = 0
    if device.type == 'cuda':
        torch.cuda.empty_cache()
        baseline = _device_used(device)

        def poll() -> None:
            while not done.is_set():
                peak['used'] = max(peak['used'], _device_used(device))
                time.sleep(0.05)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
    log = out.with_suffix('.log')
    start = time.perf_counter()
    with open(log, 'w') as stream:
        child = subprocess.Popen(
            command, env=os.environ.copy(), stdout=stream, stderr=subprocess.STDOUT
        )
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    done.set()
    if child.returncode:
        tail = log.read_text()[-2000:]
        raise RuntimeError(f'specdm sample exited with {child.returncode}:\n{tail}')
    return {
        'command': ' '.join(command),
        'num_samples': num_samples,
        'wall_seconds': seconds,
        'peak_rss_bytes': usage.ru_maxrss * 1024,
        'device_memory_peak_bytes': (
            max(0, peak['used'] - baseline) if device.type == 'cuda' else None
        ),
        'bytes_written': sum(f.stat().st_size for f in out.rglob('*') if f.is_file()),
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compare_folders(first: Path, second: Path) -> dict[str, Any]:
    """How far apart the sample files of ``first`` are from the same files in ``second``.

    Returns:
        files compared, files byte-identical, the largest absolute difference of
        the image values and the share of mask pixels that differ.
    """
    files = sorted(p.relative_to(first) for p in first.rglob('*.tif'))
    identical, largest, differing, pixels = 0, 0.0, 0, 0
    for relative in files:
        a, b = first / relative, second / relative
        if _sha256(a) == _sha256(b):
            identical += 1
        with rasterio.open(a) as source_a, rasterio.open(b) as source_b:
            x, y = source_a.read(), source_b.read()
        if relative.parts[0] == 'masks':
            differing += int(np.count_nonzero(x != y))
            pixels += x.size
        else:
            gap = np.abs(x.astype(np.float64) - y.astype(np.float64))
            largest = max(largest, float(gap.max()))
    return {
        'files': len(files),
        'identical_files': identical,
        'max_abs_difference': largest,
        'mask_pixels_differing_share': differing / pixels if pixels else None,
    }


def end_to_end(
    checkpoint: Path,
    work: Path,
    counts: tuple[int, int],
    batch_size: int,
    steps: int,
    pipeline_rate: float | None,
) -> dict[str, Any]:
    """The written-dataset rate of `specdm sample` against the pipeline's rate alone.

    Two processes write N1 and N2 pairs from the same seed. The marginal rate,
    (N2 - N1) / (t2 - t1), leaves out what both pay once (start-up, imports,
    loading the checkpoint). The N1 pairs both wrote are the same-seed rerun: sample
    i depends on (seed, i) only, and both runs denoise it in the same batch.
    """
    small, large = counts
    runs = [
        run_sample(checkpoint, work / f'sample_{n}', n, batch_size, steps)
        for n in (small, large)
    ]
    extra = runs[1]['wall_seconds'] - runs[0]['wall_seconds']
    marginal = (large - small) / extra if extra > 0 else None
    result: dict[str, Any] = {
        'batch_size': batch_size,
        'runs': runs,
        'marginal_pairs_per_second': marginal,
        'pipeline_pairs_per_second': pipeline_rate,
        'written_over_pipeline': (
            marginal / pipeline_rate if marginal and pipeline_rate else None
        ),
        'peak_rss_ratio_n2_over_n1': runs[1]['peak_rss_bytes']
        / runs[0]['peak_rss_bytes'],
    }
    memory = [run['device_memory_peak_bytes'] for run in runs]
    if all(memory):
        result['device_memory_ratio_n2_over_n1'] = memory[1] / memory[0]
    result['same_seed_twice'] = compare_folders(
        work / f'sample_{small}', work / f'sample_{large}'
    )
    return result
