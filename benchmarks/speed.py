"""Speed, memory and scaling of SpecDM: every figure a ratio measured in one run.

1. Sampler parity: DPM-Solver++ (10 to 25 steps) and DDIM-50 against DDPM ancestral
   sampling at 1000 steps, same model and seeds: wall time per pair, and the class-
   spectrum SAM and class-histogram TV against real validation data (alignment too
   when a real-trained downstream model is given).
2. Pipeline overhead: SpecDMPipeline's denoising loop against diffusers' own
   DDIMPipeline driving the same U-Net, latent size, scheduler, steps and noise.
3. Training throughput: the LatentDiffusion task under a Lightning Trainer against a
   bare PyTorch loop doing the same work on the same cached latents, and the share of
   a step spent between batches (data loading, transfer, augmentation).
4. Memory and scaling: peak RSS and wall time of fresh ``specdm sample`` processes
   against the number of pairs; time and memory of one pair against image size and
   band count (untrained models of the default sizes).
5. Sharded generation: ``specdm sample --devices 2`` against ``--devices 1``, with the
   SHA-256 of every file.
6. GPU path: the task's options, the U-Net's FLOPs per training step and the
   achieved TFLOP/s.

Timings take a warm-up, then the median of repeats; the two sides of a ratio run
alternately in the same process. Writes benchmarks/results/<name>.json and <name>.md
and prints the ratio table.

Example:
    python benchmarks/speed.py --quick
    python benchmarks/speed.py --name speed_full \\
        --checkpoint outputs/specdm_cpu/simulated-segmentation-two_stream/diffusion.ckpt \\
        --oscd-checkpoint outputs/specdm_cpu/oscd-two_stream/diffusion.ckpt \\
        --oscd-root ../shared/data/oscd
"""

import argparse
import functools
import inspect
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use('Agg')
import diffusers
import lightning
import torch
from common import machine
from lightning.pytorch import seed_everything
from speed_measure import CLOCK, DEFAULT_UNET, QUICK, Settings, provenance
from speed_memory import sample_memory, sharded_generation, size_and_band_scaling
from speed_report import markdown, notes, summary, table
from speed_sampling import (
    pipeline_overhead,
    recommend,
    sampler_label,
    sampler_parity,
    train_quick_model,
)
from speed_training import training_throughput

from torchgeo_specdm.sample import generate
from torchgeo_specdm.tasks import LatentDiffusion

RESULTS = Path(__file__).parent / 'results'


def gpu_options() -> dict[str, Any]:
    """Which GPU-path options the task and the trainer offer."""
    parameters = inspect.signature(LatentDiffusion.__init__).parameters
    return {
        'channels_last': 'channels_last' in parameters,
        'compile_unet': 'compile_unet' in parameters,
        'bf16_mixed': 'Trainer option: --trainer.precision bf16-mixed',
        'gpu_measurements': 'not measured: no GPU was lent to this session '
        '(training steps/s, pairs/s at 128 px and OSCD size, GPU memory, '
        'torch.compile speed-up)',
    }


def default_label() -> str:
    """The label of ``specdm sample``'s default sampler, e.g. 'dpmpp-15'."""
    parameters = inspect.signature(generate).parameters
    return sampler_label(parameters['sampler'].default, parameters['steps'].default)


def rerender(path: Path) -> None:
    """Rebuild a results file's table and report for the current default sampler.

    Args:
        path: the JSON an earlier run wrote.
    """
    result = json.loads(path.read_text())
    label = default_label()
    result['rerendered'] = {
        'commit': provenance()['commit'],
        'measured_default': result['rerendered']['measured_default']
        if 'rerendered' in result
        else result['default_sampler'],
    }
    result['default_sampler'] = label
    result['summary'] = summary(result)
    path.write_text(json.dumps(result, indent=2) + '\n')
    path.with_suffix('.md').write_text(markdown(result))
    print('\n'.join(table(result['summary'])))
    print(f'rewrote {path} and {path.with_suffix(".md")} for the default {label}')


def main() -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument('--quick', action='store_true', help='small sizes (< 10 min)')
    parser.add_argument('--checkpoint', help='LatentDiffusion .ckpt on the simulator')
    parser.add_argument(
        '--dataset',
        default='simulated-segmentation',
        choices=['simulated-segmentation', 'simulated-change'],
        help='simulator family of --checkpoint',
    )
    parser.add_argument('--downstream', help='real-trained model for alignment')
    parser.add_argument('--oscd-checkpoint', help='LatentDiffusion .ckpt on OSCD')
    parser.add_argument('--oscd-root', help='OSCD root')
    parser.add_argument('--oscd-downstream', help='real-trained OSCD change model')
    parser.add_argument('--threads', type=int, default=1, help='torch threads')
    parser.add_argument(
        '--clock',
        choices=['cpu', 'wall'],
        default='cpu',
        help='time CPU seconds of the benchmark process and its children (other '
        'jobs on a shared machine do not inflate them; with one thread they equal '
        'wall time on an idle machine) or wall seconds',
    )
    parser.add_argument('--vae-minutes', type=float, default=0.6)
    parser.add_argument('--diffusion-minutes', type=float, default=1.2)
    parser.add_argument('--work-dir', default='outputs/speed')
    parser.add_argument('--name', default='speed', help='results file stem')
    parser.add_argument(
        '--rerender',
        metavar='JSON',
        help='rebuild the table and report of an earlier results JSON for the '
        "current default sampler (measures nothing; the run's samplers must "
        'include it)',
    )
    options = parser.parse_args()
    if options.rerender:
        rerender(Path(options.rerender))
        return
    if options.checkpoint is None and not options.quick:
        parser.error('give --checkpoint, or --quick to train a tiny model first')
    if options.oscd_checkpoint and not options.oscd_root:
        parser.error('--oscd-checkpoint needs --oscd-root')
    started = time.perf_counter()
    torch.set_num_threads(options.threads)
    if options.clock == 'wall':
        CLOCK.update(name='wall', now=time.perf_counter)
    seed_everything(0)
    settings = QUICK if options.quick else Settings()
    work = Path(options.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        'command': 'python ' + ' '.join(sys.argv),
        'machine': machine(),
        'threads': torch.get_num_threads(),
        'clock': CLOCK['name'],
        'torch': torch.__version__,
        'diffusers': diffusers.__version__,
        'lightning': lightning.__version__,
        'code': provenance(),
        'quick': options.quick,
        'default_sampler': default_label(),
        'section_seconds': {},
    }

    partial = work / f'{options.name}.partial.json'

    def section(name: str, function: Callable[[], Any]) -> Any:
        print(f'[speed] {name} ...', flush=True)
        start = time.perf_counter()
        value = function()
        result['section_seconds'][name] = time.perf_counter() - start
        # What finished so far survives a failure in a later section.
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(
            json.dumps(result | {name: value}, indent=2, default=str) + '\n'
        )
        return value

    if options.checkpoint:
        checkpoint = Path(options.checkpoint)
    else:
        checkpoint, result['quick_model'] = section(
            'quick model',
            lambda: train_quick_model(
                work / 'quick_model', options.vae_minutes, options.diffusion_minutes
            ),
        )
    result['parity'] = {}
    jobs = [(options.dataset, checkpoint, None, options.downstream)]
    if options.oscd_checkpoint:
        jobs.append(
            (
                'oscd',
                Path(options.oscd_checkpoint),
                options.oscd_root,
                options.oscd_downstream,
            )
        )
    for dataset, path, root, downstream in jobs:
        parity = section(
            f'parity {dataset}',
            functools.partial(
                sampler_parity, path, dataset, root, downstream, settings
            ),
        )
        parity['recommended'] = recommend(parity)
        result['parity'][dataset] = parity
    if not options.oscd_checkpoint:
        result['parity_oscd'] = 'not measured: no --oscd-checkpoint and --oscd-root'

    trained = LatentDiffusion.from_checkpoint(checkpoint)
    if options.checkpoint:
        model = trained
    else:
        # The tiny U-Net trained for parity is not the size that matters for
        # throughput: time the diffusion.yaml U-Net (untrained) on the same VAE.
        model = LatentDiffusion(
            vae=trained.vae,
            latent_size=list(trained.latent_shape()[1:]),
            **DEFAULT_UNET,
        ).eval()
    result['pipeline_overhead'] = section(
        'pipeline overhead', lambda: pipeline_overhead(model, settings)
    )
    result['training'] = section(
        'training throughput',
        lambda: training_throughput(
            model, options.dataset, work / 'training', settings
        ),
    )
    result['memory'] = section(
        'sample memory',
        lambda: sample_memory(checkpoint, work, settings, options.threads),
    )
    result['scaling'] = section(
        'size and bands', lambda: size_and_band_scaling(settings)
    )
    result['sharded'] = section(
        'sharded generation',
        lambda: sharded_generation(checkpoint, work, settings, options.threads),
    )
    result['gpu_options'] = gpu_options()
    result['summary'] = summary(result)
    result['wall_seconds'] = time.perf_counter() - started
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f'{options.name}.json').write_text(json.dumps(result, indent=2) + '\n')
    (RESULTS / f'{options.name}.md').write_text(markdown(result))
    print()
    print('\n'.join(table(result['summary'])))
    print()
    print('\n'.join(notes(result)))
    print(
        f'\nwall time {result["wall_seconds"] / 60:.1f} min; wrote '
        f'{RESULTS / options.name}.json and .md'
    )


if __name__ == '__main__':
    main()
