"""`specdm evaluate`: the fidelity report of a generated dataset."""

import json
from pathlib import Path

import pytest

from torchgeo_specdm.cli import main
from torchgeo_specdm.datasets import SyntheticDataset
from torchgeo_specdm.sample import generate


@pytest.mark.parametrize(
    ('data', 'name'),
    [
        ('simulated_segmentation', 'simulated-segmentation'),
        ('simulated_change', 'simulated-change'),
    ],
)
def test_report_with_alignment(
    tiny_diffusion: dict[str, Path],
    tmp_path: Path,
    data: str,
    name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / 'generated'
    generate(tiny_diffusion[data], out, 6, steps=3)
    main(
        [
            'evaluate',
            '--synthetic',
            str(out),
            '--dataset',
            name,
            '--train-downstream-minutes',
            '0.03',
        ]
    )
    report = tmp_path / 'generated_report'
    text = (report / 'report.md').read_text()
    for png in (
        'spectra.png',
        'classes.png',
        'samples.png',
        'real_samples.png',
        'alignment.png',
    ):
        assert (report / png).stat().st_size > 1000
        assert f']({png})' in text
    result = json.loads((report / 'metrics.json').read_text())
    assert 0 <= result['class_histogram_tv'] <= 1
    assert 0 <= result['alignment']['mean'] <= 1
    assert result['frechet_distance'] >= 0
    assert len(result['band_wasserstein']) == (
        10 if name.endswith('segmentation') else 13
    )
    # The alignment scores are stored in the manifest, so min_alignment can filter on them.
    scores = [s['alignment'] for s in SyntheticDataset(out).samples]
    assert all(0 <= score <= 1 for score in scores)
    assert len(SyntheticDataset(out, min_alignment=max(scores))) >= 1
    assert 'Report:' in capsys.readouterr().out
