"""LatentDiffusion task and SpecDMPipeline on tiny models."""

import inspect
from pathlib import Path

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from torchgeo_specdm.cli import main
from torchgeo_specdm.datasets import InvalidInputError
from torchgeo_specdm.generation.pipeline import make_scheduler, sample_seed
from torchgeo_specdm.tasks import LatentDiffusion

from .conftest import fit_tiny_diffusion


def _fit(
    tiny_vae: dict[str, Path], data: str, tmp_path: Path, extra: list[str]
) -> None:
    fit_tiny_diffusion(tiny_vae[data], data, tmp_path, extra)


@pytest.mark.parametrize('data', ['simulated_segmentation', 'simulated_change'])
def test_fast_dev_run(tiny_vae: dict[str, Path], data: str, tmp_path: Path) -> None:
    _fit(tiny_vae, data, tmp_path, ['--trainer.fast_dev_run=true'])


def test_checkpoint_holds_vae_ema_and_latent_size(
    tiny_diffusion: dict[str, Path],
) -> None:
    checkpoint = torch.load(tiny_diffusion['simulated_segmentation'], weights_only=True)
    assert 'ema' in checkpoint
    assert checkpoint['vae_hparams']['in_channels'] == 10
    assert checkpoint['hyper_parameters']['latent_size'] == [8, 8]
    model = LatentDiffusion.from_checkpoint(tiny_diffusion['simulated_segmentation'])
    assert model.latent_shape() == (8, 8, 8)  # 4 image + 4 mask channels (vae.yaml)


@pytest.mark.parametrize(
    ('data', 'image_shape', 'mask_shape'),
    [
        ('simulated_segmentation', (3, 10, 32, 32), (3, 32, 32)),
        ('simulated_change', (3, 2, 13, 32, 32), (3, 1, 32, 32)),
    ],
)
@pytest.mark.parametrize('sampler', ['ddpm', 'ddim', 'dpmpp'])
def test_pipeline_shapes(
    tiny_diffusion: dict[str, Path],
    data: str,
    image_shape: tuple[int, ...],
    mask_shape: tuple[int, ...],
    sampler: str,
) -> None:
    pipeline = LatentDiffusion.from_checkpoint(tiny_diffusion[data]).pipeline(sampler)  # type: ignore[arg-type]
    pipeline.set_progress_bar_config(disable=True)
    output = pipeline(num_samples=3, batch_size=2, num_inference_steps=3)
    assert output.image.shape == image_shape
    assert output.image.dtype == torch.float32
    assert output.mask.shape == mask_shape
    assert output.mask.dtype == torch.long
    assert torch.isfinite(output.image).all()
    # Native units: the denormalised images sit around the data's band means.
    assert float(output.image.mean()) > 50


def test_same_seed_same_samples_whatever_the_batch_size(
    tiny_diffusion: dict[str, Path],
) -> None:
    pipeline = LatentDiffusion.from_checkpoint(
        tiny_diffusion['simulated_segmentation']
    ).pipeline('ddpm')
    pipeline.set_progress_bar_config(disable=True)
    whole = pipeline(num_samples=4, batch_size=4, num_inference_steps=5, seed=7)
    single = pipeline(indices=[2], batch_size=1, num_inference_steps=5, seed=7)
    torch.testing.assert_close(
        single.latents[0], whole.latents[2], atol=1e-5, rtol=1e-5
    )
    assert torch.equal(single.mask[0], whole.mask[2])
    other = pipeline(num_samples=1, num_inference_steps=5, seed=8)
    assert not torch.allclose(other.latents[0], whole.latents[0])


def test_pipeline_argument_errors(tiny_diffusion: dict[str, Path]) -> None:
    pipeline = LatentDiffusion.from_checkpoint(
        tiny_diffusion['simulated_segmentation']
    ).pipeline('ddim')
    with pytest.raises(InvalidInputError, match=r'steps=2000: must lie in \[1, 1000\]'):
        pipeline(num_samples=1, num_inference_steps=2000)
    with pytest.raises(InvalidInputError, match='num_samples=0'):
        pipeline(num_samples=0)
    with pytest.raises(InvalidInputError, match="sampler='euler' is unknown"):
        make_scheduler('euler', dict(DDPMScheduler().config))


def test_sample_seed_depends_on_seed_and_index_only() -> None:
    assert sample_seed(0, 5) == sample_seed(0, 5)
    assert len({sample_seed(s, i) for s in range(3) for i in range(100)}) == 300


def test_scheduler_golden_values() -> None:
    # A dummy model that always predicts zero noise: DDIM (eta=0) then scales x by
    # sqrt(alpha_prev / alpha_t) each step, so from x_T = 1 it ends at 1 / sqrt(alpha_bar_T).
    config = dict(
        DDPMScheduler(
            num_train_timesteps=1000, beta_schedule='linear', clip_sample=False
        ).config
    )
    scheduler = make_scheduler('ddim', config)
    assert isinstance(scheduler, DDIMScheduler)
    scheduler.set_timesteps(10)
    sample = torch.ones(1, 1, 1, 1)
    for t in scheduler.timesteps:
        sample = scheduler.step(torch.zeros_like(sample), t, sample).prev_sample
    alpha_bar = scheduler.alphas_cumprod[int(scheduler.timesteps[0])]
    torch.testing.assert_close(
        sample.flatten()[0], 1 / alpha_bar.sqrt(), rtol=1e-4, atol=0
    )


def test_missing_vae_checkpoint_is_a_clear_error() -> None:
    with pytest.raises(InvalidInputError, match='needs a trained VAE'):
        LatentDiffusion()
    with pytest.raises(InvalidInputError, match='checkpoint not found'):
        LatentDiffusion(vae_checkpoint='nowhere.ckpt')


@pytest.mark.parametrize(
    ('data', 'image_shape'),
    [('simulated_segmentation', (10, 32, 32)), ('simulated_change', (2, 13, 32, 32))],
)
def test_sample_cli_export_and_reload(
    tiny_diffusion: dict[str, Path],
    data: str,
    image_shape: tuple[int, ...],
    tmp_path: Path,
) -> None:
    from torchgeo_specdm.datasets import SyntheticDataset

    out = tmp_path / 'out'
    main(
        [
            'sample',
            '--checkpoint',
            str(tiny_diffusion[data]),
            '--num-samples',
            '3',
            '--out',
            str(out),
            '--steps',
            '3',
            '--batch-size',
            '2',
        ]
    )
    dataset = SyntheticDataset(out)
    assert len(dataset) == 3
    assert dataset[0]['image'].shape == image_shape
    pipeline = LatentDiffusion.from_checkpoint(tiny_diffusion[data]).pipeline('dpmpp')
    expected = pipeline(indices=[1], num_inference_steps=3)
    torch.testing.assert_close(
        dataset[1]['image'], expected.image[0], rtol=1e-4, atol=1e-2
    )
    assert torch.equal(dataset[1]['mask'], expected.mask[0])


def test_sample_cli_errors(
    tiny_diffusion: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = str(tiny_diffusion['simulated_segmentation'])
    cases = [
        (['--num-samples', '0'], '--num-samples 0: ask for at least one sample'),
        (['--num-samples', '-3'], '--num-samples -3'),
        (
            ['--num-samples', '2', '--steps', '5000'],
            r'steps=5000: must lie in \[1, 1000\]',
        ),
        (['--num-samples', '2', '--sampler', 'euler'], "sampler='euler' is unknown"),
    ]
    for extra, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            main(
                [
                    'sample',
                    '--checkpoint',
                    checkpoint,
                    '--out',
                    str(tmp_path / 'o'),
                    *extra,
                ]
            )
        assert exit_info.value.code == 2
        assert message.replace('\\', '') in capsys.readouterr().err


def _checksums(root: Path) -> dict[str, str]:
    import hashlib

    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob('*.tif'))
    }


def test_sharded_sampling_is_byte_identical(
    tiny_diffusion: dict[str, Path], tmp_path: Path
) -> None:
    from torchgeo_specdm.sample import generate

    checkpoint = tiny_diffusion['simulated_segmentation']
    one = generate(checkpoint, tmp_path / 'one', 4, steps=3, batch_size=2, devices=1)
    two = generate(checkpoint, tmp_path / 'two', 4, steps=3, batch_size=2, devices=2)
    assert len(_checksums(tmp_path / 'one')) == 8
    assert _checksums(tmp_path / 'one') == _checksums(tmp_path / 'two')
    assert one['samples'] == two['samples']


def test_more_devices_than_batches_is_fine(
    tiny_diffusion: dict[str, Path], tmp_path: Path
) -> None:
    from torchgeo_specdm.sample import generate

    checkpoint = tiny_diffusion['simulated_segmentation']
    manifest = generate(checkpoint, tmp_path, 2, steps=2, batch_size=2, devices=2)
    assert len(manifest['samples']) == 2


@pytest.mark.parametrize(('sampler', 'steps'), [('ddpm', 1000), ('dpmpp', 25)])
def test_default_prediction_keeps_samplers_bounded(sampler: str, steps: int) -> None:
    # The cosine schedule's last alpha-bar is ~2e-9. A model output that is off by
    # one unit there (zeros here) moves an epsilon sampler ~1e4 units away; a
    # v-prediction sampler stays within a few units of the noise it started from.
    def final_spread(prediction_type: str) -> float:
        config = dict(
            DDPMScheduler(
                beta_schedule='squaredcos_cap_v2',
                prediction_type=prediction_type,
                clip_sample=False,
            ).config
        )
        scheduler = make_scheduler(sampler, config)
        scheduler.set_timesteps(steps)
        sample = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
        for t in scheduler.timesteps:
            sample = scheduler.step(torch.zeros_like(sample), t, sample).prev_sample
        return float(sample.abs().max())

    parameters = inspect.signature(LatentDiffusion).parameters
    assert parameters['prediction_type'].default == 'v_prediction'
    assert final_spread('v_prediction') < 10
    assert final_spread('epsilon') > 1000


def test_epsilon_with_cosine_schedule_warns() -> None:
    with (
        pytest.warns(UserWarning, match='v_prediction'),
        pytest.raises(InvalidInputError, match='needs a trained VAE'),
    ):
        LatentDiffusion(prediction_type='epsilon')
