"""Binary masks and multi-class change masks through torchgeo's own datamodules.

- Solar Plants Brazil (tests/data/solar_plants_brazil): 4-band GeoTIFFs with 0/1
  masks; the datamodule gives no class count, so it is read from the labels.
- xBD (tests/data/xbd): RGB change pairs whose change mask has 5 damage classes,
  named by the dataset.
"""

import sys
import warnings
from pathlib import Path

import pytest
from torchgeo.datamodules import SolarPlantsBrazilDataModule, xBDDataModule
from torchgeo.main import main as torchgeo_main

from torchgeo_specdm.cli import main
from torchgeo_specdm.tasks import TwoStreamVAE
from torchgeo_specdm.tasks.utils import infer_data_spec

from .conftest import DATA, ROOT

CONF = ROOT / 'tests' / 'conf'
VAE = str(ROOT / 'benchmarks' / 'configs' / 'vae.yaml')
SMALL_VAE = [
    '--model.init_args.base_channels=8',
    '--model.init_args.mask_base_channels=8',
]
ROOTS = {'solar_plants_brazil': DATA / 'solar_plants_brazil', 'xbd': DATA / 'xbd'}


def fit_args(data: str, tmp_path: Path, *extra: str) -> list[str]:
    args = ['fit', '--config', VAE, '--config', str(CONF / f'{data}.yaml')]
    args += [f'--data.dict_kwargs.root={ROOTS[data]}']
    args += ['--trainer.fast_dev_run=true', f'--trainer.default_root_dir={tmp_path}']
    return [*args, *SMALL_VAE, *extra]


def last_error_line(capsys: pytest.CaptureFixture[str], args: list[str]) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert 'Traceback' not in err
    return err.strip().splitlines()[-1]


def test_binary_spec_is_read_from_the_labels() -> None:
    datamodule = SolarPlantsBrazilDataModule(
        root=ROOTS['solar_plants_brazil'], batch_size=2, patch_size=32
    )
    datamodule.setup('fit')
    assert not hasattr(datamodule, 'num_classes')
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # 0/1 masks are binary: nothing to warn about
        spec = infer_data_spec(datamodule)
    assert spec['num_classes'] == 2
    assert spec['class_source'] == 'labels'
    assert spec['max_label'] == 1
    assert spec['in_channels'] == 4
    assert spec['num_images'] == 1
    assert spec['size'] == (32, 32)
    assert spec['bands'] == ['Red', 'Green', 'Blue', 'NIR']


def test_change_spec_with_five_named_classes() -> None:
    datamodule = xBDDataModule(root=ROOTS['xbd'], batch_size=2, checksum=False)
    datamodule.setup('fit')
    spec = infer_data_spec(datamodule)
    assert spec['num_images'] == 2
    assert spec['in_channels'] == 3
    assert spec['num_classes'] == 5
    assert spec['class_source'] == 'declared'
    assert spec['class_names'][0] == 'background'
    assert spec['class_names'][4] == 'destroyed'


@pytest.mark.parametrize('cli', ['specdm', 'torchgeo'])
@pytest.mark.parametrize('data', ['solar_plants_brazil', 'xbd'])
def test_fast_dev_run_with_inferred_classes(
    data: str, cli: str, tmp_path: Path
) -> None:
    (main if cli == 'specdm' else torchgeo_main)(fit_args(data, tmp_path))


@pytest.mark.parametrize(
    ('data', 'classes'),
    [('solar_plants_brazil', 2), ('xbd', 5), ('xbd', 6), ('solar_plants_brazil', 3)],
)
def test_explicit_class_count_wins(data: str, classes: int, tmp_path: Path) -> None:
    args = fit_args(data, tmp_path, f'--model.init_args.num_classes={classes}')
    args.remove('--trainer.fast_dev_run=true')
    args += ['--trainer.max_epochs=1', '--trainer.limit_train_batches=1']
    args += ['--trainer.limit_val_batches=1', '--trainer.logger=false']
    args += ['--trainer.enable_progress_bar=false']
    if classes > {'solar_plants_brazil': 2, 'xbd': 5}[data]:
        with pytest.warns(UserWarning, match=f'the model has {classes} classes'):
            main(args)
    else:
        main(args)
    vae = TwoStreamVAE.from_checkpoint(next(tmp_path.rglob('last.ckpt')))
    assert vae.hparams['num_classes'] == classes
    assert vae.autoencoder.num_classes == classes
    if data == 'xbd':
        assert len(vae.hparams['class_names']) == classes


def test_fewer_classes_than_declared_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = last_error_line(
        capsys, fit_args('xbd', tmp_path, '--model.init_args.num_classes=3')
    )
    assert err.startswith('specdm fit: error: the model was built for 3 classes')
    assert 'datamodule gives 5' in err
    assert '--model.init_args.num_classes' in err


def test_missing_optional_dependency_names_the_extra(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # ChaBuD reads its HDF5 file with h5py; make it missing whether or not it is
    # installed here.
    monkeypatch.setitem(sys.modules, 'h5py', None)
    args = ['fit', '--config', VAE, '--config', str(CONF / 'chabud.yaml')]
    args += [f'--data.dict_kwargs.root={tmp_path}', '--trainer.fast_dev_run=true']
    args += [f'--trainer.default_root_dir={tmp_path}']
    err = last_error_line(capsys, args)
    assert err.startswith('specdm fit: error: h5py is not installed')
    assert 'pip install "torchgeo-specdm[datasets]"' in err
