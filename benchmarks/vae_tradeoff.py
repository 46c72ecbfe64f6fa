"""Latent size trade-off of the VAE: latent channels x downsampling factor.

Runs benchmarks/vae_reconstruction.py once per setting, each in its own process with
the same time budget, and tabulates reconstruction SAM, PSNR and mask mIoU on the
validation split. Writes benchmarks/results/vae_tradeoff_<dataset>.json and .md; each
setting's JSON and reconstruction PNG go to benchmarks/results/vae_tradeoff_<dataset>/.

Example:
    python benchmarks/vae_tradeoff.py --dataset salinas-a \\
        --root ../shared/data/hsi/salinas_a --minutes 4 --jobs 2
"""

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import VAE_DATASETS, machine

RESULTS = Path(__file__).parent / 'results'
SCRIPT = Path(__file__).parent / 'vae_reconstruction.py'


def run_setting(
    options: argparse.Namespace, channels: int, factor: int, folder: Path
) -> dict[str, Any]:
    """Train and score one setting in a fresh process.

    Args:
        options: the command-line options.
        channels: image latent channels.
        factor: downsampling factor.
        folder: where the setting's JSON and PNG go.

    Returns:
        the setting's result record.
    """
    name = f'vae_{options.dataset}_c{channels}_f{factor}'
    command = [sys.executable, str(SCRIPT), '--dataset', options.dataset]
    if options.root:
        command += ['--root', options.root]
    command += [
        '--minutes',
        str(options.minutes),
        '--image-latent-channels',
        str(channels),
        '--mask-latent-channels',
        str(options.mask_latent_channels),
        '--downsampling-factor',
        str(factor),
        '--sam-weight',
        str(options.sam_weight),
        '--threads',
        str(options.threads),
        '--name',
        name,
        '--out',
        str(folder),
        '--work-dir',
        options.work_dir,
    ]
    log = folder / f'{name}.log'
    environment = os.environ | {'OMP_NUM_THREADS': str(options.threads)}
    with open(log, 'w') as stream:
        subprocess.run(
            command,
            check=True,
            stdout=stream,
            stderr=subprocess.STDOUT,
            env=environment,
        )
    log.unlink()
    result: dict[str, Any] = json.loads((folder / f'{name}.json').read_text())
    return result


def main() -> None:
    """Run the grid and write the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument('--dataset', choices=VAE_DATASETS, required=True)
    parser.add_argument('--root', help='dataset root (OSCD, Salinas-A)')
    parser.add_argument('--minutes', type=float, default=4.0, help='budget per setting')
    parser.add_argument('--latent-channels', type=int, nargs='+', default=[4, 8, 16])
    parser.add_argument('--factors', type=int, nargs='+', default=[2, 4])
    parser.add_argument('--mask-latent-channels', type=int, default=4)
    parser.add_argument('--sam-weight', type=float, default=0.5)
    parser.add_argument(
        '--jobs', type=int, default=1, help='settings trained at the same time'
    )
    parser.add_argument('--threads', type=int, default=1, help='torch threads per job')
    parser.add_argument('--work-dir', default='outputs/vae_tradeoff')
    options = parser.parse_args()

    folder = RESULTS / f'vae_tradeoff_{options.dataset}'
    folder.mkdir(parents=True, exist_ok=True)
    grid = list(itertools.product(options.latent_channels, options.factors))
    start = time.perf_counter()
    with ThreadPoolExecutor(options.jobs) as pool:
        results = list(
            pool.map(lambda cf: run_setting(options, cf[0], cf[1], folder), grid)
        )
    minutes = (time.perf_counter() - start) / 60
    rows = [
        {
            'image_latent_channels': channels,
            'downsampling_factor': factor,
            'steps': result['steps'],
            'train_minutes': result['train_minutes'],
            'val_sam_degrees': result['val_sam_degrees'],
            'val_psnr': result['val_psnr'],
            'val_mask_miou': result['val_mask_miou'],
            'figure': f'{folder.name}/{result["figure"]}',
        }
        for (channels, factor), result in zip(grid, results)
    ]
    best = min(rows, key=lambda row: (row['val_sam_degrees'], -row['val_mask_miou']))
    lines = [
        f'# VAE latent trade-off: {options.dataset}',
        '',
        f'Command: `python {" ".join(sys.argv)}`',
        '',
        (
            f'Machine: {machine()}; {options.jobs} setting(s) at a time, '
            f'{options.threads} torch thread(s) each; {options.minutes} min of training '
            f'per setting; wall time {minutes:.1f} min. Mask latent channels: '
            f'{options.mask_latent_channels}; SAM loss weight {options.sam_weight}. '
            'Scores on the validation split.'
        ),
        '',
        '| image latent channels | f | steps | SAM (deg) | PSNR (dB) | mask mIoU |',
        '| --- | --- | --- | --- | --- | --- |',
    ]
    lines += [
        f'| {row["image_latent_channels"]} | {row["downsampling_factor"]} | '
        f'{row["steps"]} | {row["val_sam_degrees"]:.2f} | {row["val_psnr"]:.1f} | '
        f'{row["val_mask_miou"]:.3f} |'
        for row in rows
    ]
    lines += [
        '',
        (
            f'Lowest SAM: {best["image_latent_channels"]} channels at f={best["downsampling_factor"]} '
            f'(SAM {best["val_sam_degrees"]:.2f} deg, mask mIoU {best["val_mask_miou"]:.3f}).'
        ),
    ]
    record = {
        'command': 'python ' + ' '.join(sys.argv),
        'machine': machine(),
        'minutes_per_setting': options.minutes,
        'jobs': options.jobs,
        'threads': options.threads,
        'wall_minutes': minutes,
        'rows': rows,
        'best': best,
    }
    (RESULTS / f'vae_tradeoff_{options.dataset}.json').write_text(
        json.dumps(record, indent=2) + '\n'
    )
    (RESULTS / f'vae_tradeoff_{options.dataset}.md').write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
