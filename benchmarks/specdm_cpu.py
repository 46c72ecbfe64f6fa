"""SpecDM end to end on CPU: VAE, latent diffusion, sampling, and fidelity against real data.

Trains (or reuses) a two-stream VAE, trains the latent diffusion model on its cached
latents, samples a generated dataset with `specdm sample`'s code path, reads it back
through SyntheticDataset and compares it with the real validation data with
`specdm evaluate`'s code. Writes benchmarks/results/specdm_<dataset>_<architecture>.json
and the fidelity report (sample grids, spectra, class distribution) beside it.

Example:
    python benchmarks/specdm_cpu.py --dataset simulated-segmentation --vae-minutes 12 --diffusion-minutes 20
    python benchmarks/specdm_cpu.py --dataset oscd --root ../shared/data/oscd --vae-minutes 12 --diffusion-minutes 20
"""

import argparse
import json
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use('Agg')
from common import benchmark_datamodule, machine
from lightning.pytorch import Trainer, seed_everything

from torchgeo_specdm.evaluation.report import evaluate_synthetic
from torchgeo_specdm.sample import generate
from torchgeo_specdm.tasks import LatentDiffusion, TwoStreamVAE

RESULTS = Path(__file__).parent / 'results'


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

    stem = f'specdm_{options.dataset}_{options.architecture}'
    report = evaluate_synthetic(
        out,
        benchmark_datamodule(options.dataset, options.root),
        RESULTS / f'{stem}_report',
    )
    metrics = {
        'class_spectrum_sam_degrees': report['mean_class_spectrum_sam_degrees'],
        'class_histogram_tv': report['class_histogram_tv'],
        'synthetic_class_frequencies': report['synthetic_class_frequencies'],
        'real_class_frequencies': report['real_class_frequencies'],
    }
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
        'class_names': report['class_names'],
        'report': f'{stem}_report/report.md',
        'machine': machine(),
    }
    (RESULTS / f'{stem}.json').write_text(json.dumps(result, indent=2) + '\n')
    print(json.dumps(result, indent=2))


if __name__ == '__main__':
    main()
