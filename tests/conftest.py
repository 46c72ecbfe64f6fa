import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import matplotlib
import pytest
from lightning.pytorch import Callback, LightningModule, Trainer

matplotlib.use('Agg')

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / 'tests' / 'data'

#: The generator record of test datasets written without a real checkpoint.
TEST_GENERATOR = {
    'checkpoint_sha256': '0' * 64,
    'sampler': 'dpmpp',
    'steps': 5,
    'guidance_scale': 1.0,
    'request': None,
    'seed': 0,
    'package_version': '0.1.0',
}


class LossCurve(Callback):
    """The training loss of every optimizer step."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self.losses.append(float(outputs['loss']))


@pytest.fixture
def load_benchmark(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], ModuleType]:
    """Load a script of benchmarks/ as a module, its own imports (common) included."""
    monkeypatch.syspath_prepend(str(ROOT / 'benchmarks'))

    def load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(
            f'{name}_benchmark', ROOT / 'benchmarks' / f'{name}.py'
        )
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope='session')
def shared_data() -> Path:
    """The read-only real data folder (SPECDM_SHARED_DATA, default ../shared/data)."""
    path = Path(os.environ.get('SPECDM_SHARED_DATA', ROOT.parent / 'shared' / 'data'))
    if not path.is_dir():
        pytest.skip(f'real data folder {path} is absent; set SPECDM_SHARED_DATA')
    return path


@pytest.fixture(scope='session')
def oscd_root(shared_data: Path) -> Path:
    return shared_data / 'oscd'


def _train_tiny_vae(directory: Path, data: str) -> Path:
    from torchgeo_specdm.cli import main

    args = ['fit', '--config', str(ROOT / 'benchmarks' / 'configs' / 'vae.yaml')]
    args += ['--config', str(ROOT / 'datamodules' / f'{data}.yaml')]
    args += [
        '--model.init_args.base_channels=8',
        '--model.init_args.mask_base_channels=8',
    ]
    args += ['--data.init_args.num_train=8', '--data.init_args.num_val=4']
    args += ['--data.init_args.size=32', '--data.init_args.batch_size=4']
    args += [
        '--trainer.max_epochs=1',
        '--trainer.limit_val_batches=1',
        '--trainer.logger=false',
    ]
    args += [
        f'--trainer.default_root_dir={directory}',
        '--trainer.enable_progress_bar=false',
    ]
    main(args)
    return next(directory.rglob('last.ckpt'))


@pytest.fixture(scope='session')
def tiny_vae(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny VAEs trained for one epoch on the segmentation and change simulators."""
    return {
        data: _train_tiny_vae(tmp_path_factory.mktemp(data), data)
        for data in ('simulated_segmentation', 'simulated_change')
    }


TINY_DIFFUSION = [
    '--model.init_args.block_out_channels=[16, 32]',
    '--model.init_args.num_val_samples=2',
    '--model.init_args.val_steps=2',
    '--data.init_args.num_train=8',
    '--data.init_args.num_val=4',
    '--data.init_args.size=32',
    '--data.init_args.batch_size=4',
]


def fit_tiny_diffusion(vae: Path, data: str, directory: Path, extra: list[str]) -> None:
    from torchgeo_specdm.cli import main

    args = ['fit', '--config', str(ROOT / 'benchmarks' / 'configs' / 'diffusion.yaml')]
    args += ['--config', str(ROOT / 'datamodules' / f'{data}.yaml')]
    args += [f'--model.init_args.vae_checkpoint={vae}']
    args += [
        f'--trainer.default_root_dir={directory}',
        '--trainer.enable_progress_bar=false',
    ]
    main(args + TINY_DIFFUSION + extra)


@pytest.fixture(scope='session')
def tiny_diffusion(
    tiny_vae: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Tiny diffusion models trained for two epochs on the tiny VAEs' latents."""
    out = {}
    for data in ('simulated_segmentation', 'simulated_change'):
        directory = tmp_path_factory.mktemp(f'diffusion-{data}')
        extra = ['--trainer.max_epochs=2', '--trainer.check_val_every_n_epoch=1']
        extra += ['--model.init_args.sample_every_n_epochs=1', '--trainer.logger=false']
        fit_tiny_diffusion(tiny_vae[data], data, directory, extra)
        out[data] = next(directory.rglob('last.ckpt'))
    return out
