"""GPU-path options of the tasks (channels_last, torch.compile) and of sampling."""

from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Trainer
from torch._dynamo.eval_frame import OptimizedModule
from torch._dynamo.utils import counters

from torchgeo_specdm.datamodules import SimulatedSegmentationDataModule
from torchgeo_specdm.datasets import InvalidInputError
from torchgeo_specdm.sample import sampling_device
from torchgeo_specdm.tasks import LatentDiffusion, TwoStreamVAE

from .conftest import fit_tiny_diffusion


def test_fast_dev_run_channels_last(tiny_vae: dict[str, Path], tmp_path: Path) -> None:
    data = 'simulated_segmentation'
    extra = ['--trainer.fast_dev_run=true', '--model.init_args.channels_last=true']
    fit_tiny_diffusion(tiny_vae[data], data, tmp_path, extra)


def test_channels_last_and_compile_options(
    tiny_vae: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled: list[Any] = []
    real_compile = torch.compile

    def compile_aot_eager(module: Any, *args: Any, **kwargs: Any) -> Any:
        # The real torch.compile: Dynamo captures the graphs and AOTAutograd traces
        # the backward, without inductor's code generation (minutes on this CPU;
        # test_compiled_unet_matches_eager runs inductor).
        compiled.append(module)
        return real_compile(module, backend='aot_eager')

    monkeypatch.setattr(torch, 'compile', compile_aot_eager)
    torch._dynamo.reset()
    counters.clear()
    model = LatentDiffusion(
        vae_checkpoint=str(tiny_vae['simulated_segmentation']),
        block_out_channels=(16, 32),
        channels_last=True,
        compile_unet=True,
    )
    weight = model.unet.conv_in.weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    datamodule = SimulatedSegmentationDataModule(
        num_train=8, num_val=4, size=32, batch_size=4
    )
    trainer = Trainer(
        fast_dev_run=True,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=datamodule)
    # Compiled once, for training only, and kept out of the weight names.
    assert compiled == [model.unet]
    wrapper = model.__dict__['_compiled_unet']
    assert isinstance(wrapper, OptimizedModule)
    assert wrapper._orig_mod is model.unet
    assert counters['stats']['unique_graphs'] >= 1
    assert not any('_orig_mod' in key for key in model.state_dict())
    path = tmp_path / 'model.ckpt'
    trainer.save_checkpoint(path)
    loaded = LatentDiffusion.from_checkpoint(path)
    assert loaded.hparams['channels_last']
    assert loaded.hparams['compile_unet']
    assert loaded.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    pipeline = loaded.pipeline('ddim')
    pipeline.set_progress_bar_config(disable=True)
    output = pipeline(num_samples=2, num_inference_steps=2)
    assert torch.isfinite(output.image).all()
    assert compiled == [model.unet]


def test_vae_channels_last_and_compile_options(tmp_path: Path) -> None:
    model = TwoStreamVAE(
        base_channels=8,
        mask_base_channels=8,
        channels_last=True,
        compile_autoencoder=True,
    )
    datamodule = SimulatedSegmentationDataModule(
        num_train=8, num_val=4, size=32, batch_size=4
    )
    trainer = Trainer(
        fast_dev_run=True,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    # The compile path without compiling: dynamo alone takes minutes on 2 CPU cores.
    with torch.compiler.set_stance('force_eager'):
        trainer.fit(model, datamodule=datamodule)
    weight = model.autoencoder.image_autoencoder.encoder.conv_in.weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    # Trained through the wrapper, which stays out of the weight names.
    assert isinstance(
        model.__dict__['_compiled_autoencoder'],
        torch._dynamo.eval_frame.OptimizedModule,
    )
    assert not any('_orig_mod' in key for key in model.state_dict())
    path = tmp_path / 'vae.ckpt'
    trainer.save_checkpoint(path)
    loaded = TwoStreamVAE.from_checkpoint(path)
    assert loaded.hparams['compile_autoencoder']
    weight = loaded.autoencoder.image_autoencoder.encoder.conv_in.weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    batch = next(iter(datamodule.val_dataloader()))
    image, mask = loaded.decode(loaded.encode(batch['image'], batch['mask']))
    assert torch.isfinite(image).all()
    assert mask.shape == batch['mask'].shape


def test_sampling_device() -> None:
    assert sampling_device('cpu') == torch.device('cpu')
    expected = 'cuda' if torch.cuda.is_available() else 'cpu'
    assert sampling_device('auto').type == expected
    if not torch.cuda.is_available():
        with pytest.raises(InvalidInputError, match='sees no GPU'):
            sampling_device('gpu')
    with pytest.raises(InvalidInputError, match='choose auto, gpu or cpu'):
        sampling_device('tpu')  # type: ignore[arg-type]


@pytest.mark.slow
def test_compiled_unet_matches_eager() -> None:
    # torch.compile with its default backend (inductor), as compile_unet trains
    # with; a cold inductor cache takes about 100 s on a 2-core CPU.
    torch.manual_seed(0)
    vae = TwoStreamVAE(in_channels=4, num_classes=3, num_images=1)
    model = LatentDiffusion(
        vae=vae, latent_size=[8, 8], block_out_channels=(16, 32), compile_unet=True
    )
    torch._dynamo.reset()
    counters.clear()
    model.train()
    unet = model._training_unet()
    assert isinstance(unet, OptimizedModule)
    assert unet._orig_mod is model.unet
    latent = torch.randn(2, *model.latent_shape())
    timesteps = torch.tensor([10, 900])
    with torch.no_grad():
        fast = unet(latent, timesteps).sample
        eager = model.unet(latent, timesteps).sample
    assert counters['stats']['unique_graphs'] >= 1
    # Inductor fuses and reorders float32 reductions: equal to about 1e-6 here.
    torch.testing.assert_close(fast, eager, rtol=1e-4, atol=1e-5)
