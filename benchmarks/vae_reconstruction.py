"""Train the two-stream VAE briefly on CPU and record its reconstruction quality.

Example:
    python benchmarks/vae_reconstruction.py --dataset oscd --root ../shared/data/oscd --minutes 12
    python benchmarks/vae_reconstruction.py --dataset simulated-segmentation --minutes 12
    python benchmarks/vae_reconstruction.py --dataset salinas-a \
        --root ../shared/data/hsi/salinas_a --image-latent-channels 8 \
        --downsampling-factor 2 --minutes 5 --name vae_salinas-a_c8_f2
"""

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import matplotlib
import torch
from lightning.pytorch import Trainer, seed_everything

matplotlib.use('Agg')

from common import VAE_DATASETS, benchmark_datamodule, machine

from torchgeo_specdm.tasks import TwoStreamVAE

RESULTS = Path(__file__).parent / 'results'


def save_reconstruction_figure(task: TwoStreamVAE, datamodule: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    batch = datamodule.aug(next(iter(datamodule.val_dataloader())))
    task.eval()
    with torch.no_grad():
        output = task.autoencoder(batch['image'], batch['mask'], sample_posterior=False)
    figure = task._plot(batch, output.image, output.mask_logits.argmax(dim=1))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=70, bbox_inches='tight')
    plt.close(figure)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument('--dataset', choices=VAE_DATASETS, required=True)
    parser.add_argument('--root', help='dataset root (OSCD, Salinas-A)')
    parser.add_argument('--minutes', type=float, default=12.0, help='training budget')
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument(
        '--architecture', choices=['two_stream', 'single_stream'], default='two_stream'
    )
    parser.add_argument(
        '--out', default=str(RESULTS), help='folder for the JSON and PNG'
    )
    parser.add_argument('--image-latent-channels', type=int, default=4)
    parser.add_argument('--mask-latent-channels', type=int, default=4)
    parser.add_argument('--downsampling-factor', type=int, choices=[2, 4, 8], default=4)
    parser.add_argument(
        '--sam-weight', type=float, default=0.1, help='spectral-angle loss weight'
    )
    parser.add_argument('--lr', type=float, default=2e-3)
    parser.add_argument(
        '--threads', type=int, help='torch threads (default: torch chooses)'
    )
    parser.add_argument(
        '--name', help='results file stem (default: vae_<dataset>_<architecture>)'
    )
    parser.add_argument(
        '--init-checkpoint', help='continue training the weights of this VAE checkpoint'
    )
    parser.add_argument('--work-dir', default='outputs/vae_reconstruction')
    parser.add_argument('--seed', type=int, default=0)
    options = parser.parse_args()

    seed_everything(options.seed)
    if options.threads:
        torch.set_num_threads(options.threads)
    datamodule = benchmark_datamodule(options.dataset, options.root, options.batch_size)
    previous_steps = 0
    if options.init_checkpoint:
        task = TwoStreamVAE.from_checkpoint(options.init_checkpoint)
        previous_steps = torch.load(options.init_checkpoint, weights_only=True)[
            'global_step'
        ]
    else:
        task = TwoStreamVAE(
            architecture=options.architecture,
            image_latent_channels=options.image_latent_channels,
            mask_latent_channels=options.mask_latent_channels,
            latent_channels=options.image_latent_channels
            + options.mask_latent_channels,
            downsampling_factor=options.downsampling_factor,
            sam_weight=options.sam_weight,
            lr=options.lr,
            patience=1000,
            num_plots=1,
        )
    oscd = options.dataset == 'oscd'
    name = options.name or f'vae_{options.dataset}_{options.architecture}'
    work = Path(options.work_dir) / name
    trainer = Trainer(
        max_time={'minutes': options.minutes},
        max_epochs=-1,
        check_val_every_n_epoch=2 if oscd else 5,
        num_sanity_val_steps=0,
        default_root_dir=work,
        log_every_n_steps=10,
        enable_progress_bar=True,
    )
    start = time.perf_counter()
    trainer.fit(task, datamodule=datamodule)
    train_seconds = time.perf_counter() - start
    if trainer.global_step == 0:
        raise SystemExit(
            'training ran no step: check the batch size against the dataset size'
        )
    checkpoint = work / 'vae.ckpt'
    trainer.save_checkpoint(checkpoint)
    metrics = trainer.validate(task, datamodule=datamodule, verbose=False)[0]
    figure = save_reconstruction_figure(
        task, datamodule, Path(options.out) / f'{name}.png'
    )
    result = {
        'command': 'python ' + ' '.join(sys.argv),
        'figure': figure.name,
        'dataset': options.dataset,
        'architecture': options.architecture,
        'root': options.root,
        'train_minutes': round(train_seconds / 60, 2),
        'steps': previous_steps + trainer.global_step,
        'initial_checkpoint': options.init_checkpoint,
        'previous_steps': previous_steps,
        'epochs': trainer.current_epoch,
        'batch_size': datamodule.batch_size,
        'settings': {
            'image_latent_channels': task.hparams['image_latent_channels'],
            'mask_latent_channels': task.hparams['mask_latent_channels'],
            'downsampling_factor': task.hparams['downsampling_factor'],
            'sam_weight': task.hparams['sam_weight'],
            'lr': task.hparams['lr'],
        },
        'val_sam_degrees': metrics['val_sam'],
        'val_psnr': metrics['val_psnr'],
        'val_mask_miou': metrics['val_mask_miou'],
        'val_mask_pixel_accuracy': metrics['val_mask_pixel_accuracy'],
        'val_rmse': {
            k.split('/', 1)[1]: v
            for k, v in metrics.items()
            if k.startswith('val_rmse/')
        },
        'scale_factors': task.autoencoder.get_scale_factors(),
        'thresholds_met': metrics['val_sam'] < 5 and metrics['val_mask_miou'] > 0.9,
        'machine': machine(),
        'checkpoint': str(checkpoint),
    }
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f'{name}.json').write_text(json.dumps(result, indent=2) + '\n')
    print(json.dumps(result, indent=2))


if __name__ == '__main__':
    main()
