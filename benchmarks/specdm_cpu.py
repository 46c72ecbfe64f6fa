"""SpecDM end to end on CPU: VAE, latent diffusion, sampling, and fidelity against real data.

Trains (or reuses) a two-stream VAE, trains the latent diffusion model on its cached
latents, samples a generated dataset with `specdm sample`'s code path, reads it back
through SyntheticDataset and compares it with the real validation data. Writes
benchmarks/results/specdm_<dataset>_<architecture>.json and a sample-grid PNG.

Example:
    python benchmarks/specdm_cpu.py --dataset simulated-segmentation --vae-minutes 12 --diffusion-minutes 20
    python benchmarks/specdm_cpu.py --dataset oscd --root ../shared/data/oscd --vae-minutes 12 --diffusion-minutes 20
"""

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt
import torch
from common import benchmark_datamodule, machine
from lightning.pytorch import Trainer, seed_everything

from torchgeo_specdm.datasets import SyntheticDataset
from torchgeo_specdm.datasets.plotting import plot_sample_grid
from torchgeo_specdm.metrics import (
    class_histogram,
    class_histogram_tv,
    class_spectrum_sam,
)
from torchgeo_specdm.sample import generate
from torchgeo_specdm.tasks import LatentDiffusion, TwoStreamVAE
from torchgeo_specdm.tasks.utils import rgb_indices

RESULTS = Path(__file__).parent / 'results'


def real_validation(datamodule: Any) -> tuple[torch.Tensor, torch.Tensor]:
    datamodule.setup('validate')
    samples = [datamodule.val_dataset[i] for i in range(len(datamodule.val_dataset))]
    return torch.stack([s['image'] for s in samples]), torch.stack(
        [s['mask'] for s in samples]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        '--dataset',
        choices=['simulated-segmentation', 'simulated-change', 'oscd'],
        required=True,
    )
    parser.add_argument('--root', help='dataset root (OSCD)')
    parser.add_argument(
        '--architecture', choices=['two_stream', 'single_stream'], default='two_stream'
    )
    parser.add_argument(
        '--vae-checkpoint', help='reuse a trained VAE instead of training one'
    )
    parser.add_argument('--vae-minutes', type=float, default=12.0)
    parser.add_argument('--diffusion-minutes', type=float, default=20.0)
    parser.add_argument('--num-samples', type=int, default=64)
    parser.add_argument('--sampler', choices=['ddpm', 'ddim', 'dpmpp'], default='dpmpp')
    parser.add_argument('--steps', type=int, default=25)
    parser.add_argument('--work-dir', default='outputs/specdm_cpu')
    parser.add_argument('--seed', type=int, default=0)
    options = parser.parse_args()
    seed_everything(options.seed)
    name = f'{options.dataset}-{options.architecture}'
    work = Path(options.work_dir) / name
    timings: dict[str, float] = {}

    datamodule = benchmark_datamodule(options.dataset, options.root)
    if options.vae_checkpoint is None:
        start = time.perf_counter()
        vae = TwoStreamVAE(
            architecture=options.architecture,
            mask_latent_channels=4,
            lr=2e-3,
            patience=1000,
            num_plots=1,
        )
        Trainer(
            max_time={'minutes': options.vae_minutes},
            max_epochs=-1,
            check_val_every_n_epoch=5,
            num_sanity_val_steps=0,
            default_root_dir=work / 'vae',
            logger=False,
            enable_checkpointing=False,
        ).fit(vae, datamodule=datamodule)
        vae_checkpoint = work / 'vae.ckpt'
        vae.trainer.save_checkpoint(vae_checkpoint)
        timings['vae_train_minutes'] = (time.perf_counter() - start) / 60
    else:
        vae_checkpoint = Path(options.vae_checkpoint)

    start = time.perf_counter()
    datamodule = benchmark_datamodule(options.dataset, options.root)
    diffusion = LatentDiffusion(
        vae_checkpoint=str(vae_checkpoint),
        block_out_channels=(64, 128, 128),
        lr=5e-4,
        patience=1000,
        cache_passes=4 if options.dataset == 'oscd' else 1,
        sample_every_n_epochs=10_000,
    )
    trainer = Trainer(
        max_time={'minutes': options.diffusion_minutes},
        max_epochs=-1,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        default_root_dir=work / 'diffusion',
        logger=False,
        enable_checkpointing=False,
    )
    trainer.fit(diffusion, datamodule=datamodule)
    diffusion_checkpoint = work / 'diffusion.ckpt'
    trainer.save_checkpoint(diffusion_checkpoint)
    timings['diffusion_train_minutes'] = (time.perf_counter() - start) / 60
    diffusion_steps = trainer.global_step

    start = time.perf_counter()
    out = work / 'generated'
    generate(
        diffusion_checkpoint,
        out,
        options.num_samples,
        sampler=options.sampler,
        steps=options.steps,
        seed=options.seed,
    )
    timings['sample_seconds_per_pair'] = (
        time.perf_counter() - start
    ) / options.num_samples

    synthetic = SyntheticDataset(out)
    fake = [synthetic[i] for i in range(len(synthetic))]
    fake_image = torch.stack([s['image'] for s in fake])
    fake_mask = torch.stack([s['mask'] for s in fake])
    real_image, real_mask = real_validation(
        benchmark_datamodule(options.dataset, options.root)
    )
    classes = synthetic.num_classes
    metrics = {
        'class_spectrum_sam_degrees': float(
            class_spectrum_sam(fake_image, fake_mask, real_image, real_mask, classes)
        ),
        'class_histogram_tv': float(class_histogram_tv(fake_mask, real_mask, classes)),
        'synthetic_class_frequencies': class_histogram(fake_mask, classes).tolist(),
        'real_class_frequencies': class_histogram(real_mask, classes).tolist(),
    }
    rgb = rgb_indices(synthetic.bands, fake_image.shape[-3])
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f'specdm_{options.dataset}_{options.architecture}'
    figure = plot_sample_grid(
        fake_image[:8],
        fake_mask[:8],
        rgb,
        synthetic.classes,
        columns=4,
        suptitle=f'SpecDM ({options.architecture}) samples, {options.dataset}, {options.sampler} {options.steps} steps',
    )
    figure.savefig(RESULTS / f'{stem}_samples.png', dpi=70)
    plt.close(figure)
    figure = plot_sample_grid(
        real_image[:8],
        real_mask[:8],
        rgb,
        synthetic.classes,
        columns=4,
        suptitle=f'Real validation pairs, {options.dataset}',
    )
    figure.savefig(RESULTS / f'{stem}_real.png', dpi=70)
    plt.close(figure)
    result = {
        'command': 'python ' + ' '.join(sys.argv),
        'dataset': options.dataset,
        'architecture': options.architecture,
        'sampler': options.sampler,
        'steps': options.steps,
        'num_samples': options.num_samples,
        'diffusion_train_steps': diffusion_steps,
        'timings': timings,
        'metrics': metrics,
        'class_names': list(synthetic.classes),
        'machine': machine(),
    }
    (RESULTS / f'{stem}.json').write_text(json.dumps(result, indent=2) + '\n')
    print(json.dumps(result, indent=2))


if __name__ == '__main__':
    main()
