"""Class-targeted generation: how often a requested rare class (or change share) is hit.

Trains (or reuses, with --checkpoint) a conditional LatentDiffusion model on a
trained VAE's latents, then samples the same pair indices (same noise seeds)
three ways with `specdm sample`'s code path: unconditionally (the model's null
condition) and with the request at each guidance scale. The hit rate is the share
of generated masks that meet the request; the training masks' rate is given too.
Writes benchmarks/results/conditional_<dataset>.json, .md and .png (the share each regime
reaches, and its first masks); --rerender JSON redraws the last two from a finished run.

The hit rate scores the masks alone, and strong guidance may paint masks that the
images do not carry. With --judge (benchmarks/judge.py) every row is also scored by
the dataset's fixed judge: alignment (also relative to the judge on real pairs) and
the per-class mean-spectrum angle, the requested class's among them. With --guide and
--alignment-guidance S, each requested scale gets a second row sampled with alignment
guidance S as well. --train-steps trains for a fixed step count instead of a budget.

Example:
    python benchmarks/conditional.py --dataset simulated-segmentation --minutes 4 \
        --vae-checkpoint outputs/vae_reconstruction/simulated-segmentation-two_stream/vae.ckpt
    python benchmarks/conditional.py --dataset oscd --root ../shared/data/oscd --minutes 4 \
        --vae-checkpoint outputs/vae_reconstruction/oscd-two_stream/vae.ckpt
    python benchmarks/conditional.py --dataset simulated-segmentation --demo-data \
        --vae-checkpoint VAE --train-steps 5000 --judge outputs/judges/simulated-segmentation \
        --guide outputs/guides/simulated-segmentation --alignment-guidance 1
"""

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt
import numpy as np
import torch
from common import benchmark_datamodule, machine
from judge import load_judge, reference_datamodule
from lightning.pytorch import seed_everything
from matplotlib.patches import Patch

from torchgeo_specdm.datamodules.registry import demo_datamodule
from torchgeo_specdm.datasets import SyntheticDataset
from torchgeo_specdm.datasets.plotting import class_colormap
from torchgeo_specdm.evaluation.report import evaluate_synthetic
from torchgeo_specdm.generation.request import SamplePlan, make_plan
from torchgeo_specdm.sample import generate, model_class_names
from torchgeo_specdm.tasks import LatentDiffusion
from torchgeo_specdm.tasks.utils import steps_trainer, timed_trainer

RESULTS = Path(__file__).parent / 'results'
CHANGE = ('oscd', 'simulated-change')

#: Default request per dataset family.
DEFAULT_REQUEST: dict[str, dict[str, Any]] = {
    'simulated-segmentation': {'classes': 'wetlands', 'min_fraction': 0.1},
    'oscd': {'change_fraction': '0.1:0.3'},
    'simulated-change': {'change_fraction': '0.1:0.3'},
}

#: Extra class-share thresholds reported for class requests.
THRESHOLDS = (0.0, 0.05, 0.1, 0.2, 0.3)


def train(options: argparse.Namespace, work: Path) -> tuple[Path, dict[str, Any]]:
    """Train a conditional diffusion model within the time budget.

    Args:
        options: the command-line options.
        work: working folder.

    Returns:
        the checkpoint and the training record.
    """
    datamodule = (
        demo_datamodule(options.dataset, options.root, 32)
        if options.demo_data
        else benchmark_datamodule(options.dataset, options.root)
    )
    start = time.perf_counter()
    diffusion = LatentDiffusion(
        vae_checkpoint=options.vae_checkpoint,
        block_out_channels=tuple(options.block_out_channels),
        lr=options.lr,
        patience=1000,
        cache_passes=2 if options.dataset == 'oscd' else 1,
        sample_every_n_epochs=10_000,
        condition=options.condition,
        condition_dropout=options.condition_dropout,
    )
    trainer = (
        steps_trainer(options.train_steps, work / 'diffusion')
        if options.train_steps
        else timed_trainer(
            options.minutes,
            work / 'diffusion',
            limit_val_batches=0,
            enable_progress_bar=False,
        )
    )
    trainer.fit(diffusion, datamodule=datamodule)
    checkpoint = work / 'diffusion.ckpt'
    trainer.save_checkpoint(checkpoint)
    record = {
        'train_minutes_budget': None if options.train_steps else options.minutes,
        'train_minutes_with_caching': (time.perf_counter() - start) / 60,
        'train_steps': trainer.global_step,
        'block_out_channels': list(options.block_out_channels),
        'lr': options.lr,
        'condition': options.condition,
        'condition_dropout': options.condition_dropout,
        'vae_checkpoint': options.vae_checkpoint,
        'data': 'demo' if options.demo_data else 'benchmark',
    }
    return checkpoint, record


def measured_share(fractions: list[float], classes: Sequence[int]) -> float:
    """The share that a request is about: its classes', or the changed pixels'.

    Args:
        fractions: a mask's class fractions.
        classes: the requested classes (the smallest share counts); none for a
            change-fraction request, whose share is that of class 1 (changed).

    Returns:
        the share.
    """
    if not classes:
        return fractions[1]
    return min(fractions[k] for k in classes)


def score(
    out: Path,
    plan: SamplePlan,
    seconds: float,
    guidance_scale: float | None,
    alignment_guidance: float = 0.0,
) -> dict[str, Any]:
    """Hit rate and shares of one generated folder.

    Args:
        out: the generated-dataset folder.
        plan: the request plan.
        seconds: sampling time.
        guidance_scale: the guidance scale (None: unconditional).
        alignment_guidance: the alignment-guidance scale (0: none).

    Returns:
        the regime's record.
    """
    dataset = SyntheticDataset(out)
    hits = [plan.meets(dataset[i]['mask'], i) for i in range(len(dataset))]
    shares = [
        measured_share(s['class_fractions'], plan.classes) for s in dataset.samples
    ]
    record: dict[str, Any] = {
        'guidance_scale': guidance_scale,
        'alignment_guidance': alignment_guidance,
        'num_samples': len(hits),
        'hits': sum(hits),
        'hit_rate': sum(hits) / len(hits),
        'mean_share': sum(shares) / len(shares),
        'sample_seconds_per_pair': seconds / len(hits),
    }
    if plan.change_fraction is None:
        record['rate_at_least'] = {
            str(t): sum(s > 0 and s >= t for s in shares) / len(shares)
            for t in THRESHOLDS
        }
    return record


def regime_name(row: dict[str, Any]) -> str:
    """The folder stem of a regime: unconditional, guided_G or guided_G_align_S."""
    scale = row['guidance_scale']
    if scale is None:
        return 'unconditional'
    align = row.get('alignment_guidance') or 0
    return f'guided_{scale:g}' + (f'_align_{align:g}' if align else '')


def regime_label(row: dict[str, Any]) -> str:
    """A regime as the tables and the figure name it."""
    scale = row['guidance_scale']
    if scale is None:
        return 'unconditional'
    align = row.get('alignment_guidance') or 0
    return f'guidance {scale:g}' + (f' + alignment {align:g}' if align else '')


def judge_scores(
    out: Path, reference: Any, judge: Any, work: Path, classes: Sequence[str]
) -> dict[str, Any]:
    """The fixed judge's view of one generated folder.

    Args:
        out: the generated-dataset folder.
        reference: the real datamodule (its validation split is the reference).
        judge: the dataset's fixed judge.
        work: folder of the fidelity report.
        classes: the requested class names (none for a change request).

    Returns:
        alignment, per-class mean-spectrum SAM, their mean and the requested
        classes' SAM.
    """
    scores = evaluate_synthetic(out, reference, work, judge)
    per_class = scores['class_spectrum_sam_degrees']
    return {
        'alignment': scores.get('alignment'),
        'class_spectrum_sam_degrees': per_class,
        'mean_class_spectrum_sam_degrees': scores['mean_class_spectrum_sam_degrees'],
        'requested_class_sam_degrees': {
            name: per_class.get(name) for name in classes if name in per_class
        },
    }


def real_rates(plan: SamplePlan) -> dict[str, Any]:
    """The request's hit rate over the training masks.

    Args:
        plan: the request plan (holds the training masks' class fractions).

    Returns:
        the real-data record.
    """
    fractions = plan.training_fractions
    shares = [measured_share(row.tolist(), plan.classes) for row in fractions]
    if plan.change_fraction is not None:
        lo, hi = plan.change_fraction
        hits = [lo <= s <= hi for s in shares]
    else:
        hits = [s > 0 and s >= plan.min_fraction for s in shares]
    record: dict[str, Any] = {
        'num_masks': len(shares),
        'hit_rate': sum(hits) / max(len(hits), 1),
        'mean_share': sum(shares) / max(len(shares), 1),
    }
    if plan.change_fraction is None:
        record['rate_at_least'] = {
            str(t): sum(s > 0 and s >= t for s in shares) / max(len(shares), 1)
            for t in THRESHOLDS
        }
    return record


def markdown(result: dict[str, Any], figure: str | None = None) -> str:
    """The result as a Markdown report.

    Args:
        result: the benchmark record.
        figure: file name of the run's PNG, shown under the tables.

    Returns:
        the report.
    """
    request = result['request']
    if request.get('change_fraction') is not None:
        lo, hi = request['change_fraction']
        asked = f'changed-pixel share in [{lo}, {hi}]'
        share = 'mean changed share'
    else:
        asked = (
            f'{", ".join(request["classes"])} covering >= '
            f'{request["min_fraction"]:.0%} of the mask (and at least one pixel)'
        )
        share = 'mean class share'
    training = result['training']
    budget = training.get('train_minutes_budget')
    budget_text = '' if budget is None else f' in a {budget}-minute budget'
    lines = [
        f'# Class-targeted generation: {result["dataset"]}',
        '',
        (
            f'Request: {asked}. Hit rate: share of generated masks that meet it. The '
            'unconditional row samples the same model with its null condition; all '
            'rows share the per-index noise seeds.'
        ),
        '',
        (
            f'Model: conditional LatentDiffusion (`condition={training.get("condition")}`, '
            f'dropout {training.get("condition_dropout")}), '
            f'{training.get("train_steps", "?")} training steps{budget_text} '
            f'({training.get("train_minutes_with_caching", float("nan")):.1f} min with '
            f'latent caching), U-Net widths {training.get("block_out_channels")}; '
            f'{result["sampler"]} with {result["steps"]} steps, '
            f'{result["num_samples"]} pairs per row.'
        ),
        '',
        f'| regime | guidance scale | hits | hit rate | {share} | s/pair |',
        '|---|---|---|---|---|---|',
    ]
    real = result['real']
    lines.append(
        f'| training masks | - | - | {real["hit_rate"]:.1%} | '
        f'{real["mean_share"]:.3f} | - |'
    )
    for row in result['regimes']:
        name = 'unconditional' if row['guidance_scale'] is None else 'requested'
        if row.get('alignment_guidance'):
            name += f' + alignment guidance {row["alignment_guidance"]:g}'
        scale = '-' if row['guidance_scale'] is None else f'{row["guidance_scale"]:g}'
        lines.append(
            f'| {name} | {scale} | {row["hits"]}/{row["num_samples"]} | '
            f'{row["hit_rate"]:.1%} | {row["mean_share"]:.3f} | '
            f'{row["sample_seconds_per_pair"]:.2f} |'
        )
    lines += ['', f'Hit rate over the unconditional rate: {result["summary"]}', '']
    if result.get('judge'):
        lines += judge_table(result)
    if 'rate_at_least' in real:
        lines += [
            (
                'Share of masks whose requested class covers at least t (t = 0: any '
                'pixel):'
            ),
            '',
            '| regime | ' + ' | '.join(f't={t}' for t in THRESHOLDS) + ' |',
            '|---|' + '---|' * len(THRESHOLDS),
        ]
        rows = [('training masks', real)] + [
            (regime_label(r), r) for r in result['regimes']
        ]
        for name, row in rows:
            rates = row['rate_at_least']
            lines.append(
                f'| {name} | '
                + ' | '.join(f'{rates[str(t)]:.1%}' for t in THRESHOLDS)
                + ' |'
            )
        lines.append('')
    if figure:
        lines += [f'![share reached per regime, and the first masks]({figure})', '']
    lines += [
        f'Command: `{result["command"]}`',
        '',
        f'Machine: {result["machine"]}',
        '',
    ]
    return '\n'.join(lines)


def judge_table(result: dict[str, Any]) -> list[str]:
    """Alignment and spectral angles of each regime under the fixed judge."""
    judge = result['judge']
    requested = result['request'].get('classes') or []
    lines = [
        (
            f'Fixed judge (`{judge["path"]}`, sha256 `{judge["sha256"][:12]}`; '
            'alignment: mean IoU between each generated mask and the judge on its '
            'image; relative: against the judge on real pairs; SAM: angle between '
            'the generated and the real mean spectrum of a class):'
        ),
        '',
        '| regime | alignment | relative to real | '
        + ''.join(f'{name} SAM (deg) | ' for name in requested)
        + 'mean class SAM (deg) |',
        '|---|---|---|' + '---|' * (len(requested) + 1),
    ]
    for row in result['regimes']:
        alignment = row['judge']['alignment'] or {}
        sam = row['judge']['requested_class_sam_degrees']
        lines.append(
            f'| {regime_label(row)} | {alignment.get("mean", float("nan")):.3f} | '
            f'{alignment.get("relative", float("nan")):.2f} | '
            + ''.join(
                f'{sam[name]:.2f} | ' if sam.get(name) is not None else '- | '
                for name in requested
            )
            + f'{row["judge"]["mean_class_spectrum_sam_degrees"]:.2f} |'
        )
    return [*lines, '']


def regime_folders(work: Path, result: dict[str, Any]) -> dict[str, Path]:
    """The generated folder of each regime of a run.

    Args:
        work: the run's working folder (``--work-dir``/dataset).
        result: the benchmark record.

    Returns:
        regime label to folder.
    """
    return {
        regime_label(row): work / f'{regime_name(row)}_{result["seed"]}'
        for row in result['regimes']
    }


def plot(result: dict[str, Any], folders: dict[str, Path], path: Path) -> None:
    """Draw the share each regime reaches, and the first masks of each regime.

    Args:
        result: the benchmark record.
        folders: regime label to generated folder (see :func:`regime_folders`).
        path: the PNG to write.
    """
    change = result['request'].get('change_fraction') is not None
    datasets = {label: SyntheticDataset(folder) for label, folder in folders.items()}
    names = next(iter(datasets.values())).classes
    classes = [names.index(name) for name in (result['request'].get('classes') or [])]
    shown = 8
    figure = plt.figure(figsize=(3 + 1.3 * shown, 2.6 * len(datasets)))
    grid = figure.add_gridspec(len(datasets), shown + 3)
    curve = figure.add_subplot(grid[:, :3])
    thresholds = np.linspace(0, 0.5, 51)
    colours = class_colormap(len(names))
    for row, (label, dataset) in enumerate(datasets.items()):
        shares = np.array(
            [measured_share(s['class_fractions'], classes) for s in dataset.samples]
        )
        curve.plot(thresholds, [(shares >= t).mean() for t in thresholds], label=label)
        for column in range(min(shown, len(dataset))):
            axis = figure.add_subplot(grid[row, 3 + column])
            mask = dataset[column]['mask']  # [H, W], or [1, H, W] for change data
            axis.imshow(
                mask.reshape(mask.shape[-2:]).numpy(),
                cmap=colours,
                vmin=-0.5,
                vmax=len(names) - 0.5,
                interpolation='nearest',
            )
            axis.set_xticks([])
            axis.set_yticks([])
            if column == 0:
                axis.set_ylabel(label)
    asked = (
        'changed-pixel share'
        if change
        else f'share of {", ".join(names[k] for k in classes)}'
    )
    curve.set_xlabel(asked)
    curve.set_ylabel('share of masks reaching it')
    if change:
        low, high = result['request']['change_fraction']
        curve.axvspan(low, high, color='0.9', zorder=0, label='requested range')
    else:
        curve.axvline(
            result['request']['min_fraction'],
            color='0.5',
            ls='--',
            label='requested minimum',
        )
    curve.legend(fontsize=8)
    curve.set_title(f'{result["dataset"]}: same seeds per regime', fontsize=9)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    figure.legend(
        handles=[Patch(color=colours(k), label=name) for k, name in enumerate(names)],
        loc='lower center',
        ncol=min(len(names), 8),
        fontsize=8,
        frameon=False,
    )
    figure.savefig(path, dpi=80)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument('--dataset', choices=list(DEFAULT_REQUEST), required=True)
    parser.add_argument('--root', help='dataset root (OSCD)')
    parser.add_argument('--vae-checkpoint', help='trained TwoStreamVAE checkpoint')
    parser.add_argument(
        '--checkpoint', help='conditional LatentDiffusion checkpoint (skip training)'
    )
    parser.add_argument(
        '--minutes', type=float, default=4.0, help='diffusion training budget'
    )
    parser.add_argument(
        '--condition',
        choices=['class_fraction', 'class_presence', 'change_fraction'],
        help='default: change_fraction for change data, class_fraction otherwise',
    )
    parser.add_argument('--condition-dropout', type=float, default=0.1)
    parser.add_argument(
        '--block-out-channels', type=int, nargs='+', default=[64, 128, 128]
    )
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--classes', help='requested classes (segmentation)')
    parser.add_argument('--min-fraction', type=float)
    parser.add_argument('--change-fraction', help='LO:HI (change data)')
    parser.add_argument('--guidance-scales', type=float, nargs='+', default=[1.0, 3.0])
    parser.add_argument('--num-samples', type=int, default=64)
    parser.add_argument('--sampler', choices=['ddpm', 'ddim', 'dpmpp'], default='dpmpp')
    parser.add_argument('--steps', type=int, default=25)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--work-dir', default='outputs/conditional')
    parser.add_argument('--results-dir', default=str(RESULTS))
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--demo-data',
        action='store_true',
        help="train on the demo's data settings (32 px scenes, batch 32), to match "
        'a VAE trained by specdm demo',
    )
    parser.add_argument(
        '--threads',
        type=int,
        help='torch CPU threads (1 avoids oversubscription on a CPU shared with '
        'other jobs)',
    )
    parser.add_argument(
        '--train-steps',
        type=int,
        help='train for this many optimizer steps instead of --minutes',
    )
    parser.add_argument(
        '--judge',
        help="folder of the fixed judge (benchmarks/judge.py): score every row's "
        'alignment and per-class spectral angle with it',
    )
    parser.add_argument(
        '--guide', help='folder of a guide (benchmarks/judge.py --role guide)'
    )
    parser.add_argument(
        '--alignment-guidance',
        type=float,
        default=0.0,
        help='with --guide: each requested scale gets a second row sampled with '
        'this alignment-guidance scale',
    )
    parser.add_argument(
        '--rerender',
        type=Path,
        help='redraw the Markdown and the figure of a finished run from its JSON and '
        'its --work-dir folders, without training or sampling',
    )
    options = parser.parse_args()
    results = Path(options.results_dir)
    if options.rerender:
        result = json.loads(options.rerender.read_text())
        stem = options.rerender.stem
        folders = regime_folders(Path(options.work_dir) / result['dataset'], result)
        plot(result, folders, results / f'{stem}.png')
        (results / f'{stem}.md').write_text(markdown(result, f'{stem}.png'))
        return
    if options.threads:
        torch.set_num_threads(options.threads)
    seed_everything(options.seed)
    change = options.dataset in CHANGE
    options.condition = options.condition or (
        'change_fraction' if change else 'class_fraction'
    )
    request: dict[str, Any] = dict(DEFAULT_REQUEST[options.dataset])
    if options.classes or options.change_fraction:
        request = {
            'classes': options.classes,
            'min_fraction': options.min_fraction,
            'change_fraction': options.change_fraction,
        }
    elif options.min_fraction is not None:
        request['min_fraction'] = options.min_fraction
    work = Path(options.work_dir) / options.dataset

    if options.alignment_guidance and not options.guide:
        parser.error('--alignment-guidance needs --guide')
    judge, judge_record = (
        load_judge(Path(options.judge), change) if options.judge else (None, None)
    )
    if options.guide and judge_record is not None:
        _, guide_record = load_judge(Path(options.guide), change)
        if guide_record['sha256'] == judge_record['sha256']:
            parser.error(
                '--guide is the judge: train a guide with judge.py --role guide'
            )

    if options.checkpoint is None:
        if options.vae_checkpoint is None:
            parser.error('give --vae-checkpoint (or a trained --checkpoint)')
        checkpoint, training = train(options, work)
    else:
        checkpoint, training = Path(options.checkpoint), {}
    model = LatentDiffusion.from_checkpoint(checkpoint)
    training.setdefault('condition', model.hparams['condition'])
    training.setdefault('condition_dropout', model.hparams['condition_dropout'])
    training.setdefault('block_out_channels', list(model.hparams['block_out_channels']))
    plan = make_plan(
        model.hparams['condition'],
        model_class_names(model),
        model.training_fractions,
        options.num_samples,
        3.0,
        **request,
    )
    assert plan is not None
    settings: dict[str, Any] = {
        'num_samples': options.num_samples,
        'sampler': options.sampler,
        'steps': options.steps,
        'batch_size': options.batch_size,
        'seed': options.seed,
    }
    plan_rows: list[tuple[float | None, float]] = [(None, 0.0)]
    for scale in options.guidance_scales:
        plan_rows.append((scale, 0.0))
        if options.alignment_guidance:
            plan_rows.append((scale, options.alignment_guidance))
    reference = (
        reference_datamodule(options.dataset, options.root)
        if judge is not None
        else None
    )
    regimes = []
    for scale, align in plan_rows:
        name = regime_name({'guidance_scale': scale, 'alignment_guidance': align})
        out = work / f'{name}_{options.seed}'
        start = time.perf_counter()
        steering: dict[str, Any] = (
            {'guide': Path(options.guide) / 'judge.ckpt', 'alignment_guidance': align}
            if align
            else {}
        )
        if scale is None:
            generate(checkpoint, out, **settings)
        else:
            generate(
                checkpoint, out, guidance_scale=scale, **request, **steering, **settings
            )
        row = score(out, plan, time.perf_counter() - start, scale, align)
        if judge is not None:
            row['judge'] = judge_scores(
                out,
                reference,
                judge,
                work / f'fidelity_{name}',
                plan.record.get('classes') or [],
            )
        print(json.dumps(row))
        regimes.append(row)
    base = regimes[0]['hit_rate']
    best = max(regimes[1:], key=lambda r: r['hit_rate'])
    ratio = best['hit_rate'] / base if base > 0 else None
    summary = (
        f'{best["hit_rate"]:.1%} at {regime_label(best)} vs '
        f'{base:.1%} unconditional ('
        + (f'{ratio:.1f}x' if ratio is not None else 'unconditional rate is 0')
        + ').'
    )
    result = {
        'command': 'python ' + ' '.join(sys.argv),
        'dataset': options.dataset,
        'request': plan.record,
        'sampler': options.sampler,
        'steps': options.steps,
        'num_samples': options.num_samples,
        'seed': options.seed,
        'training': training,
        'real': real_rates(plan),
        'regimes': regimes,
        'judge': None
        if judge_record is None
        else {
            'path': options.judge,
            'sha256': judge_record['sha256'],
            'real_score': judge_record['real_score'],
        },
        'guide': options.guide,
        'best_ratio': ratio,
        'summary': summary,
        'machine': machine(),
    }
    results.mkdir(parents=True, exist_ok=True)
    stem = f'conditional_{options.dataset}'
    (results / f'{stem}.json').write_text(json.dumps(result, indent=2) + '\n')
    plot(result, regime_folders(work, result), results / f'{stem}.png')
    (results / f'{stem}.md').write_text(markdown(result, f'{stem}.png'))
    print(markdown(result, f'{stem}.png'))


if __name__ == '__main__':
    main()
