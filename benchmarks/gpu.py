"""Full-size SpecDM on one GPU, measured in one run of at most 10 minutes.

1. The bf16 matrix rate of the card (a large torch.matmul), the ceiling of the
   model FLOPs utilisation (MFU) below.
2. Training with Lightning's Trainer in bf16 mixed precision at the full-size configs
   (benchmarks/configs/vae_gpu.yaml, diffusion_gpu.yaml) on OSCD full size (13 bands,
   128 px patches), Salinas-A (204 bands) and the simulator: steps/s, samples/s, the
   FLOPs of one real training step (FlopCounterMode), MFU and peak memory; on OSCD also
   with channels_last, torch.compile and both.
3. Sampling with the default sampler (DPM-Solver++, 15 steps): pairs/s and peak memory
   at 64, 128 and 256 px across batch sizes; the written-dataset rate of real
   `specdm sample` processes against the pipeline's rate alone; the same seed twice.

Every run stops after a fixed time (or step count), and the whole script keeps to a
budget, skipping what no longer fits. Results are written after every run to
OUT/gpu.json and OUT/gpu.md, with the card, driver, torch version and the command.

Example:
    python benchmarks/gpu.py                            # on the GPU machine
    python benchmarks/gpu.py --smoke --out /tmp/smoke   # toy sizes, CPU, seconds
"""

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use('Agg')
import torch
import yaml
from gpu_measure import Deadline, StepTimer, add_utilisation, machine, matrix_rate
from gpu_report import markdown
from gpu_sampling import end_to_end, pipeline_sweep
from lightning.pytorch import Trainer, seed_everything

from torchgeo_specdm.datamodules.registry import build_datamodule
from torchgeo_specdm.pipeline import DEFAULT_STEPS
from torchgeo_specdm.tasks import LatentDiffusion, TwoStreamVAE

CONFIGS = Path(__file__).parent / 'configs'
RESULTS = Path(__file__).parent / 'results'
#: Seconds kept back from every Trainer's max_time, so the results still get written.
RESERVE = 20.0


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
    #: dataset -> root under --data, datamodule arguments, batch sizes, task overrides
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
    compile_stance: str = 'default'


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
        'oscd': {
            'root': 'oscd',
            'kwargs': {'patch_size': 32, 'patches_per_epoch': 8},
            'vae_batch': 4,
            'diffusion_batch': 8,
        },
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

#: (channels_last, torch.compile) of the variant runs, after the plain ones.
VARIANTS = ((True, False), (False, True), (True, True))


def task_arguments(stage: str, settings: Settings, dataset: str) -> tuple[dict, str]:
    """The task's arguments from its full-size config, and the trainer's precision."""
    config = yaml.safe_load((CONFIGS / f'{stage}_gpu.yaml').read_text())
    arguments = dict(config['model']['init_args'])
    arguments.pop('vae_checkpoint', None)
    arguments |= getattr(settings, stage) | settings.data[dataset].get(stage, {})
    if stage == 'diffusion':
        arguments['sample_every_n_epochs'] = 10**6  # no validation sampling
    return arguments, config['trainer'].get('precision', '32-true')


class Benchmark:
    """One run of the benchmark: its settings, clock, results and files."""

    def __init__(self, settings: Settings, data: Path, out: Path, work: Path) -> None:
        self.settings = settings
        self.data = data
        self.out = out
        self.work = work
        self.device = torch.device(settings.device)
        self.deadline = Deadline(settings.budget_seconds)
        self.results: dict[str, Any] = {
            'command': shlex.join([sys.executable, *sys.argv]),
            'settings': asdict(settings),
            'training': [],
        }

    def save(self) -> None:
        self.results['wall_seconds'] = self.deadline.elapsed()
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / 'gpu.json').write_text(json.dumps(self.results, indent=2) + '\n')
        (self.out / 'gpu.md').write_text(markdown(self.results))

    def fits(self, seconds: float) -> bool:
        return self.deadline.left() >= seconds

    def datamodule(self, dataset: str, batch_size: int) -> Any:
        spec = self.settings.data[dataset]
        root = None if spec['root'] is None else os.fspath(self.data / spec['root'])
        workers = self.settings.num_workers if root is None else 0
        return build_datamodule(
            dataset, root, batch_size=batch_size, num_workers=workers, **spec['kwargs']
        )

    def train(
        self,
        stage: str,
        dataset: str,
        channels_last: bool = False,
        compile: bool = False,
        vae: TwoStreamVAE | None = None,
    ) -> tuple[Any, Trainer | None, dict[str, Any]]:
        """Train one task for the run's fixed time, and record its figures."""
        settings = self.settings
        batch = settings.data[dataset][f'{stage}_batch']
        record: dict[str, Any] = {
            'stage': stage,
            'dataset': dataset,
            'channels_last': channels_last,
            'compile': compile,
            'batch_size': batch,
        }
        need = settings.run_seconds + settings.setup_seconds
        need += settings.compile_seconds if compile else 0
        if not self.fits(need + RESERVE):
            record['skipped'] = f'budget: {self.deadline.left():.0f} s left'
            return None, None, record
        arguments, precision = task_arguments(stage, settings, dataset)
        if stage == 'vae':
            task: Any = TwoStreamVAE(
                **arguments, channels_last=channels_last, compile_autoencoder=compile
            )
        else:
            task = LatentDiffusion(
                vae=vae, **arguments, channels_last=channels_last, compile_unet=compile
            )
        timer = StepTimer(
            settings.warmup_steps,
            settings.run_seconds,
            settings.min_steps,
            settings.max_steps,
            count_flops=not compile,
        )
        trainer = Trainer(
            accelerator=self.device.type,
            devices=1,
            precision=precision,
            max_epochs=-1,
            max_time=timedelta(seconds=max(1.0, self.deadline.left() - RESERVE)),
            limit_val_batches=0,
            num_sanity_val_steps=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[timer],
            default_root_dir=self.work,
        )
        start = time.perf_counter()
        with torch.compiler.set_stance(settings.compile_stance):
            trainer.fit(task, datamodule=self.datamodule(dataset, batch))
        trained = task.vae if stage == 'diffusion' else task
        record |= {
            'compile_stance': settings.compile_stance if compile else None,
            'precision': precision,
            'fit_seconds': time.perf_counter() - start,
            'parameters': sum(
                p.numel()
                for p in (task.unet if stage == 'diffusion' else task).parameters()
            ),
            'bands': trained.hparams['in_channels'],
            'dates': trained.hparams['num_images'],
            'input_shape': (
                list(task.latent_shape())
                if stage == 'diffusion'
                else [trained.hparams['in_channels'], *self._patch(dataset)]
            ),
            **timer.record(batch),
        }
        if record['flops_per_step'] is None:
            record |= self._plain_flops(stage, dataset)
        add_utilisation(record, self.results['matmul']['flops_per_second'])
        return task, trainer, record

    def _patch(self, dataset: str) -> list[int]:
        kwargs = self.settings.data[dataset]['kwargs']
        side = kwargs.get('patch_size', kwargs.get('size'))
        return [side, side]

    def _plain_flops(self, stage: str, dataset: str) -> dict[str, Any]:
        """The FLOPs counted in the uncompiled run of the same model and batch."""
        for other in self.results['training']:
            if (other['stage'], other['dataset']) == (stage, dataset) and other.get(
                'flops_per_step'
            ):
                return {
                    'flops_per_step': other['flops_per_step'],
                    'flops_from': 'eager',
                }
        return {}

    def add(self, record: dict[str, Any]) -> None:
        self.results['training'].append(record)
        shown = {k: record.get(k) for k in ('stage', 'dataset', 'channels_last')}
        print(f'{shown} compile={record["compile"]}: {record}', flush=True)
        self.save()

    def guarded(self, what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one measurement; a failure is recorded and the run goes on."""
        try:
            return function(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 (one failure must not end the run)
            traceback.print_exc()
            self.results.setdefault('errors', []).append(
                {'what': what, 'error': f'{type(error).__name__}: {error}'[:2000]}
            )
            self.save()
            return None

    def run(self) -> None:
        settings = self.settings
        self.results['machine'] = machine(self.device)
        self.results['matmul'] = matrix_rate(
            self.device, settings.matmul_size, settings.matmul_repeats
        )
        print(f'matmul: {self.results["matmul"]["tflops"]:.1f} TFLOP/s', flush=True)
        self.save()
        kept: dict[str, Any] = {}
        for dataset in settings.data:
            trained = self.guarded(f'vae {dataset}', self.train, 'vae', dataset)
            if trained is None:
                continue
            vae, _, record = trained
            self.add(record)
            if vae is None:
                continue
            trained = self.guarded(
                f'diffusion {dataset}', self.train, 'diffusion', dataset, vae=vae
            )
            if trained is not None:
                self.add(trained[2])
                if dataset == settings.variant_dataset:
                    kept = {'vae': vae, 'diffusion': trained[0], 'trainer': trained[1]}
        if kept.get('diffusion') is not None:
            self.guarded('sampling', self.sampling, kept['diffusion'], kept['trainer'])
        for channels_last, compile in VARIANTS:
            dataset = settings.variant_dataset
            for stage in ('vae', 'diffusion'):
                if stage == 'diffusion' and kept.get('vae') is None:
                    continue
                trained = self.guarded(
                    f'{stage} {dataset} channels_last={channels_last} compile={compile}',
                    self.train,
                    stage,
                    dataset,
                    channels_last,
                    compile,
                    vae=kept.get('vae'),
                )
                if trained is not None:
                    self.add(trained[2])
        self.save()

    def sampling(self, task: LatentDiffusion, trainer: Trainer) -> None:
        settings = self.settings
        if not self.fits(90 + RESERVE):
            self.results['sampling'] = {'skipped': 'budget'}
            return
        sweep = pipeline_sweep(
            task,
            self.device,
            settings.sample_sizes,
            settings.sample_batches,
            settings.sample_steps,
            settings.sample_repeats,
        )
        size = self._patch(settings.variant_dataset)[0]
        self.results['sampling'] = {
            'sampler': 'dpmpp',
            'steps': settings.sample_steps,
            'dataset': settings.variant_dataset,
            'precision': 'float32 (as specdm sample)',
            'sweep': sweep,
        }
        self.save()
        checkpoint = self.work / 'diffusion.ckpt'
        trainer.save_checkpoint(checkpoint, weights_only=True)
        rate = next(
            (
                row.get('pairs_per_second')
                for row in sweep
                if (row['size'], row['batch_size']) == (size, settings.end_to_end_batch)
            ),
            None,
        )
        self.results['sampling']['end_to_end'] = end_to_end(
            checkpoint,
            self.work,
            settings.end_to_end_counts,
            settings.end_to_end_batch,
            settings.sample_steps,
            rate,
        )
        self.results['sampling']['end_to_end']['size'] = size
        self.save()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--smoke', action='store_true', help='toy sizes on CPU')
    parser.add_argument('--out', type=Path, default=RESULTS, help='results folder')
    parser.add_argument(
        '--data',
        type=Path,
        default=Path(os.environ.get('SPECDM_SHARED_DATA', '../shared/data')),
        help='the shared data folder (oscd_full/, hsi/salinas_a/)',
    )
    parser.add_argument(
        '--budget-minutes', type=float, help='override the run budget (default 8)'
    )
    options = parser.parse_args()
    settings = SMOKE if options.smoke else FULL
    if options.budget_minutes is not None:
        settings = replace(settings, budget_seconds=options.budget_minutes * 60)
    if settings.device == 'cuda' and not torch.cuda.is_available():
        parser.error('no GPU visible to PyTorch; use --smoke for the CPU path')
    seed_everything(0)
    work = Path(tempfile.mkdtemp(prefix='specdm_gpu_'))
    benchmark = Benchmark(settings, options.data, options.out, work)
    benchmark.results['smoke'] = options.smoke
    try:
        benchmark.run()
    finally:
        benchmark.save()
        shutil.rmtree(work, ignore_errors=True)
    print(f'wrote {options.out / "gpu.json"} and gpu.md', flush=True)


if __name__ == '__main__':
    main()
