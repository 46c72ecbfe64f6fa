"""The ``specdm`` command: LightningCLI subcommands plus SpecDM's own."""

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Sequence

# kornia still calls torch.jit.script at import; the warning is noise for CLI users.
warnings.filterwarnings('ignore', message='.*torch.jit.script.*is deprecated')

from lightning.pytorch.cli import LightningCLI
from torchgeo.datamodules import BaseDataModule
from torchgeo.datasets import DatasetNotFoundError, DependencyNotFoundError
from torchgeo.tasks import BaseTask

import torchgeo_specdm

from .datasets.validation import InvalidInputError, missing_dependency

LIGHTNING_COMMANDS = ('fit', 'validate', 'test', 'predict')

USAGE = f"""usage: specdm <command> [options]

SpecDM {torchgeo_specdm.__version__}: synthesise labelled multispectral and
hyperspectral training data with a two-stream VAE and latent diffusion.

Lightning commands (TorchGeo's CLI, with torchgeo_specdm tasks and datamodules
registered, so short class names work in configs):
  fit        train a task:  specdm fit --config TASK.yaml --config DATA.yaml
  validate   run one validation epoch
  test       run one test epoch
  predict    run prediction

SpecDM commands:
  sample     generate an image-mask dataset folder from a diffusion checkpoint
  evaluate   fidelity report of a generated dataset against real data
  demo       the whole workflow within a time budget, with a report

Run 'specdm <command> --help' for the options of one command.
"""


def lightning_main(args: Sequence[str] | None) -> None:
    """Run TorchGeo's LightningCLI with this package's classes registered.

    Args:
        args: command-line arguments, starting with the subcommand (``None``
            reads ``sys.argv``).
    """
    import torchgeo.datamodules
    import torchgeo.tasks  # noqa: F401

    import torchgeo_specdm.datamodules
    import torchgeo_specdm.tasks

    LightningCLI(
        model_class=BaseTask,
        datamodule_class=BaseDataModule,
        seed_everything_default=0,
        parser_kwargs={'version': torchgeo_specdm.__version__},
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={'overwrite': True},
        args=None if args is None else list(args),
    )


def demo_main(args: Sequence[str]) -> None:
    """Run ``specdm demo``.

    Args:
        args: command-line arguments after ``demo``.
    """
    from .datamodules.registry import DEMO_DATA
    from .demo import run_demo
    from .generation.pipeline import DEFAULT_STEPS

    parser = argparse.ArgumentParser(
        prog='specdm demo',
        description='Run the whole SpecDM workflow within a time budget: train the '
        'two-stream VAE, train the latent diffusion model, sample a synthetic '
        'dataset, score its fidelity and alignment, train a downstream U-Net on real '
        'and on real + synthetic data, and write OUT/report.md with its figures. '
        'Without --root it runs on the embedded scene simulator (no data needed).',
    )
    parser.add_argument('--out', default='demo_output', help='output folder')
    parser.add_argument(
        '--dataset',
        default='simulated-segmentation',
        choices=list(DEMO_DATA),
        help='dataset family (default: %(default)s)',
    )
    parser.add_argument('--root', help='dataset root for oscd, segmunich, salinas-a')
    parser.add_argument(
        '--budget-minutes',
        type=float,
        default=12.0,
        help='wall-clock budget of the whole run; the training stages share it '
        '(default: %(default)s)',
    )
    parser.add_argument(
        '--num-samples', type=int, default=128, help='synthetic pairs to generate'
    )
    parser.add_argument(
        '--steps',
        type=int,
        default=DEFAULT_STEPS,
        help='DPM-Solver++ steps (default: %(default)s)',
    )
    parser.add_argument('--seed', type=int, default=0, help='training and sample seed')
    parser.add_argument(
        '--architecture',
        default='two_stream',
        choices=['two_stream', 'single_stream'],
        help="the VAE: SpecDM's two streams, or the paper's single-stream LDM "
        'baseline (default: %(default)s)',
    )
    parser.add_argument(
        '--alignment-guidance',
        type=float,
        help='alignment-guidance scale of the sampling, with a guide trained on the '
        'real data (default: 1 for segmentation, 0 for change detection; 0: off)',
    )
    options = parser.parse_args(args)
    if options.num_samples < 1:
        parser.error(f'--num-samples must be at least 1, got {options.num_samples}')
    run_demo(
        options.out,
        options.dataset,
        options.root,
        options.budget_minutes,
        options.num_samples,
        options.steps,
        options.seed,
        architecture=options.architecture,
        alignment_guidance=options.alignment_guidance,
    )
    print(f'Report: {os.path.abspath(os.path.join(options.out, "report.md"))}')


def sample_main(args: Sequence[str]) -> None:
    """Run ``specdm sample``.

    Args:
        args: command-line arguments after ``sample``.
    """
    from .generation.pipeline import DEFAULT_STEPS, SAMPLERS

    parser = argparse.ArgumentParser(
        prog='specdm sample',
        description='Sample image-mask pairs from a trained LatentDiffusion checkpoint '
        'and write them as a generated-dataset folder (GeoTIFFs + manifest.json). '
        'Rerunning with the same arguments resumes and skips finished samples.',
    )
    parser.add_argument('--checkpoint', required=True, help='LatentDiffusion .ckpt')
    parser.add_argument('--num-samples', type=int, required=True, help='pairs to write')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument(
        '--sampler', default='dpmpp', help=f'one of {", ".join(SAMPLERS)}'
    )
    parser.add_argument(
        '--steps',
        type=int,
        default=DEFAULT_STEPS,
        help='denoising steps (default: %(default)s)',
    )
    parser.add_argument('--batch-size', type=int, default=16, help='pairs per batch')
    parser.add_argument(
        '--seed', type=int, default=0, help='sample i depends on (seed, i)'
    )
    parser.add_argument(
        '--devices',
        type=int,
        default=1,
        help='processes or GPUs to shard the samples over (Lightning DDP); the files '
        'are identical whatever the number',
    )
    parser.add_argument(
        '--accelerator',
        choices=['auto', 'gpu', 'cpu'],
        default='auto',
        help='where to sample: auto uses a GPU when there is one (default: '
        '%(default)s)',
    )
    request = parser.add_argument_group(
        'requests',
        'For a model trained with --model.init_args.condition: ask for the pairs you '
        'are short of. The manifest records the request and, per pair, its target '
        'and whether the generated mask meets it.',
    )
    request.add_argument(
        '--classes',
        help='comma-separated class names every pair must contain, e.g. '
        'wetlands,surface_water (case-insensitive; spaces or underscores)',
    )
    request.add_argument(
        '--min-fraction',
        type=float,
        help='smallest pixel share of each requested class, in [0, 1] (default: any '
        'pixel)',
    )
    request.add_argument(
        '--change-fraction',
        metavar='LO:HI',
        help='range of the changed-pixel share, e.g. 0.1:0.2 (change models '
        'conditioned on change_fraction)',
    )
    request.add_argument(
        '--rebalance',
        action='store_true',
        help='give each pair one target class so that the training images plus the '
        'generated ones hold every class (or every --classes class) as evenly as '
        '--num-samples allows',
    )
    request.add_argument(
        '--guidance-scale',
        type=float,
        default=1.0,
        help='classifier-free guidance: 0 unconditional, 1 conditional, above 1 '
        'pushed towards the request (default: %(default)s)',
    )
    request.add_argument(
        '--on-miss',
        choices=['flag', 'redraw'],
        default='flag',
        help='a pair that misses its request is kept and flagged, or redrawn with '
        'a new seed of (seed, index, attempt) (default: %(default)s)',
    )
    request.add_argument(
        '--max-attempts',
        type=int,
        default=4,
        help='draws per pair at most with --on-miss redraw; the last is kept and '
        'flagged if it still misses (default: %(default)s)',
    )
    guiding = parser.add_argument_group(
        'guide',
        'A downstream model trained on the real data (a torchgeo SemanticSegmentation '
        'or binary ChangeDetection checkpoint, e.g. the downstream.ckpt of specdm '
        'evaluate) steers sampling and fixes masks so that they agree with their '
        'images. The manifest records its sha256 and the settings.',
    )
    guiding.add_argument('--guide', metavar='CKPT', help='the guide checkpoint')
    guiding.add_argument(
        '--alignment-guidance',
        type=float,
        default=0.0,
        metavar='S',
        help="alignment-guidance scale: each guided step moves each sample's "
        'predicted clean latent by S x 0.1 latent RMS down the gradient of the '
        "mask's cross-entropy against the guide's prediction (default: %(default)s, "
        'off)',
    )
    guiding.add_argument(
        '--guidance-start',
        type=float,
        default=0.5,
        metavar='F',
        help='guided share of the steps: the last ceil(F x steps), the least noisy '
        '(default: %(default)s)',
    )
    guiding.add_argument(
        '--refine',
        choices=['ignore', 'relabel'],
        help='after decoding, pixels where the guide is confident of another class '
        'become the ignore label (segmentation with an unlabelled class) or the '
        "guide's class",
    )
    guiding.add_argument(
        '--refine-confidence',
        type=float,
        default=0.9,
        metavar='C',
        help="the guide's smallest class probability that changes a pixel (default: "
        '%(default)s)',
    )
    guiding.add_argument(
        '--guide-threshold',
        type=float,
        metavar='T',
        help="change guides: the guide's change probability that guidance and "
        'refinement read as even odds, e.g. the threshold it takes on validation '
        'data (benchmarks/judge.py records it as change_threshold; default: 0.5, '
        'as trained)',
    )
    options = parser.parse_args(args)
    from .sample import generate

    manifest = generate(
        options.checkpoint,
        options.out,
        options.num_samples,
        sampler=options.sampler,
        steps=options.steps,
        batch_size=options.batch_size,
        seed=options.seed,
        devices=options.devices,
        classes=options.classes,
        min_fraction=options.min_fraction,
        change_fraction=options.change_fraction,
        guidance_scale=options.guidance_scale,
        on_miss=options.on_miss,
        max_attempts=options.max_attempts,
        rebalance=options.rebalance,
        accelerator=options.accelerator,
        guide=options.guide,
        alignment_guidance=options.alignment_guidance,
        guidance_start=options.guidance_start,
        refine=options.refine,
        refine_confidence=options.refine_confidence,
        guide_threshold=options.guide_threshold,
    )
    samples = manifest['samples']
    print(f'Wrote {len(samples)} pairs to {os.path.abspath(options.out)}')
    if manifest['generator']['request'] is not None:
        met = sum(bool(sample.get('meets_request')) for sample in samples)
        print(f'{met} of {len(samples)} pairs meet the request')
    if manifest['generator'].get('refine') is not None:
        changed = sum(sample['refined_share'] for sample in samples) / len(samples)
        print(f'refinement changed {changed:.1%} of the mask pixels')


def evaluate_main(args: Sequence[str]) -> None:
    """Run ``specdm evaluate``.

    Args:
        args: command-line arguments after ``evaluate``.
    """
    from .datamodules.registry import DATASET_NAMES

    parser = argparse.ArgumentParser(
        prog='specdm evaluate',
        description='Compare a generated dataset with real data: per-class spectral '
        'angle, per-band Wasserstein-1, class-histogram TV, alignment with a '
        'real-trained model (stored in the manifest), Frechet distance in that '
        "model's encoder features and a memorisation check. Writes report.md, "
        'metrics.json and PNGs.',
    )
    parser.add_argument('--synthetic', required=True, help='folder from specdm sample')
    parser.add_argument('--dataset', required=True, choices=DATASET_NAMES)
    parser.add_argument('--root', help='real dataset root (oscd, segmunich)')
    parser.add_argument(
        '--downstream', help='real-trained SemanticSegmentation/ChangeDetection .ckpt'
    )
    parser.add_argument(
        '--train-downstream-minutes',
        type=float,
        default=2.0,
        help='without --downstream, train one on the real data for this long (0: skip '
        'alignment and Frechet distance)',
    )
    parser.add_argument('--out', help='report folder (default: <synthetic>_report)')
    options = parser.parse_args(args)
    from .datamodules.registry import build_datamodule
    from .evaluation.judges import load_downstream, train_downstream
    from .evaluation.report import evaluate_synthetic, summary_lines

    out = options.out or os.path.normpath(options.synthetic) + '_report'
    kwargs = {'batch_size': 16}
    datamodule = build_datamodule(options.dataset, options.root, **kwargs)
    change = options.dataset in ('oscd', 'simulated-change')
    if options.downstream:
        downstream = load_downstream(options.downstream, change)
    elif options.train_downstream_minutes > 0:
        print(
            f'training a downstream model on real data for {options.train_downstream_minutes} min'
        )
        downstream = train_downstream(
            datamodule,
            options.train_downstream_minutes,
            os.path.join(out, 'downstream'),
        )
    else:
        downstream = None
    result = evaluate_synthetic(options.synthetic, datamodule, out, downstream)
    for line in summary_lines(result):
        print(line)
    print(f'Report: {os.path.abspath(os.path.join(out, "report.md"))}')


COMMANDS: dict[str, Callable[[Sequence[str]], None]] = {
    'sample': sample_main,
    'evaluate': evaluate_main,
    'demo': demo_main,
}


def main(args: Sequence[str] | None = None) -> None:
    """Entry point of the ``specdm`` command.

    Args:
        args: command-line arguments (default: ``sys.argv[1:]``).
    """
    argv = list(sys.argv[1:] if args is None else args)
    if not argv or argv[0] in ('-h', '--help'):
        print(USAGE)
        return
    if argv[0] in ('-V', '--version'):
        print(torchgeo_specdm.__version__)
        return
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS and command not in LIGHTNING_COMMANDS:
        print(USAGE, file=sys.stderr)
        print(f'specdm: error: unknown command {command!r}', file=sys.stderr)
        raise SystemExit(2)
    try:
        if command in COMMANDS:
            COMMANDS[command](rest)
        else:
            os.environ.setdefault('GDAL_DISABLE_READDIR_ON_OPEN', 'EMPTY_DIR')
            lightning_main(None if args is None else argv)
    except (InvalidInputError, DatasetNotFoundError, DependencyNotFoundError) as error:
        # Raised by our loaders, or by a task while Lightning sets it up: the
        # message names the argument and the fix, so no traceback.
        if isinstance(error, DependencyNotFoundError):
            error = missing_dependency(error)
        message = ' '.join(str(error).split())
        print(f'specdm {command}: error: {message}', file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == '__main__':
    main()
