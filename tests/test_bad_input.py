"""The bad-input catalogue: every case gets a clear error naming the file or argument."""

import errno
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
import tifffile
import torch
from torchgeo.datasets import DatasetNotFoundError

from torchgeo_specdm.cli import main
from torchgeo_specdm.datasets import InvalidInputError, SegMunich, SyntheticDataset
from torchgeo_specdm.export import DatasetWriter

from .conftest import DATA, ROOT, TEST_GENERATOR


def segmunich_root(tmp_path: Path) -> Path:
    root = tmp_path / 'segmunich'
    shutil.copytree(DATA / 'segmunich', root, ignore=shutil.ignore_patterns('data.py'))
    return root


def synthetic_root(tmp_path: Path, task: str = 'segmentation', count: int = 3) -> Path:
    root = tmp_path / 'generated'
    change = task == 'change'
    writer = DatasetWriter(
        root,
        task,  # type: ignore[arg-type]
        bands=['B02', 'B03', 'B04', 'B08'],
        num_classes=2 if change else 3,
        class_names=['a', 'b'] if change else ['a', 'b', 'c'],
        generator=TEST_GENERATOR,
    )
    shape = (2, 4, 16, 16) if change else (4, 16, 16)
    for index in range(count):
        image = torch.rand(shape) * 1000
        writer.write(index, image, torch.randint(0, 2, (16, 16)), seed=index)
    writer.finalize(count)
    return root


def segmunich_item(root: Path) -> Callable[[], object]:
    dataset = SegMunich(root)
    return lambda: dataset[dataset.names.index('1')]


def cli_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


# Dataset cases: (set-up returning the call that must fail, error type, message pattern).


def wrong_band_count(tmp_path: Path) -> Callable[[], object]:
    root = segmunich_root(tmp_path)
    tifffile.imwrite(root / 'train/img/1.tif', np.ones((32, 32, 7), np.float32))
    return segmunich_item(root)


def nan_pixels(tmp_path: Path) -> Callable[[], object]:
    root = segmunich_root(tmp_path)
    image = np.ones((32, 32, 10), np.float32)
    image[3, 4, 5] = np.nan
    tifffile.imwrite(root / 'train/img/1.tif', image)
    return segmunich_item(root)


def inf_pixels(tmp_path: Path) -> Callable[[], object]:
    root = segmunich_root(tmp_path)
    image = np.ones((32, 32, 10), np.float32)
    image[0, 0, 0] = np.inf
    tifffile.imwrite(root / 'train/img/1.tif', image)
    return segmunich_item(root)


def label_outside_classes(tmp_path: Path) -> Callable[[], object]:
    root = synthetic_root(tmp_path)
    with rasterio.open(root / 'masks/000001.tif', 'r+') as dst:
        dst.write(np.full((1, 16, 16), 7, np.uint8))
    dataset = SyntheticDataset(root)
    return lambda: dataset[1]


def image_mask_size_mismatch(tmp_path: Path) -> Callable[[], object]:
    root = segmunich_root(tmp_path)
    tifffile.imwrite(root / 'train/label/1.tif', np.zeros((16, 32), np.uint8))
    return segmunich_item(root)


def truncated_tiff(tmp_path: Path) -> Callable[[], object]:
    root = segmunich_root(tmp_path)
    path = root / 'train/img/1.tif'
    path.write_bytes(path.read_bytes()[:300])
    return segmunich_item(root)


def empty_folder(tmp_path: Path) -> Callable[[], object]:
    return lambda: SegMunich(tmp_path)


def empty_synthetic_folder(tmp_path: Path) -> Callable[[], object]:
    return lambda: SyntheticDataset(tmp_path)


def missing_manifest(tmp_path: Path) -> Callable[[], object]:
    root = synthetic_root(tmp_path)
    os.remove(root / 'manifest.json')
    return lambda: SyntheticDataset(root)


def manifest_names_missing_files(tmp_path: Path) -> Callable[[], object]:
    root = synthetic_root(tmp_path)
    os.remove(root / 'masks/000002.tif')
    return lambda: SyntheticDataset(root)


def manifest_edited_band_count(tmp_path: Path) -> Callable[[], object]:
    import json

    root = synthetic_root(tmp_path)
    manifest = json.loads((root / 'manifest.json').read_text())
    manifest['bands'] = manifest['bands'][:3]
    (root / 'manifest.json').write_text(json.dumps(manifest))
    dataset = SyntheticDataset(root)
    return lambda: dataset[0]


def change_dates_differ_in_size(tmp_path: Path) -> Callable[[], object]:
    root = synthetic_root(tmp_path, task='change')
    profile = {
        'driver': 'GTiff',
        'dtype': 'float32',
        'count': 4,
        'height': 8,
        'width': 8,
    }
    with rasterio.open(root / 'images2/000000.tif', 'w', **profile) as dst:
        dst.write(np.ones((4, 8, 8), np.float32))
    dataset = SyntheticDataset(root)
    return lambda: dataset[0]


DATASET_CASES = {
    'wrong band count': (
        wrong_band_count,
        InvalidInputError,
        r'1\.tif: image has 7 bands, expected 10',
    ),
    'NaN pixels': (
        nan_pixels,
        InvalidInputError,
        r'1\.tif: image holds 1 NaN or infinite values\. Fill or mask',
    ),
    'Inf pixels': (
        inf_pixels,
        InvalidInputError,
        r'1\.tif: image holds 1 NaN or infinite values',
    ),
    'labels outside [0, K)': (
        label_outside_classes,
        InvalidInputError,
        r'000001\.tif: label values span \[7, 7\], outside the 3 classes',
    ),
    'image/mask size mismatch': (
        image_mask_size_mismatch,
        InvalidInputError,
        r'1\.tif is \(32, 32\) pixels but its mask .*\(16, 32\)',
    ),
    'truncated TIFF': (
        truncated_tiff,
        InvalidInputError,
        r'1\.tif: cannot read this TIFF .*truncated or corrupted',
    ),
    'empty folder (SegMunich)': (
        empty_folder,
        DatasetNotFoundError,
        r'Dataset not found in `root=',
    ),
    'empty folder (generated data)': (
        empty_synthetic_folder,
        InvalidInputError,
        r'manifest\.json.*specdm sample',
    ),
    'missing manifest': (
        missing_manifest,
        InvalidInputError,
        r'manifest\.json.*specdm sample',
    ),
    'manifest naming missing files': (
        manifest_names_missing_files,
        InvalidInputError,
        r'masks/000002\.tif',
    ),
    'manifest edited to another band count': (
        manifest_edited_band_count,
        InvalidInputError,
        r'000000\.tif.*4 bands.*3',
    ),
    'change pair dates differ in size': (
        change_dates_differ_in_size,
        InvalidInputError,
        r'000000\.tif is \(16, 16\) pixels but .*\(8, 8\)',
    ),
}


@pytest.mark.parametrize('case', DATASET_CASES)
def test_dataset_case(case: str, tmp_path: Path) -> None:
    setup, error, pattern = DATASET_CASES[case]
    call = setup(tmp_path)
    with pytest.raises(error, match=pattern):
        call()


# Task and CLI cases.


def test_vae_checkpoint_with_other_band_count(
    tiny_vae: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ['fit', '--config', str(ROOT / 'benchmarks/configs/diffusion.yaml')]
    args += ['--config', str(ROOT / 'datamodules/simulated_change.yaml')]
    args += [f'--model.init_args.vae_checkpoint={tiny_vae["simulated_segmentation"]}']
    args += ['--trainer.fast_dev_run=true', f'--trainer.default_root_dir={tmp_path}']
    args += ['--data.init_args.num_train=4', '--data.init_args.size=32']
    err = cli_error(args, capsys)
    assert re.search(
        r'specdm fit: error: .*built for 10 bands .* datamodule gives 13', err
    )


def test_vae_checkpoint_with_other_classes(
    tiny_vae: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ['fit', '--config', str(ROOT / 'benchmarks/configs/diffusion.yaml')]
    args += ['--config', str(ROOT / 'datamodules/segmunich.yaml')]
    args += [
        f'--data.dict_kwargs.root={DATA / "segmunich"}',
        '--data.init_args.num_workers=0',
    ]
    args += [f'--model.init_args.vae_checkpoint={tiny_vae["simulated_segmentation"]}']
    args += ['--trainer.fast_dev_run=true', f'--trainer.default_root_dir={tmp_path}']
    err = cli_error(args, capsys)
    assert re.search(r'built for 8 classes .* datamodule gives 13', err)


def _sample(checkpoint: Path, out: Path, *extra: str) -> list[str]:
    return ['sample', '--checkpoint', str(checkpoint), '--out', str(out), *extra]


def test_diffusion_checkpoint_without_vae(
    tiny_vae: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = cli_error(
        _sample(
            tiny_vae['simulated_segmentation'], tmp_path / 'o', '--num-samples', '2'
        ),
        capsys,
    )
    assert 'not a LatentDiffusion checkpoint with its VAE' in err


@pytest.mark.parametrize(
    ('extra', 'message'),
    [
        (['--num-samples', '0'], '--num-samples 0: ask for at least one sample'),
        (['--num-samples', '-5'], '--num-samples -5: ask for at least one sample'),
        (
            ['--num-samples', '2', '--steps', '1001'],
            'steps=1001: must lie in [1, 1000]',
        ),
        (
            ['--num-samples', '2', '--sampler', 'heun'],
            "sampler='heun' is unknown: choose one of ddpm, ddim, dpmpp",
        ),
        (
            ['--num-samples', '2', '--batch-size', '0'],
            '--batch-size 0: must be at least 1',
        ),
    ],
)
def test_sample_arguments(
    tiny_diffusion: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    err = cli_error(
        _sample(tiny_diffusion['simulated_segmentation'], tmp_path / 'o', *extra),
        capsys,
    )
    assert message in err


def test_output_folder_not_writable(
    tiny_diffusion: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / 'a_file'
    blocker.write_text('not a folder')
    err = cli_error(
        _sample(
            tiny_diffusion['simulated_segmentation'],
            blocker / 'out',
            '--num-samples',
            '2',
            '--steps',
            '2',
        ),
        capsys,
    )
    assert f'--out {blocker / "out"}: cannot write there' in err


def test_output_folder_with_missing_parents_is_created(
    tiny_diffusion: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / 'new' / 'nested' / 'out'
    main(
        _sample(
            tiny_diffusion['simulated_segmentation'],
            out,
            '--num-samples',
            '2',
            '--steps',
            '2',
        )
    )
    assert len(SyntheticDataset(out)) == 2


def test_full_disk(
    tiny_diffusion: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_tiff = DatasetWriter._write_tiff
    written: list[str] = []

    def fill_up(self: DatasetWriter, path: str, array: np.ndarray) -> None:
        if len(written) >= 2:  # the disk fills up after the first pair (image + mask)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written.append(path)
        write_tiff(self, path, array)

    monkeypatch.setattr(DatasetWriter, '_write_tiff', fill_up)
    out = tmp_path / 'out'
    args = _sample(
        tiny_diffusion['simulated_segmentation'],
        out,
        '--num-samples',
        '3',
        '--steps',
        '2',
        '--batch-size',
        '1',
    )
    err = cli_error(args, capsys)
    assert 'writing sample 1 failed (No space left on device)' in err
    assert 'the 1 finished samples are kept' in err
    assert not list(out.rglob('*tmp*'))
    monkeypatch.setattr(DatasetWriter, '_write_tiff', write_tiff)
    main(args)
    assert len(SyntheticDataset(out)) == 3


def test_non_numeric_config_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ['fit', '--config', str(ROOT / 'benchmarks/configs/vae.yaml')]
    args += ['--config', str(ROOT / 'datamodules/simulated_segmentation.yaml')]
    args += ['--model.init_args.lr=fast', '--trainer.fast_dev_run=true']
    err = cli_error(args, capsys)
    assert 'lr' in err
    assert 'fast' in err


class Hostile:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (
            os.system,
            (f'touch {os.environ.get("HOSTILE_MARKER", "/tmp/specdm-hostile")}',),
        )


def test_hostile_pickle_checkpoint_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / 'code-ran'
    monkeypatch.setenv('HOSTILE_MARKER', str(marker))
    checkpoint = tmp_path / 'evil.ckpt'
    torch.save({'state_dict': {}, 'payload': Hostile()}, checkpoint)
    err = cli_error(_sample(checkpoint, tmp_path / 'o', '--num-samples', '1'), capsys)
    assert 'refused to load' in err
    assert not marker.exists()


@pytest.mark.parametrize(
    ('content', 'message'),
    [
        (None, 'checkpoint not found'),
        (b'PK\x03\x04 truncated', 'cannot read this checkpoint'),
    ],
)
def test_missing_or_corrupted_checkpoint(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: bytes | None,
    message: str,
) -> None:
    checkpoint = tmp_path / 'model.ckpt'
    if content is not None:
        checkpoint.write_bytes(content)
    err = cli_error(_sample(checkpoint, tmp_path / 'o', '--num-samples', '1'), capsys)
    assert f'{checkpoint}: {message}' in err
