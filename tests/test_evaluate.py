"""`specdm evaluate`: the fidelity report of a generated dataset."""

import json
from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from torchgeo_specdm.cli import main
from torchgeo_specdm.datamodules import SalinasADataModule
from torchgeo_specdm.datasets import SyntheticDataset
from torchgeo_specdm.datasets.hyperspectral import sensor_bands
from torchgeo_specdm.evaluation.report import band_wavelengths, plot_class_spectra
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
    # Per-class angles against both real splits, one entry per class.
    names = result['class_names']
    for key in ('class_spectrum_sam_degrees', 'class_spectrum_sam_degrees_train'):
        assert list(result[key]) == names
        assert all(v is None or 0 <= v <= 90 for v in result[key].values())
    assert result['mean_class_spectrum_sam_degrees_train'] is not None
    assert '| class | SAM vs validation | SAM vs training | filtered, vs' in text
    # The alignment-filtered figures drop the pairs below the lower quartile.
    filtered = result['filtered']
    assert filtered['min_alignment'] >= min(scores_of(out))
    assert filtered['num_synthetic'] == sum(
        score >= filtered['min_alignment'] for score in scores_of(out)
    )
    assert 1 <= filtered['num_synthetic'] <= 6
    assert list(filtered['class_spectrum_sam_degrees_train']) == names
    assert 0 <= result['alignment']['mean'] <= 1
    assert result['kid']['n_fake'] == len(SyntheticDataset(out))
    assert set(result['kid']['real_halves']) == {'mean', 'std'}
    assert 'two halves of the real set' in text
    assert result['alignment']['real_mean'] > 0
    # Six pairs are too few for a Fréchet distance of the judge features: the report
    # gives none rather than a rank-deficient estimate.
    assert result['frechet'] == {
        'value': None,
        'dimensions': 0,
        'n_real': result['num_real'],
        'n_fake': 6,
    }
    assert len(result['band_wasserstein']) == (
        10 if name.endswith('segmentation') else 13
    )
    # The alignment scores are stored in the manifest, so min_alignment can filter on them.
    scores = [s['alignment'] for s in SyntheticDataset(out).samples]
    assert all(0 <= score <= 1 for score in scores)
    assert len(SyntheticDataset(out, min_alignment=max(scores))) >= 1
    assert 'Report:' in capsys.readouterr().out


def scores_of(root: Path) -> list[float]:
    return [sample['alignment'] for sample in SyntheticDataset(root).samples]


def _spectra_inputs(
    bands: int, classes: int = 3
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(4, bands, 8, 8, generator=generator)
    mask = torch.randint(0, classes, (4, 8, 8), generator=generator)
    return image, mask, image + 0.1, mask


def test_spectra_in_nm_for_hyperspectral_data(tmp_path: Path) -> None:
    bands, centres = sensor_bands(224, 400, 2500, dropped=range(108, 113))
    datamodule = SimpleNamespace(bands=bands, wavelengths=centres)
    wavelengths = band_wavelengths(bands, datamodule)
    assert wavelengths == list(centres)
    figure = plot_class_spectra(*_spectra_inputs(219), bands, 'abc', wavelengths)
    axis = figure.axes[0]
    assert 'nm' in axis.get_xlabel()
    assert axis.get_xlim()[0] < 420
    assert axis.get_xlim()[1] > 2480
    # 3 classes x (real, synthetic) lines; each breaks once over the left-out bands.
    lines = axis.get_lines()
    assert len(lines) == 6
    assert all(np.isnan(line.get_ydata()).sum() == 1 for line in lines)
    figure.savefig(tmp_path / 'spectra.png')
    plt.close(figure)


def test_spectra_axis_fallbacks() -> None:
    s2 = ('B02', 'B03', 'B04', 'B08')
    assert band_wavelengths(s2) == [492.4, 559.8, 664.6, 832.8]
    # Wavelengths of other bands than the synthetic ones are not used.
    other = SimpleNamespace(bands=('x', 'y', 'z', 'w'), wavelengths=(1, 2, 3, 4))
    assert band_wavelengths(s2, other) == [492.4, 559.8, 664.6, 832.8]
    names = ('band_0', 'band_1', 'band_2', 'band_3')
    assert band_wavelengths(names) is None
    figure = plot_class_spectra(*_spectra_inputs(4), names, 'abc')
    axis = figure.axes[0]
    assert axis.get_xlabel() == 'band'
    assert [label.get_text() for label in axis.get_xticklabels()] == list(names)
    plt.close(figure)


def test_spectra_of_real_salinas_a(shared_data: Path) -> None:
    datamodule = SalinasADataModule(
        root=shared_data / 'hsi' / 'salinas_a', patches_per_epoch=4
    )
    datamodule.setup('fit')
    image = torch.stack([datamodule.val_dataset[i]['image'] for i in range(2)])  # type: ignore[index]
    mask = torch.stack([datamodule.val_dataset[i]['mask'] for i in range(2)])  # type: ignore[index]
    wavelengths = band_wavelengths(datamodule.bands, datamodule)
    assert wavelengths is not None
    assert len(wavelengths) == 204
    figure = plot_class_spectra(
        image, mask, image, mask, datamodule.bands, datamodule.class_names, wavelengths
    )
    assert figure.axes[0].get_xlabel() == 'wavelength (nm)'
    plt.close(figure)
