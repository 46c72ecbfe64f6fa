"""SpecDM against the paper's single-stream LDM baseline, side by side, from two demo runs.

Run `specdm demo` twice on the same data and budget, at the same time so that both get
the same share of the machine:

    specdm demo --dataset oscd --root R --out outputs/ab/oscd_two_stream &
    specdm demo --dataset oscd --root R --architecture single_stream \\
        --out outputs/ab/oscd_single_stream

then tabulate them:

    python benchmarks/baseline_comparison.py outputs/ab/oscd_two_stream \\
        outputs/ab/oscd_single_stream --name oscd

Writes benchmarks/results/baseline_<name>.md and .json (the headline figures, and the
per-class mean-spectrum SAM of both runs against each real split where the runs' fidelity
reports have it), and copies each run's sample grid and spectra plot to
benchmarks/results/baseline_<name>/.
"""

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / 'results'
FIGURES = ('samples.png', 'spectra.png')


def load(folder: Path) -> dict[str, Any]:
    """A demo run's summary.

    Args:
        folder: the demo's output folder.

    Returns:
        its summary.json.
    """
    path = folder / 'summary.json'
    if not path.is_file():
        raise SystemExit(f'{path}: not found; give a folder written by specdm demo')
    summary: dict[str, Any] = json.loads(path.read_text())
    return summary


def class_angles(folder: Path) -> dict[str, dict[str, float | None]]:
    """Per-class mean-spectrum SAM of a run against each real split.

    Args:
        folder: the demo's output folder.

    Returns:
        reference ('validation', 'training' and, where alignment was scored,
        'training, alignment-filtered') to class name to degrees; empty when the
        run's fidelity/metrics.json predates the training-split angles.
    """
    path = folder / 'fidelity' / 'metrics.json'
    if not path.is_file():
        return {}
    fidelity = json.loads(path.read_text())
    if 'class_spectrum_sam_degrees_train' not in fidelity:
        return {}
    angles = {
        'validation': fidelity['class_spectrum_sam_degrees'],
        'training': fidelity['class_spectrum_sam_degrees_train'],
    }
    if 'filtered' in fidelity:
        angles['training, alignment-filtered'] = fidelity['filtered'][
            'class_spectrum_sam_degrees_train'
        ]
    return angles


def class_table(angles: dict[str, dict[str, dict[str, float | None]]]) -> list[str]:
    """Markdown table of per-class SAM, one column per run and reference split.

    Args:
        angles: run label to :func:`class_angles`.

    Returns:
        the table's lines (none if a run lacks the angles).
    """
    if not angles or not all(angles.values()):
        return []
    columns = [(label, reference) for label, run in angles.items() for reference in run]
    first = next(iter(angles.values()))['validation']
    lines = [
        '## Per-class mean-spectrum SAM (degrees), synthetic against real',
        '',
        '| class | '
        + ' | '.join(f'{label}, vs {reference}' for label, reference in columns)
        + ' |',
        '| --- |' + ' --- |' * len(columns),
    ]
    for name in first:
        values = [angles[label][reference][name] for label, reference in columns]
        lines.append(
            f'| {name} | '
            + ' | '.join('-' if v is None else f'{v:.2f}' for v in values)
            + ' |'
        )
    worst = [
        max(v for v in angles[label][reference].values() if v is not None)
        for label, reference in columns
    ]
    lines.append('| **largest** | ' + ' | '.join(f'**{v:.2f}**' for v in worst) + ' |')
    return ['', *lines]


def rows(summary: dict[str, Any]) -> dict[str, str]:
    """The compared figures of one run, formatted.

    Args:
        summary: a demo summary.

    Returns:
        figure name to formatted value.
    """
    fidelity, vae = summary['fidelity'], summary['vae']
    alignment = fidelity.get('alignment') or {}
    cells = {
        'VAE SAM (deg)': f'{vae["val_sam"]:.2f}',
        'VAE mask mIoU': f'{vae["val_mask_miou"]:.3f}',
        'diffusion steps': str(summary['diffusion_steps']),
        'class-spectrum SAM (deg)': f'{fidelity["class_spectrum_sam_degrees"]:.2f}',
        'class-histogram TV': f'{fidelity["class_histogram_tv"]:.3f}',
        'KID (real-trained encoder)': f'{fidelity["kid"]["mean"]:.4f}'
        if fidelity.get('kid')
        else '-',
    }
    if alignment:
        cells[f'alignment median ({alignment["metric"]})'] = (
            f'{alignment["median"]:.3f}'
        )
        cells[f'alignment mean ({alignment["metric"]})'] = f'{alignment["mean"]:.3f}'
    for regime, scores in summary['downstream'].items():
        for metric, value in scores.items():
            cells[f'downstream {metric}, {regime}'] = f'{value:.3f}'
    cells['wall minutes'] = f'{summary["wall_minutes"]:.1f}'
    return cells


def main() -> None:
    """Write the comparison."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument('specdm', type=Path, help='demo folder of the SpecDM run')
    parser.add_argument(
        'baseline', type=Path, help='demo folder of the single-stream run'
    )
    parser.add_argument('--name', required=True, help='results file stem suffix')
    parser.add_argument('--note', default='', help='a line on how the runs were made')
    options = parser.parse_args()

    runs = {
        'SpecDM (two streams)': options.specdm,
        'single-stream LDM': options.baseline,
    }
    summaries = {label: load(folder) for label, folder in runs.items()}
    datasets = {summary['dataset'] for summary in summaries.values()}
    if len(datasets) != 1:
        raise SystemExit(f'the runs are on different datasets: {sorted(datasets)}')
    cells = {label: rows(summary) for label, summary in summaries.items()}
    names = list(dict.fromkeys(name for table in cells.values() for name in table))
    figures = RESULTS / f'baseline_{options.name}'
    figures.mkdir(parents=True, exist_ok=True)
    lines = [
        f'# SpecDM against the single-stream LDM baseline: {datasets.pop()}',
        '',
        '```bash',
        f'python {shlex.join(sys.argv)}',
        '```',
        '',
    ]
    if options.note:
        lines += [options.note, '']
    lines += [
        '| figure | ' + ' | '.join(cells) + ' |',
        '| --- |' + ' --- |' * len(cells),
    ]
    lines += [
        f'| {name} | '
        + ' | '.join(table.get(name, '-') for table in cells.values())
        + ' |'
        for name in names
    ]
    angles = {label: class_angles(folder) for label, folder in runs.items()}
    lines += class_table(angles)
    for label, folder in runs.items():
        slug = 'specdm' if label.startswith('SpecDM') else 'single_stream'
        lines += ['', f'## {label}', '']
        for figure in FIGURES:
            source = folder / 'fidelity' / figure
            if source.is_file():
                target = figures / f'{slug}_{figure}'
                shutil.copyfile(source, target)
                lines.append(f'![{label}: {figure}]({figures.name}/{target.name})')
    (RESULTS / f'baseline_{options.name}.md').write_text('\n'.join(lines) + '\n')
    (RESULTS / f'baseline_{options.name}.json').write_text(
        json.dumps(
            {
                'command': f'python {shlex.join(sys.argv)}',
                'runs': {label: str(folder) for label, folder in runs.items()},
                'summaries': summaries,
                'class_spectrum_sam_degrees': angles,
            },
            indent=2,
        )
        + '\n'
    )
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
