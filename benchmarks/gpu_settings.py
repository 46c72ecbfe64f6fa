"""Sizes of benchmarks/gpu.py: the full-size run on one GPU, and the CPU smoke run."""

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from torchgeo_specdm.generation.pipeline import DEFAULT_STEPS

CONFIGS = Path(__file__).parent / 'configs'

#: trainer precisions of the full-size configs
Precision = Literal['32-true', 'bf16-mixed', '16-mixed']


@dataclass(frozen=True)
class Settings:
    """Sizes of one run (see FULL and SMOKE)."""

    device: str
    budget_seconds: float
    matmul_size: int
    matmul_repeats: int
    warmup_steps: int
    run_seconds: float
    min_steps: int
    max_steps: int
    #: dataset -> root under --data, datamodule arguments, batch sizes, task overrides;
    #: the variant dataset last, as its models are kept for sampling and the variants
    data: dict[str, dict[str, Any]]
    #: dataset of the channels_last / torch.compile variants
    variant_dataset: str
    sample_sizes: tuple[int, ...]
    sample_batches: tuple[int, ...]
    sample_steps: int
    sample_repeats: int
    end_to_end_counts: tuple[int, int]
    end_to_end_batch: int
    vae: dict[str, Any] = field(default_factory=dict)
    diffusion: dict[str, Any] = field(default_factory=dict)
    num_workers: int = 0
    #: time a run needs beyond run_seconds (set-up, warm-up), and a compiled one more
    setup_seconds: float = 25.0
    compile_seconds: float = 120.0
    #: torch.compiler stance of the compiled runs: 'force_eager' runs the compile
    #: path of the tasks without compiling (the smoke run: dynamo alone takes
    #: more than 30 s on a 2-core CPU, inductor minutes)
    compile_stance: Literal['default', 'force_eager'] = 'default'


FULL = Settings(
    device='cuda',
    budget_seconds=8 * 60,
    matmul_size=8192,
    matmul_repeats=10,
    warmup_steps=5,
    run_seconds=8.0,
    min_steps=5,
    max_steps=10**6,
    data={
        # 83 x 86 px: three disjoint blocks hold 16 px patches at most, and the
        # 4-level U-Net needs latents of 8 px, so f = 2 here.
        'salinas-a': {
            'root': 'hsi/salinas_a',
            'kwargs': {'patch_size': 16, 'patches_per_epoch': 2048},
            'vae_batch': 128,
            'diffusion_batch': 256,
            'vae': {'downsampling_factor': 2},
        },
        'simulated-segmentation': {
            'root': None,
            'kwargs': {'size': 128, 'num_train': 1024, 'num_val': 32},
            'vae_batch': 32,
            'diffusion_batch': 128,
        },
        'oscd': {
            'root': 'oscd_full',
            # three cities travel to the GPU machine: one of them validates
            'kwargs': {
                'patch_size': 128,
                'patches_per_epoch': 1024,
                'val_split_pct': 0.34,
            },
            'vae_batch': 32,
            'diffusion_batch': 128,
        },
    },
    variant_dataset='oscd',
    sample_sizes=(64, 128, 256),
    sample_batches=(1, 16, 64),
    sample_steps=DEFAULT_STEPS,
    sample_repeats=3,
    end_to_end_counts=(128, 512),
    end_to_end_batch=64,
    num_workers=min(8, max(0, (os.cpu_count() or 1) - 2)),
)

SMOKE = replace(
    FULL,
    device='cpu',
    budget_seconds=10 * 60,
    matmul_size=128,
    matmul_repeats=3,
    warmup_steps=1,
    run_seconds=0.0,
    min_steps=1,
    max_steps=1,
    data={
        'salinas-a': {
            'root': 'hsi/salinas_a',
            'kwargs': {'patch_size': 16, 'patches_per_epoch': 8},
            'vae_batch': 4,
            'diffusion_batch': 8,
            'vae': {'downsampling_factor': 2},
        },
        'simulated-segmentation': {
            'root': None,
            'kwargs': {'size': 32, 'num_train': 8, 'num_val': 2},
            'vae_batch': 4,
            'diffusion_batch': 8,
        },
        'oscd': {
            'root': 'oscd',
            'kwargs': {'patch_size': 32, 'patches_per_epoch': 8},
            'vae_batch': 4,
            'diffusion_batch': 8,
        },
    },
    sample_sizes=(16, 32),
    sample_batches=(1, 2),
    sample_steps=2,
    sample_repeats=1,
    end_to_end_counts=(2, 4),
    end_to_end_batch=2,
    vae={'base_channels': 8, 'mask_base_channels': 8, 'layers_per_block': 1},
    diffusion={'block_out_channels': [8, 16], 'layers_per_block': 1},
    num_workers=0,
    compile_stance='force_eager',
)

#: (channels_last, torch.compile) of the variant runs, after the plain ones, most
#: telling first (the budget may skip the last).
VARIANTS = ((True, False), (True, True), (False, True))


def task_arguments(
    stage: str, settings: Settings, dataset: str
) -> tuple[dict[str, Any], Precision]:
    """The task's arguments from its full-size config, and the trainer's precision.

    Raises:
        ValueError: if the config names a precision this benchmark does not run.
    """
    path = CONFIGS / f'{stage}_gpu.yaml'
    config = yaml.safe_load(path.read_text())
    arguments = dict(config['model']['init_args'])
    arguments.pop('vae_checkpoint', None)
    arguments |= getattr(settings, stage) | settings.data[dataset].get(stage, {})
    if stage == 'diffusion':
        arguments['sample_every_n_epochs'] = 10**6  # no validation sampling
    precision = config['trainer'].get('precision', '32-true')
    if precision not in get_args(Precision):
        raise ValueError(
            f'{path}: trainer.precision {precision!r} is not one of '
            f'{", ".join(get_args(Precision))}'
        )
    return arguments, precision
