"""Does generated data help? Stock TorchGeo baselines under an equal-steps protocol.

Every regime of one comparison trains TorchGeo's stock smp U-Net (ResNet-18 encoder,
weights=None; ``SemanticSegmentation`` or ``ChangeDetection``) for the same number of
optimizer steps (``--steps``), with the same batch size and the same learning-rate
schedule (AdamW, cosine decay over the steps: it depends on the step alone, not on the
size of the training set). Only the data differs. No checkpoint is selected: the
model after the last step is scored, once, on a real test split that no generator,
judge or downstream model saw. Change detectors get one decision threshold each, the
one with the best F1 on the real validation split (never the test split), chosen the
same way for every regime. Regimes:

  real              real training data only
  real+specdm       real + every SpecDM pair (--specdm-synthetic) in the data mix
  real+baseline     real + every single-stream LDM pair (--baseline-synthetic)
  real+specdm-filt  real + the SpecDM pairs whose alignment, scored by the fixed
                    judge, is at least its median (or above the lowest score when
                    the median is the lowest)
  real+rebalanced   real + a `specdm sample --rebalance` folder (--rebalanced-synthetic)
  real+targeted     real + a folder sampled for a request (--targeted-synthetic)
  pretrain-finetune half the steps on SpecDM pairs, then half on real data
  synthetic-only    SpecDM pairs only, scored on real test data

`--ratios` adds real+specdm runs whose epochs hold a synthetic:real ratio, at the
largest fraction; a ratio changes the mix, never the step count.

The fixed judge (benchmarks/judge.py; trained here first if --judge has none) is one
real-trained model per dataset. It scores every generated folder with the same
yardstick: alignment, relative to the judge's alignment on real pairs, KID and
precision / recall / density / coverage in its encoder features. Its path, sha256
and test score are in the results.

Splits: the simulator's test scenes are drawn from their own seeds; OSCD tests on
the cities of --test-root (a root with a "Test Labels" folder, made by
benchmarks/heldout_oscd.py), which are removed from --root's training and
validation cities; the generators must be trained without them too
(benchmarks/generators.py). Each band of each OSCD city and date is matched to the
dataset mean and std (OSCDPatchDataModule(match_scene_statistics=True)): on raw
values the detectors read the radiometric shift between two acquisitions of an
unseen city as change (--raw-scene-statistics restores them).

Label leak: at a fraction below 1, real only keeps a share of the labels. Generators
trained on every label would hand the mixed regimes labels that real only never saw.
With --pool-seed, each fraction's labelled pool is one draw, the same for every
training seed, and the generators and their guide learn from that pool only
(benchmarks/alignment.py and benchmarks/judge.py --role guide take the same
--fraction and --pool-seed).

For each regime against real only, at each fraction, the comparisons give the mean
paired difference over seeds with a 95 % t interval (scipy.stats); "helps" or
"hurts" is written only where the interval excludes 0. `--against A:B` pairs two
other regimes of the run the same way (what the second source of A adds to B).

Examples:
  python benchmarks/downstream.py --dataset oscd --root ../shared/data/oscd_full \
      --test-root outputs/oscd_full_test --quick
  python benchmarks/downstream.py --dataset simulated-segmentation --fractions 0.1 0.25 1 \
      --seeds 0 1 2 3 4
"""

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Literal

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt
import torch
from common import machine
from generators import labelled_pool, training_split
from judge import (
    CHANGE_MODELS,
    JUDGE_STEPS,
    fit_steps,
    heldout_datamodule,
    load_judge,
    real_datamodule,
    reference_datamodule,
    train_judge,
)
from label_pool import LimitedDataModule, share_and_overrides
from lightning.pytorch import seed_everything
from scipy import stats
from torchgeo.datamodules import NonGeoDataModule

from torchgeo_specdm.datamodules import SyntheticMixDataModule
from torchgeo_specdm.datamodules.registry import DATASET_NAMES
from torchgeo_specdm.datasets import SyntheticDataset
from torchgeo_specdm.demo import run_demo
from torchgeo_specdm.evaluation.judges import (
    calibrate_change_threshold,
    downstream_task_for,
    score_downstream,
)
from torchgeo_specdm.evaluation.report import evaluate_synthetic
from torchgeo_specdm.sample import file_sha256

RESULTS = Path(__file__).parent / 'results'
#: Per-class IoU keys of segmentation metrics start with this.
PER_CLASS = 'iou/'
CHANGE_DATASETS = ('oscd', 'simulated-change')
REGIMES = (
    'real',
    'real+specdm',
    'real+baseline',
    'real+specdm-filt',
    'real+rebalanced',
    'real+targeted',
    'pretrain-finetune',
    'synthetic-only',
)

#: The generated folder (key of ``roots``) each regime needs.
SYNTHETIC_NEEDED = {
    'real+specdm': 'specdm',
    'real+baseline': 'baseline',
    'real+specdm-filt': 'specdm',
    'real+rebalanced': 'rebalanced',
    'real+targeted': 'targeted',
    'pretrain-finetune': 'specdm',
    'synthetic-only': 'specdm',
}
#: Optimizer steps of every regime per dataset family (--steps overrides).
STEPS = {'oscd': 300, 'simulated-segmentation': 200, 'salinas-a': 300}
QUICK_STEPS = 100
QUICK_JUDGE_STEPS = 300
#: Minutes of each generator ``--quick`` trains when no generated folder is given.
QUICK_GENERATOR_MINUTES = 1.5
QUICK_GENERATOR_SAMPLES = 128
PROTOCOL = 'equal-steps'


class SyntheticOnlyDataModule(LimitedDataModule):
    """Training on generated pairs only; validation and test stay real."""

    def __init__(self, datamodule: NonGeoDataModule, synthetic_root: str) -> None:
        super().__init__(datamodule, 1.0, 0)
        self.synthetic_root = synthetic_root

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage == 'fit':
            self.train_dataset = SyntheticDataset(self.synthetic_root)


def real_share_and_overrides(
    options: argparse.Namespace, fraction: float, seed: int
) -> tuple[float, dict[str, Any], int]:
    """The share of training samples to keep, the datamodule overrides, the draw's seed.

    The labelled pool is drawn with ``--pool-seed`` when given (one pool for every
    training seed, the one the generators were trained on), else with the seed.
    """
    draw = seed if options.pool_seed is None else options.pool_seed
    share, overrides = share_and_overrides(options.dataset, fraction, draw)
    return share, data_overrides(options) | overrides, draw


def run(
    options: argparse.Namespace,
    regime: str,
    fraction: float,
    seed: int,
    ratio: float | None,
    roots: dict[str, str],
) -> tuple[dict[str, float], int, dict[str, Any]]:
    """Train one regime for ``options.steps`` optimizer steps and score it.

    Returns:
        the test metrics, the optimizer steps taken, and the training data's
        description (samples, cities).
    """
    seed_everything(seed)
    real_share, overrides, draw = real_share_and_overrides(options, fraction, seed)
    real = real_datamodule(
        options.dataset, options.root, options.test_root, options.batch_size, overrides
    )
    limited = LimitedDataModule(real, real_share, draw)
    task = downstream_task_for(
        limited,
        lr=options.lr,
        schedule='steps',
        change_loss=options.change_loss,
        pos_weight=options.pos_weight,
        change_model=options.change_model,
    )
    work = Path(options.work_dir) / f'{regime}-{fraction}-{seed}-{ratio}'
    steps = options.steps
    if regime == 'real':
        taken = fit_steps(task, limited, steps, work)
    elif regime.startswith('real+'):
        threshold = (
            options.alignment_threshold if regime == 'real+specdm-filt' else None
        )
        share: float | Literal['append'] = (
            'append' if ratio is None else ratio / (1 + ratio)
        )
        mixed = SyntheticMixDataModule(
            limited, roots[SYNTHETIC_NEEDED[regime]], share, threshold
        )
        taken = fit_steps(task, mixed, steps, work)
    elif regime == 'pretrain-finetune':
        pretrain = SyntheticOnlyDataModule(real, roots['specdm'])
        taken = fit_steps(task, pretrain, steps // 2, work / 'pretrain')
        taken += fit_steps(task, limited, steps - steps // 2, work / 'finetune')
    else:
        taken = fit_steps(
            task, SyntheticOnlyDataModule(real, roots['specdm']), steps, work
        )
    cities = getattr(real, 'train_cities', None)
    if cities is not None and regime != 'synthetic-only':
        kept = getattr(limited.train_dataset, 'scene_indices', range(len(cities)))
        cities = [cities[i] for i in kept]
    data = {
        'real_samples': 0 if regime == 'synthetic-only' else limited.train_samples,
        'train_cities': None if regime == 'synthetic-only' else cities,
        'pool_seed': draw,
    }
    if options.dataset in CHANGE_DATASETS:
        data['change_threshold'] = calibrate_change_threshold(task, real)
    test_module, split = heldout_datamodule(
        options.dataset, options.root, options.test_root, options.batch_size, overrides
    )
    return score_downstream(task, test_module, split), taken, data | {'split': split}


def run_settings(
    options: argparse.Namespace, regime: str, roots: dict[str, str], judge_sha256: str
) -> dict[str, Any]:
    """Everything a finished run depends on besides its regime, fraction and seed."""
    needs = SYNTHETIC_NEEDED.get(regime)
    manifest = Path(roots[needs]) / 'manifest.json' if needs else None
    return {
        'dataset': options.dataset,
        'root': options.root,
        'test_root': options.test_root,
        'steps': options.steps,
        'batch_size': options.batch_size,
        'lr': options.lr,
        'change_loss': options.change_loss,
        'pos_weight': options.pos_weight,
        'change_model': options.change_model,
        'pool_seed': options.pool_seed,
        'overrides': data_overrides(options),
        'judge_sha256': judge_sha256,
        'synthetic_manifest_sha256': file_sha256(manifest) if manifest else None,
        'alignment_threshold': (
            options.alignment_threshold if regime == 'real+specdm-filt' else None
        ),
    }


def run_record_path(
    work_dir: Path,
    regime: str,
    fraction: float,
    seed: int,
    ratio: float | None,
    pool_seed: int | None,
) -> Path:
    """Where one run's result is kept, so that a rerun can reuse it.

    Runs of two labelled pools (``--pool-seed``) get two files: one work folder
    holds both without one overwriting the other.

    Args:
        work_dir: the ``--work-dir`` folder.
        regime: the run's regime.
        fraction: its share of the real training data.
        seed: its training seed.
        ratio: its synthetic:real ratio (None: all generated pairs).
        pool_seed: the seed of its labelled pool (None: a new draw per seed).

    Returns:
        the run's JSON file.
    """
    pool = '' if pool_seed is None else f'-pool{pool_seed}'
    return work_dir / f'{regime}-{fraction}-{seed}-{ratio}{pool}.json'


def finished_run(path: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """A run an earlier invocation finished with the same settings, if any."""
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    if saved.get('settings') != json.loads(json.dumps(settings)):
        return None
    return dict(saved['run'])


def write_atomically(path: Path, record: dict[str, Any]) -> None:
    """Write a JSON file whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix('.json.tmp')
    temporary.write_text(json.dumps(record, indent=2) + '\n')
    os.replace(temporary, path)


def data_overrides(options: argparse.Namespace) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if options.size is not None and options.dataset.startswith('simulated'):
        kwargs['size'] = options.size
    if options.patch_size is not None and not options.dataset.startswith('simulated'):
        kwargs['patch_size'] = options.patch_size
    if options.raw_scene_statistics and options.dataset == 'oscd':
        kwargs['match_scene_statistics'] = False
    return kwargs


def alignment_threshold(root: str) -> float | None:
    """The median alignment score, raised when it would keep every pair.

    Change alignment (F1 of the change class) is 0 for many pairs, so the median
    is often the lowest score; the filter then keeps the pairs above that lowest
    score instead. None when the pairs hold no scores, or all the same one: the
    judge then cannot rank them, and a filter would keep every pair.
    """
    scores = [s.get('alignment') for s in SyntheticDataset(root).samples]
    if not scores or any(score is None for score in scores):
        return None
    values = torch.tensor(scores, dtype=torch.float64)
    if bool((values == values[0]).all()):
        return None
    threshold = float(values.median())
    above = values[values > values.min()]
    if threshold <= float(values.min()) and len(above):
        threshold = float(above.min())
    return threshold


def quick_generators(options: argparse.Namespace) -> None:
    """Train small SpecDM and single-stream generators for ``--quick``.

    Only when neither generated folder is given. They learn from the comparison's
    labelled pool of its largest fraction, never from its test data, and land in
    ``WORK/generators/ARCHITECTURE/generated`` (reused when already there).
    """
    if options.specdm_synthetic or options.baseline_synthetic:
        return
    fraction = max(options.fractions)
    if fraction < 1 and options.pool_seed is None:
        raise SystemExit(
            f'--quick --fractions {fraction}: the generators learn from one labelled '
            'pool; pass --pool-seed so that real only trains on the same one'
        )
    data_kwargs = training_split(options.dataset, options.test_root) | labelled_pool(
        options.dataset, options.root, options.test_root, fraction, options.pool_seed
    )
    for key, architecture in (('specdm', 'two_stream'), ('baseline', 'single_stream')):
        out = Path(options.work_dir) / 'generators' / architecture
        if not (out / 'generated' / 'manifest.json').is_file():
            print(
                f'--quick: training a {QUICK_GENERATOR_MINUTES}-minute {architecture} '
                f'generator into {out}',
                flush=True,
            )
            run_demo(
                out,
                options.dataset,
                options.root,
                QUICK_GENERATOR_MINUTES,
                QUICK_GENERATOR_SAMPLES,
                data_kwargs=data_kwargs,
                architecture=architecture,  # type: ignore[arg-type]
                alignment_guidance=0.0,
            )
        setattr(options, f'{key}_synthetic', str(out / 'generated'))


def judge_generators(
    options: argparse.Namespace, judge: Any, roots: dict[str, str], keys: list[str]
) -> dict[str, Any]:
    """Score every generated folder with the one fixed judge.

    Stores each pair's alignment in its manifest (the filtered regime reads it)
    and returns, per folder, the alignment (also relative to the judge on real
    pairs), KID, precision / recall / density / coverage and the projected
    Fréchet distance.
    """
    scored = {}
    for key in keys:
        real = reference_datamodule(
            options.dataset,
            options.root,
            options.test_root,
            options.batch_size,
            data_overrides(options),
        )
        result = evaluate_synthetic(
            roots[key], real, Path(options.work_dir) / f'fidelity_{key}', judge
        )
        scored[key] = {
            'root': roots[key],
            'num_synthetic': result['num_synthetic'],
            'num_real_reference': result['num_real'],
            **{
                name: result.get(name)
                for name in ('alignment', 'kid', 'prdc', 'frechet')
            },
            'mean_class_spectrum_sam_degrees': result[
                'mean_class_spectrum_sam_degrees'
            ],
            'class_histogram_tv': result['class_histogram_tv'],
        }
    return scored


def summarise(
    runs: list[dict[str, Any]], keys: list[str] | None = None
) -> list[dict[str, Any]]:
    """Mean and std over seeds of each metric, per regime/fraction/ratio.

    Args:
        runs: the runs, each with 'regime', 'fraction', 'ratio' and 'metrics'.
        keys: the metrics to summarise, in order; ``None`` takes the union of the
            keys of all runs' metrics (per-class keys included).

    Returns:
        one row per group; a metric no run of the group has (or has as NaN, e.g.
        the IoU of a class absent from both predictions and masks) is left out
        of its row, and one that only some runs have is averaged over those
        (``n``).
    """
    if keys is None:
        keys = list(dict.fromkeys(k for entry in runs for k in entry['metrics']))
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for entry in runs:
        groups.setdefault(
            (entry['regime'], entry['fraction'], entry['ratio']), []
        ).append(entry)
    rows = []
    for (regime, fraction, ratio), entries in groups.items():
        row: dict[str, Any] = {
            'regime': regime,
            'fraction': fraction,
            'ratio': ratio,
            'seeds': len(entries),
        }
        for key in keys:
            found = [
                e['metrics'][key]
                for e in entries
                if key in e['metrics'] and not math.isnan(e['metrics'][key])
            ]
            if not found:
                continue
            values = torch.tensor(found, dtype=torch.float64)
            row[key] = {
                'mean': float(values.mean()),
                'std': float(values.std()) if len(values) > 1 else 0.0,
                'n': len(found),
            }
        rows.append(row)
    return rows


def paired_difference(differences: list[float]) -> dict[str, Any]:
    """Mean of paired differences with a 95 % t interval.

    Args:
        differences: one regime's metric minus real only's, one per seed.

    Returns:
        ``mean_difference``, ``ci95`` ([low, high], ``None`` for one seed) and
        ``reading``: 'helps' or 'hurts' only where the interval excludes 0.
    """
    values = torch.tensor(differences, dtype=torch.float64)
    mean = float(values.mean())
    if len(values) < 2:
        return {'mean_difference': mean, 'ci95': None, 'reading': 'one seed'}
    spread = float(values.std())
    if spread == 0:
        low = high = mean
    else:
        low, high = stats.t.interval(
            0.95, len(values) - 1, loc=mean, scale=spread / math.sqrt(len(values))
        )
    reading = (
        'helps' if low > 0 else 'hurts' if high < 0 else 'no measurable difference'
    )
    return {
        'mean_difference': mean,
        'ci95': [float(low), float(high)],
        'reading': reading,
    }


def comparisons(
    runs: list[dict[str, Any]],
    metrics: list[str],
    reference: str = 'real',
    regimes: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Each regime against a reference regime, paired by seed, per fraction and metric.

    Args:
        runs: the finished runs.
        metrics: the metrics to compare.
        reference: the regime subtracted (default: real only, at no ratio).
        regimes: the regimes to compare (default: all but the reference).

    Returns:
        one row per regime, fraction, ratio and metric.
    """
    real = {
        (entry['fraction'], entry['seed']): entry['metrics']
        for entry in runs
        if entry['regime'] == reference and entry['ratio'] is None
    }
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for entry in runs:
        if entry['regime'] != reference and (
            regimes is None or entry['regime'] in regimes
        ):
            groups.setdefault(
                (entry['regime'], entry['fraction'], entry['ratio']), []
            ).append(entry)
    rows = []
    for (regime, fraction, ratio), entries in groups.items():
        for metric in metrics:
            pairs = [
                (entry['seed'], entry['metrics'][metric] - real[key][metric])
                for entry in entries
                if (key := (fraction, entry['seed'])) in real
                and metric in entry['metrics']
                and metric in real[key]
                and not math.isnan(entry['metrics'][metric] - real[key][metric])
            ]
            if not pairs:
                continue
            rows.append(
                {
                    'regime': regime,
                    'fraction': fraction,
                    'ratio': ratio,
                    'metric': metric,
                    'seeds': [seed for seed, _ in pairs],
                    **paired_difference([difference for _, difference in pairs]),
                }
            )
    return rows


def against_pairs(given: list[str], planned: set[str]) -> list[tuple[str, str]]:
    """The --against pairs, checked against the planned regimes.

    Raises:
        SystemExit: if a pair is not REGIME:REFERENCE of two planned regimes.
    """
    pairs = []
    for pair in given:
        regime, _, reference = pair.partition(':')
        if regime not in planned or reference not in planned or regime == reference:
            raise SystemExit(
                f'--against {pair}: give REGIME:REFERENCE, two regimes of this run '
                f'({", ".join(sorted(planned))})'
            )
        pairs.append((regime, reference))
    return pairs


def markdown_table(
    rows: list[dict[str, Any]], keys: list[str], titles: list[str] | None = None
) -> list[str]:
    """A Markdown table of summary rows, '-' where a row lacks a metric.

    Args:
        rows: rows of :func:`summarise`.
        keys: the metrics, one column each.
        titles: column titles of the metrics (default: the keys).

    Returns:
        the table's lines.
    """
    table = [
        '| regime | real fraction | synthetic:real | seeds | '
        + ' | '.join(titles or keys)
        + ' |',
        '|' + ' --- |' * (4 + len(keys)),
    ]
    for row in rows:
        ratio = (
            'all'
            if row['ratio'] is None and row['regime'] != 'real'
            else ('-' if row['ratio'] is None else row['ratio'])
        )
        cells = [
            f'{row[k]["mean"]:.3f} +- {row[k]["std"]:.3f}' if k in row else '-'
            for k in keys
        ]
        table.append(
            f'| {row["regime"]} | {row["fraction"]} | {ratio} | {row["seeds"]} | '
            + ' | '.join(cells)
            + ' |'
        )
    return table


def comparison_table(
    rows: list[dict[str, Any]], reference: str = 'real only'
) -> list[str]:
    """The paired differences against a reference regime, as Markdown."""
    table = [
        f'| regime | real fraction | synthetic:real | metric | difference to {reference} | 95 % interval | seeds | reading |',
        '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ]
    for row in rows:
        interval = (
            '-'
            if row['ci95'] is None
            else f'[{row["ci95"][0]:+.3f}, {row["ci95"][1]:+.3f}]'
        )
        ratio = 'all' if row['ratio'] is None else row['ratio']
        table.append(
            f'| {row["regime"]} | {row["fraction"]} | {ratio} | {row["metric"]} | '
            f'{row["mean_difference"]:+.3f} | {interval} | {len(row["seeds"])} | '
            f'{row["reading"]} |'
        )
    return table


def generator_table(generators: dict[str, Any], judge: dict[str, Any]) -> list[str]:
    """Fidelity of each generated folder under the fixed judge, as Markdown."""
    table = [
        f'Every figure below comes from one judge (`{judge["path"]}`, sha256 '
        f'`{judge["sha256"][:12]}`, {judge["optimizer_steps"]} steps), whose own '
        f'score on the real test split is '
        + ', '.join(
            f'{k} {v:.3f}' for k, v in judge['real_score'].items() if '/' not in k
        )
        + '.',
        '',
        '| generated folder | pairs | alignment mean | judge on real pairs | relative to real | KID (N real / synthetic) | KID, two halves of the real set | precision | recall | density | coverage |',
        '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ]
    for key, entry in generators.items():
        alignment, kid, prdc = entry['alignment'], entry['kid'], entry['prdc']
        relative = alignment.get('relative')
        table.append(
            f'| {key} | {entry["num_synthetic"]} | {alignment["mean"]:.3f} | '
            f'{alignment["real_mean"]:.3f} | '
            + ('-' if relative is None else f'{relative:.2f}')
            + f' | {kid["mean"]:.4f} +- {kid["std"]:.4f} ({kid["n_real"]} / {kid["n_fake"]}) | '
            + (
                f'{halves["mean"]:.4f} +- {halves["std"]:.4f}'
                if (halves := kid.get('real_halves'))
                else '-'
            )
            + ' | '
            + ' | '.join(
                '-' if prdc[name] is None else f'{prdc[name]:.3f}'
                for name in ('precision', 'recall', 'density', 'coverage')
            )
            + ' |'
        )
    return table


def plot_differences(rows: list[dict[str, Any]], metric: str, path: Path) -> None:
    """Paired differences to real only with their 95 % intervals, per fraction."""
    shown = [row for row in rows if row['metric'] == metric and row['ci95']]
    figure, axis = plt.subplots(figsize=(7, 4))
    regimes = list(dict.fromkeys(row['regime'] for row in shown))
    fractions = sorted({row['fraction'] for row in shown})
    width = 0.8 / max(1, len(regimes))
    for number, regime in enumerate(regimes):
        for row in shown:
            if row['regime'] != regime or row['ratio'] is not None:
                continue
            x = fractions.index(row['fraction']) + (number - len(regimes) / 2) * width
            low, high = row['ci95']
            axis.errorbar(
                x,
                row['mean_difference'],
                yerr=[[row['mean_difference'] - low], [high - row['mean_difference']]],
                fmt='o',
                capsize=3,
                color=f'C{number}',
                label=regime if row['fraction'] == fractions[0] else None,
            )
    axis.axhline(0, color='black', linewidth=0.8)
    axis.set_xticks(range(len(fractions)), [str(f) for f in fractions])
    axis.set_xlabel('fraction of the real training data')
    axis.set_ylabel(f'{metric} minus real only (95 % interval)')
    axis.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.01, 1))
    figure.savefig(path, dpi=80, bbox_inches='tight')
    plt.close(figure)


def run_time_text(runs: int, run_minutes: float, reused: int, minutes: float) -> str:
    """Describe the wall time, counting runs that an earlier invocation trained.

    Args:
        runs: how many runs the table holds.
        run_minutes: the minutes those runs took to train, whenever they ran.
        reused: how many of them were read back from the work directory.
        minutes: wall time of this invocation.

    Returns:
        e.g. "wall time 0.4 min; the 30 runs trained in 71.2 min, 30 of them in
        an earlier invocation".
    """
    text = (
        f'wall time {minutes:.1f} min; the {runs} runs trained in {run_minutes:.1f} min'
    )
    if reused:
        text += f', {reused} of them in an earlier invocation'
    return text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument('--dataset', choices=DATASET_NAMES, required=True)
    parser.add_argument('--root', help='real dataset root (oscd, segmunich, salinas-a)')
    parser.add_argument(
        '--test-root',
        help='OSCD: a held-out root with a "Test Labels" folder; its cities are '
        'removed from --root and never train, validate or select anything',
    )
    parser.add_argument('--specdm-synthetic', help='SpecDM generated folder')
    parser.add_argument(
        '--baseline-synthetic', help='single-stream LDM generated folder'
    )
    parser.add_argument(
        '--rebalanced-synthetic',
        help='SpecDM generated folder made by `specdm sample --rebalance`',
    )
    parser.add_argument(
        '--targeted-synthetic',
        help='SpecDM generated folder made by `specdm sample` with a request',
    )
    parser.add_argument(
        '--extra-synthetic',
        nargs='+',
        default=[],
        metavar='NAME=DIR',
        help='more generated folders (e.g. guided or refined samples): each adds a '
        'regime real+NAME that trains on real + every pair of DIR',
    )
    parser.add_argument(
        '--judge',
        help='folder of the fixed judge (judge.ckpt + judge.json; default '
        'outputs/judges/DATASET, trained there first when missing)',
    )
    parser.add_argument(
        '--judge-steps',
        type=int,
        help='optimizer steps of a judge trained here (default: per dataset, '
        f'{", ".join(f"{k} {v}" for k, v in JUDGE_STEPS.items())})',
    )
    parser.add_argument('--regimes', nargs='+', choices=REGIMES, default=list(REGIMES))
    parser.add_argument(
        '--fractions',
        nargs='+',
        type=float,
        default=[0.1, 0.25, 1.0],
        help='shares of the real training data (oscd: of the training cities; '
        'salinas-a: of the labelled pixels of its train block)',
    )
    parser.add_argument(
        '--ratios',
        nargs='*',
        type=float,
        default=[],
        help='synthetic:real ratios at the largest fraction',
    )
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument(
        '--pool-seed',
        type=int,
        help='draw the real labelled pool of each fraction once, with this seed, for '
        'every training seed (the pool the generators were trained on: a '
        'comparison without label leak); default: a new draw per seed',
    )
    parser.add_argument(
        '--steps',
        type=int,
        help='optimizer steps of every regime (default: per dataset, '
        f'{", ".join(f"{k} {v}" for k, v in STEPS.items())})',
    )
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument(
        '--size', type=int, help="scene size of the simulators (default: the demo's)"
    )
    parser.add_argument(
        '--patch-size',
        type=int,
        help="patch size of OSCD and Salinas-A (default: the demo's)",
    )
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument(
        '--change-loss',
        choices=['dice', 'bce', 'focal', 'jaccard'],
        default='dice',
        help='loss of the change detectors (default: %(default)s)',
    )
    parser.add_argument(
        '--pos-weight', type=float, help="weight of the change class in the 'bce' loss"
    )
    parser.add_argument(
        '--raw-scene-statistics',
        action='store_true',
        help='OSCD: keep the raw values of each city and date (by default each band '
        'of each is matched to the dataset mean and std)',
    )
    parser.add_argument(
        '--change-model',
        choices=CHANGE_MODELS,
        default='unet',
        help='TorchGeo model of the change detectors and of a judge trained here: '
        'the early-fusion U-Net or a siamese one (default: %(default)s)',
    )
    parser.add_argument(
        '--quick',
        action='store_true',
        help=f'the largest fraction only, 2 seeds, {QUICK_STEPS} steps, no ratios; '
        f'a judge ({QUICK_JUDGE_STEPS} steps) and, without --specdm-synthetic and '
        f'--baseline-synthetic, two {QUICK_GENERATOR_MINUTES}-minute generators are '
        'trained here when missing',
    )
    parser.add_argument('--out', default=str(RESULTS))
    parser.add_argument(
        '--name',
        help='suffix of the results files (downstream_DATASET_NAME.*), so that a '
        'focused run does not replace the full table',
    )
    parser.add_argument(
        '--against',
        nargs='+',
        default=[],
        metavar='REGIME:REFERENCE',
        help='also pair REGIME against REFERENCE (two regimes of this run, e.g. '
        'real+a+b:real+a: what b adds to a), same seeds, 95 %% t interval',
    )
    parser.add_argument('--work-dir', default='outputs/downstream')
    options = parser.parse_args()
    if options.quick:
        options.fractions = [max(options.fractions)]
        options.seeds, options.ratios = options.seeds[:2], []
        options.steps = options.steps or QUICK_STEPS
        options.judge_steps = options.judge_steps or QUICK_JUDGE_STEPS
    options.steps = options.steps or STEPS.get(options.dataset, 400)
    change = options.dataset in CHANGE_DATASETS

    judge_dir = Path(options.judge or f'outputs/judges/{options.dataset}')
    if not (judge_dir / 'judge.json').is_file():
        print(f'training the fixed judge into {judge_dir}', flush=True)
        train_judge(
            options.dataset,
            options.root,
            options.test_root,
            judge_dir,
            options.judge_steps or JUDGE_STEPS.get(options.dataset, 900),
            options.batch_size,
            options.lr,
            change_model=options.change_model,
        )
    judge, judge_record = load_judge(judge_dir, change)
    if options.quick:
        quick_generators(options)

    roots = {
        key: getattr(options, f'{key}_synthetic')
        for key in ('specdm', 'baseline', 'rebalanced', 'targeted')
        if getattr(options, f'{key}_synthetic')
    }
    extra_regimes = []
    for entry in options.extra_synthetic:
        key, _, root = entry.partition('=')
        if not key or not root or key in roots or f'real+{key}' in REGIMES:
            raise SystemExit(
                f'--extra-synthetic {entry}: give NAME=DIR with a new NAME (not '
                f'{", ".join(sorted(set(roots) | set(SYNTHETIC_NEEDED.values())))})'
            )
        roots[key] = root
        SYNTHETIC_NEEDED[f'real+{key}'] = key
        extra_regimes.append(f'real+{key}')
    for key, root in roots.items():
        if not (Path(root) / 'manifest.json').is_file():
            raise SystemExit(f'--{key}-synthetic {root}: no manifest.json there')
    generators = judge_generators(options, judge, roots, list(roots))
    options.alignment_threshold = (
        alignment_threshold(roots['specdm']) if 'specdm' in roots else None
    )
    plan = []
    for regime in [*options.regimes, *extra_regimes]:
        needs = SYNTHETIC_NEEDED.get(regime)
        if needs and needs not in roots:
            print(f'skipping {regime}: no --{needs}-synthetic folder given')
            continue
        if regime == 'real+specdm-filt' and options.alignment_threshold is None:
            print(
                f'skipping {regime}: the judge gives every SpecDM pair the same '
                'alignment, so a filter would keep them all (real+specdm)'
            )
            continue
        plan += [
            (regime, fraction, seed, None)
            for fraction in options.fractions
            for seed in options.seeds
        ]
    if 'specdm' in roots:
        plan += [
            ('real+specdm', max(options.fractions), seed, ratio)
            for ratio in options.ratios
            for seed in options.seeds
        ]

    pairs = against_pairs(options.against, {regime for regime, *_ in plan})
    runs = []
    reused = 0
    start = time.perf_counter()
    for number, (regime, fraction, seed, ratio) in enumerate(plan, 1):
        label = f'{regime} fraction={fraction} seed={seed}' + (
            f' ratio={ratio}' if ratio is not None else ''
        )
        print(
            f'[{number}/{len(plan)}] {label} ({(time.perf_counter() - start) / 60:.1f} min so far)',
            flush=True,
        )
        saved = run_record_path(
            Path(options.work_dir), regime, fraction, seed, ratio, options.pool_seed
        )
        settings = run_settings(options, regime, roots, judge_record['sha256'])
        # A result kept under an earlier name (no pool suffix) counts if its settings match.
        legacy = run_record_path(
            Path(options.work_dir), regime, fraction, seed, ratio, None
        )
        entry = finished_run(saved, settings) or finished_run(legacy, settings)
        if entry is None:
            began = time.perf_counter()
            result, taken, data = run(options, regime, fraction, seed, ratio, roots)
            entry = {
                'regime': regime,
                'fraction': fraction,
                'seed': seed,
                'ratio': ratio,
                'pool_seed': data.pop('pool_seed'),
                'optimizer_steps': taken,
                'judge_sha256': judge_record['sha256'],
                'split': data.pop('split'),
                'data': data,
                'metrics': result,
                'seconds': time.perf_counter() - began,
            }
            write_atomically(saved, {'settings': settings, 'run': entry})
        else:
            print('    finished in an earlier invocation', flush=True)
            reused += 1
        runs.append(entry)
        result, taken = entry['metrics'], entry['optimizer_steps']
        print(
            f'    {taken} steps;',
            ', '.join(f'{k}={v:.3f}' for k, v in result.items() if '/' not in k),
            flush=True,
        )

    keys = ['f1', 'precision', 'recall', 'iou'] if change else ['miou', 'oa']
    rows = summarise(runs)
    compared = comparisons(runs, keys)
    against: list[dict[str, Any]] = [
        {
            'regime': regime,
            'reference': reference,
            'comparisons': comparisons(runs, keys, reference, [regime]),
        }
        for regime, reference in pairs
    ]
    stem = f'downstream_{options.dataset}' + ('_quick' if options.quick else '')
    if options.name:
        stem += f'_{options.name}'
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown_table(rows, keys)
    class_keys = list(
        dict.fromkeys(
            k for entry in runs for k in entry['metrics'] if k.startswith(PER_CLASS)
        )
    )
    minutes = (time.perf_counter() - start) / 60
    run_minutes = sum(entry['seconds'] for entry in runs) / 60
    splits = sorted({entry['split'] for entry in runs})
    header = [
        f'# Downstream benchmark: {options.dataset}',
        '',
        f'Command: `python {" ".join(sys.argv)}`',
        '',
        f'Machine: {machine()}; {run_time_text(len(runs), run_minutes, reused, minutes)}.',
        '',
        f'Protocol: {PROTOCOL}: every run takes {options.steps} optimizer steps '
        f'(batch {options.batch_size}, AdamW lr {options.lr}, cosine decay over the '
        'steps; pre-train then fine-tune takes half and half), no checkpoint '
        'selection'
        + (
            f', change detectors {options.change_model} with the '
            f'{options.change_loss} loss and the threshold with the best F1 on the '
            'real validation split'
            if change
            else ''
        )
        + (
            ', each band of each city and date '
            + (
                'as read (raw values)'
                if options.raw_scene_statistics
                else 'matched to the dataset mean and std'
            )
            if options.dataset == 'oscd'
            else ''
        )
        + f', scored once on the real {" and ".join(splits)} split'
        + (f' of {options.test_root}' if options.test_root else '')
        + '. '
        + (
            f'Labelled pool: one draw per fraction with seed {options.pool_seed} for '
            'every training seed.'
            if options.pool_seed is not None
            else 'Labelled pool: a new draw per fraction and seed.'
        ),
        '',
        '## Fixed judge and generated data',
        '',
        *generator_table(generators, judge_record),
        '',
        '## Test scores (mean +- std over seeds)',
        '',
    ]
    body = [
        *table,
        '',
        '## Paired differences to real only (same seed, 95 % t interval)',
        '',
        *comparison_table(compared),
    ]
    for pair in against:
        body += [
            '',
            (
                f'## Paired differences of {pair["regime"]} to '
                f'{pair["reference"]} (same seed, 95 % t interval)'
            ),
            '',
            *comparison_table(pair['comparisons'], pair['reference']),
        ]
    if not change and class_keys:
        body += [
            '',
            (
                'Per-class IoU (mean +- std over the seeds that scored the class; '
                'the mIoU averages the classes present in the test masks):'
            ),
            '',
            *markdown_table(
                rows, class_keys, [k.removeprefix(PER_CLASS) for k in class_keys]
            ),
        ]
    (out / f'{stem}.md').write_text(
        '\n'.join(header + body) + f'\n\n![paired differences]({stem}.png)\n'
    )
    (out / f'{stem}.json').write_text(
        json.dumps(
            {
                'command': 'python ' + ' '.join(sys.argv),
                'machine': machine(),
                'minutes': minutes,
                'run_minutes': run_minutes,
                'reused_runs': reused,
                'protocol': {
                    'name': PROTOCOL,
                    'max_steps': options.steps,
                    'batch_size': options.batch_size,
                    'lr': options.lr,
                    'change_loss': options.change_loss if change else None,
                    'pos_weight': options.pos_weight if change else None,
                    'change_model': options.change_model if change else None,
                    'scene_statistics': (
                        ('raw' if options.raw_scene_statistics else 'matched')
                        if options.dataset == 'oscd'
                        else None
                    ),
                    'schedule': 'AdamW, cosine decay to 0 over max_steps',
                    'pretrain_finetune': 'max_steps // 2 synthetic, the rest real',
                    'checkpoint': 'last step, no selection',
                    'change_threshold': 'best F1 on the real validation split'
                    if change
                    else None,
                    'test_root': options.test_root,
                    'pool_seed': options.pool_seed,
                    'pool': 'one draw per fraction (pool_seed) for every seed'
                    if options.pool_seed is not None
                    else 'a new draw per fraction and seed',
                },
                'judge': {
                    'path': judge_record['path'],
                    'sha256': judge_record['sha256'],
                    'real_score': judge_record['real_score'],
                    'optimizer_steps': judge_record['optimizer_steps'],
                    'seed': judge_record['seed'],
                },
                'generators': generators,
                'alignment_threshold': options.alignment_threshold,
                'runs': runs,
                'summary': rows,
                'comparisons': compared,
                'against': against,
            },
            indent=2,
        )
        + '\n'
    )
    plot_differences(compared, keys[0], out / f'{stem}.png')
    print('\n'.join(body))
    print(f'wrote {out / stem}.{{json,md,png}} in {minutes:.1f} min')


if __name__ == '__main__':
    main()
