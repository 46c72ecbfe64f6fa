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
    python benchmarks/gpu.py --smoke --out /tmp/smoke   # toy sizes on CPU
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
from dataclasses import asdict, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use('Agg')
import torch
from gpu_measure import (
    Deadline,
    StepTimer,
    add_utilisation,
    allocated_memory,
    machine,
    matrix_rate,
)
from gpu_report import markdown
from gpu_sampling import end_to_end, pipeline_sweep
from gpu_settings import FULL, SMOKE, VARIANTS, Settings, task_arguments
from lightning.pytorch import Trainer, seed_everything

from torchgeo_specdm.datamodules.registry import build_datamodule
from torchgeo_specdm.tasks import LatentDiffusion, TwoStreamVAE

RESULTS = Path(__file__).parent / 'results'
#: Seconds kept back from every Trainer's max_time, so the results still get written.
RESERVE = 20.0


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
        record['memory_before_bytes'] = allocated_memory(self.device)
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

    def measure(
        self,
        stage: str,
        dataset: str,
        channels_last: bool = False,
        compile: bool = False,
        vae: TwoStreamVAE | None = None,
    ) -> tuple[Any, Trainer | None]:
        """Train and record one run; returns its task and trainer (None if none)."""
        what = f'{stage} {dataset} channels_last={channels_last} compile={compile}'
        outcome = self.guarded(
            what, self.train, stage, dataset, channels_last, compile, vae
        )
        if outcome is None:
            return None, None
        task, trainer, record = outcome
        self.add(record)
        return task, trainer

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
            vae, _ = self.measure('vae', dataset)
            if vae is None:
                continue
            diffusion, trainer = self.measure('diffusion', dataset, vae=vae)
            if dataset == settings.variant_dataset:
                kept = {'vae': vae, 'diffusion': diffusion, 'trainer': trainer}
            del vae, diffusion, trainer
        if kept.get('diffusion') is not None:
            self.guarded('sampling', self.sampling, kept['diffusion'], kept['trainer'])
        # The variants need the VAE only: free the U-Net, its EMA and optimizer.
        vae = kept.get('vae')
        del kept
        for channels_last, compile in VARIANTS:
            self.measure('vae', settings.variant_dataset, channels_last, compile)
            if vae is not None:
                self.measure(
                    'diffusion', settings.variant_dataset, channels_last, compile, vae
                )
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
