"""The TwoStreamVAE task through the real CLIs, on the simulator and real OSCD."""

import re
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from torchgeo.datamodules import OSCDDataModule
from torchgeo.main import main as torchgeo_main

from torchgeo_specdm.cli import main
from torchgeo_specdm.datamodules import SimulatedSegmentationDataModule
from torchgeo_specdm.datasets import SalinasA
from torchgeo_specdm.tasks import TwoStreamVAE

from .conftest import ROOT

VAE = str(ROOT / 'benchmarks' / 'configs' / 'vae.yaml')
SINGLE = str(ROOT / 'benchmarks' / 'configs' / 'vae_single_stream.yaml')
DATA = ROOT / 'datamodules'
SMALL_MODEL = [
    '--model.init_args.base_channels=8',
    '--model.init_args.mask_base_channels=8',
]
SMALL_SIM = [
    '--data.init_args.num_train=8',
    '--data.init_args.num_val=4',
    '--data.init_args.size=32',
    '--data.init_args.batch_size=4',
]


@pytest.mark.parametrize('data', ['simulated_segmentation', 'simulated_change'])
@pytest.mark.parametrize('config', [VAE, SINGLE])
def test_fast_dev_run_specdm_cli(data: str, config: str, tmp_path: Path) -> None:
    args = ['fit', '--config', config, '--config', str(DATA / f'{data}.yaml')]
    args += ['--trainer.fast_dev_run=true', f'--trainer.default_root_dir={tmp_path}']
    main(args + SMALL_MODEL + SMALL_SIM)


def test_fast_dev_run_torchgeo_cli_on_real_oscd(
    oscd_root: Path, tmp_path: Path
) -> None:
    args = ['fit', '--config', VAE, '--config', str(DATA / 'oscd.yaml')]
    args += [f'--data.dict_kwargs.root={oscd_root}', '--data.init_args.patch_size=32']
    args += ['--trainer.fast_dev_run=true', f'--trainer.default_root_dir={tmp_path}']
    torchgeo_main(args + SMALL_MODEL)


def _fit(tmp_path: Path, extra: list[str]) -> Path:
    args = [
        'fit',
        '--config',
        VAE,
        '--config',
        str(DATA / 'simulated_segmentation.yaml'),
    ]
    args += ['--trainer.max_epochs=2', '--trainer.limit_val_batches=1']
    args += [f'--trainer.default_root_dir={tmp_path}', '--trainer.logger=false']
    main(args + SMALL_MODEL + SMALL_SIM + extra)
    checkpoints = sorted(tmp_path.rglob('last.ckpt'))
    assert checkpoints, 'fit wrote no checkpoint'
    return checkpoints[0]


def test_checkpoint_keeps_scale_factors_and_data_spec(tmp_path: Path) -> None:
    checkpoint = _fit(tmp_path, [])
    state = torch.load(checkpoint, map_location='cpu', weights_only=True)
    stored = state['state_dict']['model.scale_factors']
    assert not torch.allclose(stored, torch.ones_like(stored))
    task = TwoStreamVAE.load_from_checkpoint(checkpoint, map_location='cpu')
    assert torch.equal(task.autoencoder.scale_factors, stored)
    assert task.hparams['in_channels'] == 10
    assert task.hparams['num_classes'] == len(
        SimulatedSegmentationDataModule.dataset_class.classes
    )
    assert task.mean.shape == (10,)
    assert float(task.std.min()) > 1
    # The stored factors whiten each stream of the joint latent on training data.
    datamodule = SimulatedSegmentationDataModule(num_train=8, size=32, batch_size=8)
    datamodule.setup('fit')
    batch = datamodule.aug(next(iter(datamodule.train_dataloader())))
    latent = task.encode(batch['image'], batch['mask'])
    image_part, mask_part = latent[:, :4], latent[:, 4:]
    for part in (image_part, mask_part):
        assert 0.5 < float(part.std()) < 2.0
    image, labels = task.decode(latent)
    assert image.shape == (8, 10, 32, 32)
    assert labels.shape == (8, 32, 32)


def test_checkpoint_on_other_data_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = _fit(tmp_path, ['--trainer.max_epochs=1'])
    args = ['fit', '--config', VAE, '--config', str(DATA / 'simulated_change.yaml')]
    args += ['--trainer.fast_dev_run=true', f'--trainer.default_root_dir={tmp_path}']
    args += [f'--ckpt_path={checkpoint}', '--model.init_args.in_channels=10']
    args += ['--model.init_args.num_images=1', '--model.init_args.num_classes=7']
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(args + SMALL_MODEL + SMALL_SIM)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.match(
        r'specdm fit: error: .*built for 10 bands.*datamodule gives 13', err
    )
    assert 'Traceback' not in err


def test_sizes_can_be_given_without_datamodule() -> None:
    task = TwoStreamVAE(
        in_channels=204,
        num_classes=7,
        num_images=1,
        base_channels=8,
        mask_base_channels=8,
    )
    assert task.autoencoder.in_channels == 204
    with pytest.raises(RuntimeError, match='has no model yet'):
        _ = TwoStreamVAE().autoencoder


def test_stock_oscd_datamodule_spec(oscd_root: Path) -> None:
    from torchgeo_specdm.tasks.utils import infer_data_spec

    datamodule = OSCDDataModule(root=oscd_root, patch_size=32)
    datamodule.setup('fit')
    spec = infer_data_spec(datamodule)
    assert spec['in_channels'] == 13
    assert spec['num_images'] == 2
    assert spec['num_classes'] == 2
    assert spec['bands'][3] == 'B04'
    assert len(spec['mean']) == 13


def test_rgb_bands_from_wavelengths() -> None:
    from torchgeo_specdm.tasks.utils import rgb_indices

    true_colour = [SalinasA.all_bands.index(band) for band in SalinasA.rgb_bands]
    assert rgb_indices(SalinasA.all_bands, 204, SalinasA.wavelengths) == true_colour
    # Without wavelengths, hyperspectral bands are spread over the whole range.
    assert rgb_indices(SalinasA.all_bands, 204) != true_colour
    # Sentinel-2 bands by name, with or without their centres.
    s2 = ['B02', 'B03', 'B04', 'B08']
    assert rgb_indices(s2, 4) == rgb_indices(s2, 4, (492, 560, 665, 833)) == [2, 1, 0]


def test_hyperspectral_plot_uses_true_colour_bands(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torchgeo_specdm.tasks import utils

    chosen: list[list[int]] = []
    original = utils.rgb_indices

    def spy(
        bands: Sequence[str] | None,
        channels: int,
        wavelengths: Sequence[float] | None = None,
    ) -> list[int]:
        chosen.append(original(bands, channels, wavelengths))
        return chosen[-1]

    monkeypatch.setattr(utils, 'rgb_indices', spy)
    root = shared_data / 'hsi' / 'salinas_a'
    args = ['fit', '--config', VAE, '--config', str(DATA / 'salinas_a.yaml')]
    args += [f'--data.dict_kwargs.root={root}', '--data.init_args.batch_size=2']
    args += ['--data.init_args.patches_per_epoch=2']
    args += ['--trainer.fast_dev_run=true', f'--trainer.default_root_dir={tmp_path}']
    main(args + SMALL_MODEL)
    true_colour = [SalinasA.all_bands.index(band) for band in SalinasA.rgb_bands]
    assert chosen
    assert all(indices == true_colour for indices in chosen)
