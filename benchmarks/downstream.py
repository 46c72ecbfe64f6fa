"""Does generated data help? Train TorchGeo's stock smp baselines under several regimes.

Regimes (each trained with torchgeo.tasks.SemanticSegmentation or ChangeDetection, smp U-Net
with a ResNet-18 encoder, weights=None, and evaluated on purely real test data):

  real              real training data only
  real+specdm       real + every SpecDM pair (--specdm-synthetic)
  real+baseline     real + every single-stream LDM pair (--baseline-synthetic)
  real+specdm-filt  real + SpecDM pairs whose alignment >= the median score, or above the
                    lowest score when the median is the lowest (run
                    `specdm evaluate` first; it stores the scores in the manifest)
  real+rebalanced   real + every pair of a class-rebalanced SpecDM folder, made by
                    `specdm sample --rebalance` (--rebalanced-synthetic, default
                    outputs/rebalanced_D/generated)
  real+targeted     real + every pair of a SpecDM folder sampled for a request
                    (`specdm sample --classes C --min-fraction F` or --change-fraction
                    LO:HI; --targeted-synthetic, default outputs/targeted_D/generated)
  pretrain-finetune pre-train on SpecDM pairs, then fine-tune on real (FreeMask's 2nd mode)
  synthetic-only    train on SpecDM pairs only, test on real

`--ratios` adds real+specdm runs whose epochs hold a synthetic:real ratio (0.5 = half as many
synthetic as real samples), at the largest real-data fraction. Each configuration runs for
every real-data fraction and seed; the table gives mean +- std over seeds. Segmentation
reports mIoU and OA, plus a second table of the per-class IoU (one column per class; '-'
where no run of that row scored the class: the class is ignored, or it occurs in neither
the predictions nor the test masks); change detection reports F1, precision, recall and
IoU of the change class. The JSON keeps every run's metrics, per-class IoU included.

The real data uses the demo's settings (torchgeo_specdm.demo.DEMO_DATA: 32 px simulator
scenes and OSCD patches, 16 px Salinas-A patches; --size and --patch-size override them), so
the synthetic folders default to the ones `specdm demo` writes:
  specdm demo --dataset D --out outputs/demo_D                                  (SpecDM)
  specdm demo --dataset D --architecture single_stream --out outputs/demo_D_single_stream
Regimes whose data is missing are skipped with a message.

Examples:
  python benchmarks/downstream.py --dataset oscd --root ../shared/data/oscd --test-root HELD_OUT --quick
  python benchmarks/downstream.py --dataset simulated-segmentation --fractions 0.1 0.25 1 --seeds 0 1 2
"""

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Literal

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt
import torch
from lightning.pytorch import Trainer, seed_everything
from torch.utils.data import Subset
from torchgeo.datamodules import NonGeoDataModule

from torchgeo_specdm.datamodules import SyntheticMixDataModule
from torchgeo_specdm.datamodules.registry import DATASET_NAMES, demo_datamodule
from torchgeo_specdm.datasets import SyntheticDataset
from torchgeo_specdm.datasets.patches import ScenePatches
from torchgeo_specdm.evaluation.judges import (
    held_out_split,
    make_downstream_task,
    score_downstream,
)
from torchgeo_specdm.tasks.utils import infer_data_spec

RESULTS = Path(__file__).parent / 'results'
#: Per-class IoU keys of segmentation metrics start with this.
PER_CLASS = 'iou/'
#: Single-scene datasets, where a real-data fraction keeps that share of the labelled
#: pixels of the train block (the classic small-label setting).
LABEL_FRACTION_DATASETS = ('salinas-a',)
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
#: Regimes that train on real plus every pair (or a ratio) of one generated folder.
MIXED_REGIMES = tuple(
    regime for regime in SYNTHETIC_NEEDED if regime.startswith('real+')
)


class LimitedDataModule(NonGeoDataModule):
    """A datamodule whose training split keeps a seeded fraction of the real data."""

    def __init__(
        self, datamodule: NonGeoDataModule, fraction: float, seed: int
    ) -> None:
        super().__init__(
            SyntheticDataset, datamodule.batch_size, datamodule.num_workers
        )
        self.real = datamodule
        self.fraction = fraction
        self.seed = seed
        for name in (
            'mean',
            'std',
            'aug',
            'train_aug',
            'bands',
            'num_classes',
            'class_names',
            'collate_fn',
        ):
            if hasattr(datamodule, name):
                setattr(self, name, getattr(datamodule, name))

    def setup(self, stage: str) -> None:
        self.real.setup(stage)
        for name in ('val_dataset', 'test_dataset', 'train_dataset'):
            setattr(self, name, getattr(self.real, name, None))
        if stage == 'fit' and self.fraction < 1:
            self.train_dataset = limit(
                self.real.train_dataset, self.fraction, self.seed
            )


def limit(dataset: Any, fraction: float, seed: int) -> Any:
    generator = torch.Generator().manual_seed(seed)
    if isinstance(dataset, ScenePatches):  # scene datasets: keep whole scenes
        keep = max(1, round(fraction * len(dataset.scenes)))
        order = torch.randperm(len(dataset.scenes), generator=generator)[:keep]
        return ScenePatches(
            [dataset.scenes[i] for i in order], dataset.patch_size, dataset.num_patches
        )
    keep = max(1, round(fraction * len(dataset)))
    return Subset(
        dataset, torch.randperm(len(dataset), generator=generator)[:keep].tolist()
    )


class SyntheticOnlyDataModule(LimitedDataModule):
    """Training on generated pairs only; validation and test stay real."""

    def __init__(self, datamodule: NonGeoDataModule, synthetic_root: str) -> None:
        super().__init__(datamodule, 1.0, 0)
        self.synthetic_root = synthetic_root

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage == 'fit':
            self.train_dataset = SyntheticDataset(self.synthetic_root)


def fit(task: Any, datamodule: NonGeoDataModule, epochs: int, work: Path) -> None:
    Trainer(
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        limit_val_batches=2,  # torchgeo's plateau scheduler needs a val_loss
        default_root_dir=work,
    ).fit(task, datamodule=datamodule)


def run(
    options: argparse.Namespace,
    regime: str,
    fraction: float,
    seed: int,
    ratio: float | None,
    roots: dict[str, str],
) -> tuple[dict[str, float], str]:
    seed_everything(seed)
    overrides = data_overrides(options)
    real_share = fraction  # of the training samples
    if options.dataset in LABEL_FRACTION_DATASETS:
        # One scene: the fraction thins its train block's labelled pixels instead.
        overrides |= {'label_fraction': fraction, 'seed': seed}
        real_share = 1.0
    real = demo_datamodule(options.dataset, options.root, options.batch_size, overrides)
    limited = LimitedDataModule(real, real_share, seed)
    limited.setup('fit')
    spec = infer_data_spec(limited)
    change = spec['num_images'] == 2
    task = make_downstream_task(
        spec['in_channels'],
        spec['num_classes'],
        change,
        lr=options.lr,
        ignore_index=getattr(real, 'ignore_index', None),
    )
    work = Path(options.work_dir) / f'{regime}-{fraction}-{seed}'
    epochs = options.epochs
    if regime == 'real':
        fit(task, LimitedDataModule(real, real_share, seed), epochs, work)
    elif regime in MIXED_REGIMES:
        root = roots[SYNTHETIC_NEEDED[regime]]
        threshold = (
            options.alignment_threshold if regime == 'real+specdm-filt' else None
        )
        share: float | Literal['append'] = (
            'append' if ratio is None else ratio / (1 + ratio)
        )
        fit(
            task,
            SyntheticMixDataModule(
                LimitedDataModule(real, real_share, seed), root, share, threshold
            ),
            epochs,
            work,
        )
    elif regime == 'pretrain-finetune':
        fit(
            task,
            SyntheticOnlyDataModule(real, roots['specdm']),
            epochs,
            work / 'pretrain',
        )
        fit(task, LimitedDataModule(real, real_share, seed), epochs, work / 'finetune')
    elif regime == 'synthetic-only':
        fit(task, SyntheticOnlyDataModule(real, roots['specdm']), epochs, work)
    test_module = demo_datamodule(
        options.dataset,
        options.test_root or options.root,
        options.batch_size,
        data_overrides(options),
    )
    # Without a held-out root, the split of --root that has no test labels falls
    # back to its validation split.
    split = 'test' if options.test_root else held_out_split(test_module)
    return score_downstream(task, test_module, split), split


def scored_on(options: argparse.Namespace, runs: list[dict[str, Any]]) -> str:
    """The real split the runs scored, in words."""
    splits = ' and '.join(sorted({entry['split'] for entry in runs})) or 'no'
    source = options.test_root or 'the real data'
    return f'the {splits} split of {source}'


def data_overrides(options: argparse.Namespace) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if options.size is not None and options.dataset.startswith('simulated'):
        kwargs['size'] = options.size
    if options.patch_size is not None and not options.dataset.startswith('simulated'):
        kwargs['patch_size'] = options.patch_size
    return kwargs


def alignment_threshold(root: str) -> float | None:
    """The median alignment score, raised when it would keep every pair.

    Change alignment (F1 of the change class) is 0 for most pairs, so the median
    is often the lowest score; the filter then keeps the pairs above that lowest
    score instead.
    """
    scores = [s.get('alignment') for s in SyntheticDataset(root).samples]
    if not scores or any(score is None for score in scores):
        return None
    values = torch.tensor(scores, dtype=torch.float64)
    threshold = float(values.median())
    above = values[values > values.min()]
    if threshold <= float(values.min()) and len(above):
        threshold = float(above.min())
    return threshold


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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument('--dataset', choices=DATASET_NAMES, required=True)
    parser.add_argument('--root', help='real dataset root (oscd, segmunich)')
    parser.add_argument(
        '--test-root',
        help='a held-out root with test labels (OSCD: a "Test Labels" folder), never seen in training',
    )
    parser.add_argument('--specdm-synthetic', help='SpecDM generated folder')
    parser.add_argument(
        '--baseline-synthetic', help='single-stream LDM generated folder'
    )
    parser.add_argument(
        '--rebalanced-synthetic',
        help='SpecDM generated folder made by `specdm sample --rebalance` '
        '(default: outputs/rebalanced_DATASET/generated)',
    )
    parser.add_argument(
        '--targeted-synthetic',
        help='SpecDM generated folder made by `specdm sample` with a request '
        '(--classes or --change-fraction; default: outputs/targeted_DATASET/generated)',
    )
    parser.add_argument('--regimes', nargs='+', choices=REGIMES, default=list(REGIMES))
    parser.add_argument(
        '--fractions',
        nargs='+',
        type=float,
        default=[0.1, 0.25, 1.0],
        help='shares of the real training data (salinas-a: of the labelled pixels '
        'of its train block)',
    )
    parser.add_argument(
        '--ratios',
        nargs='*',
        type=float,
        default=[0.5, 1, 2, 5],
        help='synthetic:real ratios at the largest fraction',
    )
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--epochs', type=int, default=20)
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
        '--quick',
        action='store_true',
        help='one fraction (1.0), one seed, no ratio sweep, 4 epochs',
    )
    parser.add_argument('--out', default=str(RESULTS))
    parser.add_argument(
        '--name',
        help='suffix of the results files (downstream_DATASET_NAME.*), so that a '
        'focused run does not replace the full table',
    )
    parser.add_argument('--work-dir', default='outputs/downstream')
    options = parser.parse_args()
    if options.quick:
        options.fractions, options.seeds, options.ratios, options.epochs = (
            [1.0],
            [0],
            [],
            4,
        )

    base = Path('outputs') / f'demo_{options.dataset}'
    defaults = {
        'specdm': f'{base}/generated',
        'baseline': f'{base}_single_stream/generated',
        'rebalanced': f'outputs/rebalanced_{options.dataset}/generated',
        'targeted': f'outputs/targeted_{options.dataset}/generated',
    }
    roots = {
        key: getattr(options, f'{key}_synthetic') or default
        for key, default in defaults.items()
    }
    available = {
        key: (Path(root) / 'manifest.json').is_file() for key, root in roots.items()
    }
    options.alignment_threshold = (
        alignment_threshold(roots['specdm']) if available['specdm'] else None
    )
    plan = []
    for regime in options.regimes:
        needs = SYNTHETIC_NEEDED.get(regime)
        if needs and not available[needs]:
            print(
                f'skipping {regime}: no generated dataset at {roots[needs]} (pass --{needs}-synthetic)'
            )
            continue
        if regime == 'real+specdm-filt' and options.alignment_threshold is None:
            print(
                f'skipping {regime}: {roots["specdm"]} has no alignment scores (run specdm evaluate)'
            )
            continue
        plan += [
            (regime, fraction, seed, None)
            for fraction in options.fractions
            for seed in options.seeds
        ]
    if available['specdm']:
        plan += [
            ('real+specdm', max(options.fractions), seed, ratio)
            for ratio in options.ratios
            for seed in options.seeds
        ]

    runs = []
    start = time.perf_counter()
    for number, (regime, fraction, seed, ratio) in enumerate(plan, 1):
        label = f'{regime} fraction={fraction} seed={seed}' + (
            f' ratio={ratio}' if ratio is not None else ''
        )
        print(
            f'[{number}/{len(plan)}] {label} ({(time.perf_counter() - start) / 60:.1f} min so far)',
            flush=True,
        )
        began = time.perf_counter()
        result, split = run(options, regime, fraction, seed, ratio, roots)
        runs.append(
            {
                'regime': regime,
                'fraction': fraction,
                'seed': seed,
                'ratio': ratio,
                'split': split,
                'metrics': result,
                'seconds': time.perf_counter() - began,
            }
        )
        print('   ', ', '.join(f'{k}={v:.3f}' for k, v in result.items()), flush=True)

    change = options.dataset in ('oscd', 'simulated-change')
    keys = ['f1', 'precision', 'recall', 'iou'] if change else ['miou', 'oa']
    rows = summarise(runs)
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
    if not change and class_keys:
        table += [
            '',
            'Per-class IoU (mean +- std over the seeds that scored the class):',
            '',
            *markdown_table(
                rows, class_keys, [k.removeprefix(PER_CLASS) for k in class_keys]
            ),
        ]
    minutes = (time.perf_counter() - start) / 60
    machine = f'{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}'
    header = [
        f'# Downstream benchmark: {options.dataset}',
        '',
        f'Command: `python {" ".join(sys.argv)}`',
        '',
        f'Machine: {machine}; wall time {minutes:.1f} min; scored on {scored_on(options, runs)}.',
        '',
    ]
    (out / f'{stem}.md').write_text('\n'.join(header + table) + '\n')
    (out / f'{stem}.json').write_text(
        json.dumps(
            {
                'command': 'python ' + ' '.join(sys.argv),
                'machine': machine,
                'minutes': minutes,
                'roots': roots,
                'alignment_threshold': options.alignment_threshold,
                'runs': runs,
                'summary': rows,
            },
            indent=2,
        )
        + '\n'
    )
    figure, axis = plt.subplots(figsize=(6, 4))
    for regime in dict.fromkeys(row['regime'] for row in rows):
        points = sorted(
            (row['fraction'], row[keys[0]]['mean'], row[keys[0]]['std'])
            for row in rows
            if row['regime'] == regime and row['ratio'] is None
        )
        if points:
            xs, ys, es = zip(*points)
            axis.errorbar(xs, ys, yerr=es, marker='o', capsize=3, label=regime)
    axis.set_xlabel('fraction of the real training data')
    axis.set_ylabel(keys[0])
    axis.set_title(f'{options.dataset}: {keys[0]} on real test data')
    axis.legend(fontsize=7)
    figure.savefig(out / f'{stem}.png', dpi=80, bbox_inches='tight')
    plt.close(figure)
    print('\n'.join(table))
    print(f'wrote {out / stem}.{{json,md,png}} in {minutes:.1f} min')


if __name__ == '__main__':
    main()
