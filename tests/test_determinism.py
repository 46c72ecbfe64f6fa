"""Same seed and config on CPU: byte-identical generated files and identical loss curves."""

import hashlib
from pathlib import Path
from typing import Any

from lightning.pytorch import seed_everything

from torchgeo_specdm.datamodules import SimulatedSegmentationDataModule
from torchgeo_specdm.sample import generate
from torchgeo_specdm.tasks import LatentDiffusion, TwoStreamVAE
from torchgeo_specdm.tasks.utils import steps_trainer

from .conftest import LossCurve


def _curve(make_task: Any, tmp_path: Path) -> list[float]:
    seed_everything(3)
    datamodule = SimulatedSegmentationDataModule(
        num_train=8, num_val=4, size=32, batch_size=4
    )
    curve = LossCurve()
    steps_trainer(4, tmp_path, callbacks=[curve]).fit(
        make_task(), datamodule=datamodule
    )
    return curve.losses


def test_vae_loss_curve_repeats(tmp_path: Path) -> None:
    def make() -> TwoStreamVAE:
        return TwoStreamVAE(base_channels=8, mask_base_channels=8)

    first, second = _curve(make, tmp_path), _curve(make, tmp_path)
    assert len(first) == 4
    assert first == second


def test_diffusion_loss_curve_repeats(
    tiny_vae: dict[str, Path], tmp_path: Path
) -> None:
    def make() -> LatentDiffusion:
        return LatentDiffusion(
            vae_checkpoint=str(tiny_vae['simulated_segmentation']),
            block_out_channels=(16, 32),
        )

    first, second = _curve(make, tmp_path), _curve(make, tmp_path)
    assert len(first) == 4
    assert first == second


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob('*.tif'))
    }


def test_generated_files_are_byte_identical(
    tiny_diffusion: dict[str, Path], tmp_path: Path
) -> None:
    checkpoint = tiny_diffusion['simulated_change']
    generate(checkpoint, tmp_path / 'a', 3, steps=3, seed=5)
    generate(checkpoint, tmp_path / 'b', 3, steps=3, seed=5)
    generate(checkpoint, tmp_path / 'c', 3, steps=3, seed=6)
    assert len(_digests(tmp_path / 'a')) == 9
    assert _digests(tmp_path / 'a') == _digests(tmp_path / 'b')
    assert _digests(tmp_path / 'a') != _digests(tmp_path / 'c')
    assert (tmp_path / 'a' / 'manifest.json').read_bytes() == (
        tmp_path / 'b' / 'manifest.json'
    ).read_bytes()
