"""The demo workflow end to end at a tiny size, and its command-line errors."""

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from torchgeo_specdm.cli import main
from torchgeo_specdm.datasets import SyntheticDataset
from torchgeo_specdm.demo import _clear_previous_run, run_demo

TINY_DATA = {'num_train': 32, 'num_val': 8, 'num_test': 8, 'size': 16}


@pytest.mark.parametrize('dataset', ['simulated-segmentation', 'simulated-change'])
def test_demo_writes_report(dataset: str, tmp_path: Path) -> None:
    summary = run_demo(
        tmp_path,
        dataset,
        budget_minutes=0.2,
        num_samples=4,
        steps=2,
        data_kwargs=TINY_DATA,
    )
    assert len(SyntheticDataset(tmp_path / 'generated')) == 4
    manifest = json.loads((tmp_path / 'generated' / 'manifest.json').read_text())
    assert all('alignment' in sample for sample in manifest['samples'])
    report = (tmp_path / 'report.md').read_text()
    for figure in (
        'fidelity/samples.png',
        'fidelity/spectra.png',
        'fidelity/classes.png',
        'downstream.png',
    ):
        assert f']({figure})' in report
        with Image.open(tmp_path / figure) as image:
            assert min(image.size) > 100
    stored = json.loads((tmp_path / 'summary.json').read_text())
    assert stored['downstream'].keys() == {'real', 'real + synthetic'}
    assert stored['data_overrides'] == TINY_DATA
    metric = 'f1' if dataset == 'simulated-change' else 'miou'
    for scores in summary['downstream'].values():
        assert 0 <= scores[metric] <= 1
    assert summary['diffusion_steps'] > 0
    assert 0 <= summary['vae']['val_mask_miou'] <= 1
    generator = manifest['generator']
    if dataset == 'simulated-segmentation':
        # Guided by a ResNet-34 guide by default, beside the same seeds unguided.
        assert generator['alignment_guidance'] == 1.0
        assert generator['guide']['path'] == 'downstream.ckpt'
        unguided = SyntheticDataset(tmp_path / 'generated_unguided')
        assert len(unguided) == 4
        assert not torch.equal(
            unguided[0]['image'], SyntheticDataset(tmp_path / 'generated')[0]['image']
        )
        assert stored['unguided_alignment']['real_mean'] > 0
        assert '](guidance.png)' in report
        with Image.open(tmp_path / 'guidance.png') as image:
            assert min(image.size) > 100
        assert 'without alignment guidance' in report
    else:
        # A minute-long change guide predicts little change: change demos sample unguided.
        assert 'guide' not in generator
        assert not (tmp_path / 'generated_unguided').exists()


@pytest.mark.parametrize(
    ('arguments', 'message'),
    [
        (['--dataset', 'oscd'], 'pass its folder with --root'),
        (['--budget-minutes', '0'], 'at least 0.2 minutes'),
        (['--dataset', 'oscd', '--root', 'no/such/folder'], 'no/such/folder'),
    ],
)
def test_demo_bad_arguments(
    arguments: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(['demo', '--out', str(tmp_path), *arguments])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_new_run_replaces_only_the_demo_outputs(tmp_path: Path) -> None:
    (tmp_path / 'generated').mkdir()
    (tmp_path / 'generated' / 'manifest.json').write_text('{}')
    (tmp_path / 'report.md').write_text('old')
    (tmp_path / 'notes.txt').write_text('mine')
    _clear_previous_run(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['notes.txt']


def test_single_stream_baseline_demo(tmp_path: Path) -> None:
    summary = run_demo(
        tmp_path,
        budget_minutes=0.2,
        num_samples=2,
        steps=2,
        data_kwargs=TINY_DATA,
        architecture='single_stream',
    )
    assert summary['architecture'] == 'single_stream'
    vae = torch.load(tmp_path / 'vae.ckpt', weights_only=True)
    assert vae['hyper_parameters']['architecture'] == 'single_stream'
    assert len(SyntheticDataset(tmp_path / 'generated')) == 2
    title = (tmp_path / 'report.md').read_text().splitlines()[0]
    assert title.endswith('single-stream LDM baseline')
