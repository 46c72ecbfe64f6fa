"""Killing long jobs never loses work: real subprocesses, real SIGKILL, then resume."""

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from torchgeo_specdm.datasets import SyntheticDataset

from .conftest import ROOT, TINY_DIFFUSION

SPECDM = [sys.executable, '-c', 'from torchgeo_specdm.cli import main; main()']


def _wait_for(
    condition: object, process: subprocess.Popen[bytes], timeout: float = 300
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert process.poll() is None, 'the job ended before it could be killed'
        assert time.monotonic() < deadline, 'timed out waiting for the job'
        time.sleep(0.05)


def _kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_killed_sampling_resumes_without_losing_or_changing_samples(
    tiny_diffusion: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / 'out'
    args = [
        *SPECDM,
        'sample',
        '--checkpoint',
        str(tiny_diffusion['simulated_segmentation']),
    ]
    args += [
        '--num-samples',
        '12',
        '--out',
        str(out),
        '--steps',
        '40',
        '--batch-size',
        '1',
    ]
    parts = out / '.parts'

    def finished() -> list[Path]:
        return sorted(p for p in parts.glob('0*.json')) if parts.is_dir() else []

    process = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _wait_for(lambda: len(finished()) >= 3, process)
    _kill(process)
    done = finished()
    assert 3 <= len(done) < 12, 'the kill did not land mid-run'
    assert not (out / 'manifest.json').exists()
    before = {
        path.relative_to(out): _sha256(path)
        for record in done
        for path in (
            out / 'images' / f'{record.stem}.tif',
            out / 'masks' / f'{record.stem}.tif',
        )
    }

    subprocess.run(
        args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    dataset = SyntheticDataset(out)
    assert len(dataset) == 12
    assert [record['id'] for record in dataset.samples] == list(range(12))
    for relative, digest in before.items():
        assert _sha256(out / relative) == digest, f'{relative} changed on resume'
    assert not [p for p in out.rglob('*') if 'tmp' in p.name]
    for index in range(12):
        assert torch.isfinite(dataset[index]['image']).all()


def test_killed_training_resumes_at_the_right_step_with_ema_and_scale_factors(
    tiny_vae: dict[str, Path], tmp_path: Path
) -> None:
    callbacks = tmp_path / 'checkpoint_often.yaml'
    callbacks.write_text(
        'trainer:\n'
        '  callbacks:\n'
        '    - class_path: lightning.pytorch.callbacks.ModelCheckpoint\n'
        '      init_args:\n'
        '        every_n_train_steps: 2\n'
        '        save_last: true\n'
        '        save_top_k: -1\n'
    )
    vae = tiny_vae['simulated_segmentation']
    args = [*SPECDM, 'fit', '--config', str(ROOT / 'benchmarks/configs/diffusion.yaml')]
    args += [
        '--config',
        str(ROOT / 'datamodules/simulated_segmentation.yaml'),
        '--config',
        str(callbacks),
    ]
    args += [f'--model.init_args.vae_checkpoint={vae}', *TINY_DIFFUSION]
    args += [
        '--trainer.max_epochs=1000',
        '--trainer.limit_val_batches=0',
        '--trainer.logger=false',
    ]
    args += [
        f'--trainer.default_root_dir={tmp_path}',
        '--trainer.enable_progress_bar=false',
    ]
    last = tmp_path / 'checkpoints' / 'last.ckpt'

    def step_of_last() -> int:
        try:
            return int(torch.load(last, weights_only=True)['global_step'])
        except Exception:  # noqa: BLE001 (absent or being written)
            return -1

    process = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _wait_for(lambda: step_of_last() >= 4, process)
    _kill(process)
    killed = torch.load(last, weights_only=True)
    step = int(killed['global_step'])
    assert killed['ema']['optimization_step'] == step

    resume = [*args, f'--ckpt_path={last}', f'--trainer.max_steps={step + 4}']
    resume = [a for a in resume if not a.startswith('--trainer.max_epochs')]
    subprocess.run(
        resume, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    resumed = torch.load(last, weights_only=True)
    assert resumed['global_step'] == step + 4
    assert resumed['ema']['optimization_step'] == step + 4
    vae_factors = torch.load(vae, weights_only=True)['state_dict'][
        'model.scale_factors'
    ]
    assert torch.equal(resumed['state_dict']['vae.model.scale_factors'], vae_factors)
    assert (
        resumed['hyper_parameters']['latent_size']
        == killed['hyper_parameters']['latent_size']
    )
    assert os.path.getsize(last) > 0
