"""Alignment guidance at sampling and mask refinement at export, with a real guide."""

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import seed_everything
from torchgeo.tasks import SemanticSegmentation

from torchgeo_specdm.datamodules import (
    SimulatedChangeDataModule,
    SimulatedSegmentationDataModule,
)
from torchgeo_specdm.datasets.validation import InvalidInputError
from torchgeo_specdm.evaluation.judges import load_guide, make_downstream_task
from torchgeo_specdm.generation import (
    SpecDMPipeline,
    SpecDMPipelineOutput,
    consistency_loss,
    refine_mask,
)
from torchgeo_specdm.generation.guidance import (
    ThresholdedChangeGuide,
    class_probabilities,
    guide_input,
    guided_step_count,
)
from torchgeo_specdm.generation.refine import refine_ignore_index
from torchgeo_specdm.sample import file_sha256, generate
from torchgeo_specdm.tasks import LatentDiffusion
from torchgeo_specdm.tasks.utils import steps_trainer

from .test_bad_input import cli_error
from .test_conditional import conditional  # noqa: F401 (the fixture)
from .test_interrupt import SPECDM

DATAMODULES = {
    'simulated_segmentation': SimulatedSegmentationDataModule,
    'simulated_change': SimulatedChangeDataModule,
}


@pytest.fixture(scope='module')
def guides(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Downstream models trained for a few steps on the simulators, as guides."""
    out = {}
    for data, datamodule_class in DATAMODULES.items():
        seed_everything(0)
        datamodule = datamodule_class(num_train=8, num_val=4, size=32, batch_size=4)
        datamodule.setup('fit')
        image = datamodule.train_dataset[0]['image']
        task = make_downstream_task(
            image.shape[-3],
            datamodule.num_classes,
            data == 'simulated_change',
            schedule='steps',
        )
        trainer = steps_trainer(20, tmp_path_factory.mktemp(f'guide-{data}'))
        trainer.fit(task, datamodule=datamodule)
        path = tmp_path_factory.mktemp(f'guide-{data}') / 'guide.ckpt'
        trainer.save_checkpoint(path, weights_only=True)
        out[data] = path
    return out


def _pipeline(checkpoint: Path) -> tuple[SpecDMPipeline, LatentDiffusion]:
    model = LatentDiffusion.from_checkpoint(checkpoint)
    pipeline = model.pipeline('dpmpp')
    pipeline.set_progress_bar_config(disable=True)
    return pipeline, model


def _guide(model: LatentDiffusion, path: Path) -> Any:
    vae = model.vae.hparams
    return load_guide(
        path, vae['in_channels'], vae['num_classes'], vae['num_images'] == 2
    )


def _sample(pipeline: SpecDMPipeline, **kwargs: Any) -> SpecDMPipelineOutput:
    output = pipeline(num_samples=4, batch_size=4, seed=3, **kwargs)
    assert isinstance(output, SpecDMPipelineOutput)
    return output


def test_scale_zero_reproduces_unguided_sampling(
    tiny_diffusion: dict[str, Path], guides: dict[str, Path]
) -> None:
    pipeline, model = _pipeline(tiny_diffusion['simulated_segmentation'])
    guide = _guide(model, guides['simulated_segmentation'])
    plain = _sample(pipeline, num_inference_steps=4, output_type='latent')
    zero = _sample(
        pipeline,
        num_inference_steps=4,
        output_type='latent',
        guide=guide,
        alignment_guidance=0.0,
        guidance_start=1.0,
    )
    assert torch.equal(plain.latents, zero.latents)
    guided = _sample(
        pipeline,
        num_inference_steps=4,
        output_type='latent',
        guide=guide,
        alignment_guidance=1.0,
    )
    assert not torch.equal(plain.latents, guided.latents)
    # guidance_start 0 guides no step.
    none = _sample(
        pipeline,
        num_inference_steps=4,
        output_type='latent',
        guide=guide,
        alignment_guidance=1.0,
        guidance_start=0.0,
    )
    assert torch.equal(plain.latents, none.latents)


def test_guidance_composes_with_classifier_free_guidance(
    conditional: dict[str, Path],  # noqa: F811
    guides: dict[str, Path],
) -> None:
    pipeline, model = _pipeline(conditional['simulated_change'])
    guide = _guide(model, guides['simulated_change'])
    request: dict[str, Any] = {
        'num_inference_steps': 4,
        'output_type': 'latent',
        'condition': [0.2],
        'guidance_scale': 3.0,
    }
    plain = _sample(pipeline, **request)
    zero = _sample(pipeline, guide=guide, alignment_guidance=0.0, **request)
    guided = _sample(pipeline, guide=guide, alignment_guidance=1.0, **request)
    assert torch.equal(plain.latents, zero.latents)
    assert not torch.equal(plain.latents, guided.latents)


def test_guided_step_count() -> None:
    assert guided_step_count(15, 0.5) == 8
    assert guided_step_count(10, 0.3) == 3
    assert guided_step_count(10, 0.0) == 0
    assert guided_step_count(10, 1.0) == 10


def _consistency(
    pipeline: SpecDMPipeline, guide: Any, latents: torch.Tensor
) -> tuple[float, float]:
    with torch.no_grad():
        image, logits = pipeline.vae.autoencoder.decode_joint(latents)
        guide_logits = guide(guide_input(image))
        loss = float(consistency_loss(guide_logits, logits))
        guide_labels = (
            (guide_logits[:, 0] > 0).long()
            if guide_logits.shape[1] == 1
            else guide_logits.argmax(1)
        )
        agreement = float((guide_labels == logits.argmax(1)).float().mean())
    return loss, agreement


@pytest.mark.parametrize('data', ['simulated_segmentation', 'simulated_change'])
def test_guidance_raises_agreement(
    tiny_diffusion: dict[str, Path], guides: dict[str, Path], data: str
) -> None:
    pipeline, model = _pipeline(tiny_diffusion[data])
    guide = _guide(model, guides[data])
    results = {}
    for scale in (0.0, 1.0):
        output = pipeline(
            num_samples=8,
            batch_size=8,
            seed=3,
            num_inference_steps=6,
            output_type='latent',
            guide=guide,
            alignment_guidance=scale,
        )
        assert isinstance(output, SpecDMPipelineOutput)
        results[scale] = _consistency(pipeline, guide, output.latents)
    # Lower cross-entropy against the guide, and more pixels where the mask's
    # class is the guide's, over the same eight seeds.
    (loss, agreement), (guided_loss, guided_agreement) = results[0.0], results[1.0]
    assert guided_loss < loss
    assert guided_agreement > agreement


def test_refine_mask_marks_the_confident_disagreeing_pixels() -> None:
    mask = torch.tensor([[[0, 1], [2, 2]]])
    # Guide classes per pixel: 0 (p 0.9, agrees), 2 (p 0.9, disagrees),
    # 1 (p 0.89, below the threshold), 0 (p 0.95, disagrees).
    top = torch.tensor([[0.9, 0.9], [0.89, 0.95]])
    label = torch.tensor([[0, 2], [1, 0]])
    probabilities = torch.full((1, 3, 2, 2), 0.0)
    for i in range(2):
        for j in range(2):
            rest = (1 - top[i, j]) / 2
            probabilities[0, :, i, j] = rest
            probabilities[0, label[i, j], i, j] = top[i, j]
    relabelled, share = refine_mask(mask, probabilities, 'relabel', 0.9)
    assert relabelled.tolist() == [[[0, 2], [2, 0]]]
    assert share.tolist() == [0.5]
    ignored, share = refine_mask(mask, probabilities, 'ignore', 0.9, ignore_index=1)
    # Pixel (0, 1) is already 1, the ignore label: it is disputed but unchanged.
    assert ignored.tolist() == [[[0, 1], [2, 1]]]
    assert share.tolist() == [0.25]
    # The threshold is inclusive; confidence 0 disputes every disagreeing pixel.
    _, share = refine_mask(mask, probabilities, 'relabel', 0.95)
    assert share.tolist() == [0.25]
    relabelled, share = refine_mask(mask, probabilities, 'relabel', 0.0)
    assert relabelled.tolist() == [[[0, 2], [1, 0]]]
    assert share.tolist() == [0.75]
    with pytest.raises(InvalidInputError, match='no ignore index'):
        refine_mask(mask, probabilities, 'ignore', 0.9)


def test_refine_ignore_index() -> None:
    assert refine_ignore_index({'ignore_index': 2}, ['a', 'b', 'c']) == 2
    assert refine_ignore_index({'ignore_index': None}, ['Unlabelled', 'b']) == 0
    assert refine_ignore_index({}, ['a', 'unlabeled']) == 1
    assert refine_ignore_index({'ignore_index': None}, ['a', 'b']) is None


def _cli_args(checkpoint: Path, out: Path, guide: Path, *extra: str) -> list[str]:
    return [
        'sample',
        '--checkpoint',
        str(checkpoint),
        '--out',
        str(out),
        '--num-samples',
        '3',
        '--steps',
        '4',
        '--batch-size',
        '2',
        '--guide',
        str(guide),
        *extra,
    ]


GUIDED = ['--alignment-guidance', '1', '--refine', 'relabel']


def _files(root: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(path.relative_to(root)): (path.stat().st_mtime_ns, path.read_bytes())
        for path in sorted(root.rglob('*.tif'))
    }


def test_sample_with_guide_records_it_and_resumes(
    tiny_diffusion: dict[str, Path], guides: dict[str, Path], tmp_path: Path
) -> None:
    guide = guides['simulated_segmentation']
    out = tmp_path / 'out'
    args = SPECDM + _cli_args(
        tiny_diffusion['simulated_segmentation'],
        out,
        guide,
        *GUIDED,
        '--refine-confidence',
        '0.2',
    )
    result = subprocess.run(args, check=True, capture_output=True, text=True)
    assert 'refinement changed' in result.stdout
    manifest = json.loads((out / 'manifest.json').read_text())
    generator = manifest['generator']
    assert generator['guide'] == {'sha256': file_sha256(guide), 'path': 'guide.ckpt'}
    assert generator['alignment_guidance'] == 1.0
    assert generator['guidance_start'] == 0.5
    assert generator['refine'] == 'relabel'
    assert generator['refine_confidence'] == 0.2
    shares = [sample['refined_share'] for sample in manifest['samples']]
    assert len(shares) == 3
    # The briefly trained guide is rarely sure of a class: at 0.2, some pixels.
    assert all(0 < share < 1 for share in shares)
    before = _files(out)
    assert len(before) == 6
    # Rerunning the same command resumes: no file is rewritten.
    subprocess.run(args, check=True, capture_output=True)
    assert _files(out) == before
    # Another guidance setting refuses the folder.
    other = SPECDM + _cli_args(
        tiny_diffusion['simulated_segmentation'], out, guide, *GUIDED
    )
    result = subprocess.run(other, check=False, capture_output=True, text=True)
    assert result.returncode == 2
    assert 'different configuration' in result.stderr
    assert 'refine_confidence' in result.stderr
    assert 'Traceback' not in result.stderr


def test_unguided_manifest_records_no_guide(
    tiny_diffusion: dict[str, Path], tmp_path: Path
) -> None:
    manifest = generate(tiny_diffusion['simulated_change'], tmp_path / 'o', 1, steps=2)
    generator = manifest['generator']
    # Unguided folders record nothing new, so folders made before guidance resume.
    for key in ('guide', 'alignment_guidance', 'guidance_start', 'refine'):
        assert key not in generator
    assert 'refined_share' not in manifest['samples'][0]


def test_sharded_guided_sampling_matches_one_process(
    tiny_diffusion: dict[str, Path], guides: dict[str, Path], tmp_path: Path
) -> None:
    checkpoint = tiny_diffusion['simulated_segmentation']
    options: dict[str, Any] = {
        'steps': 3,
        'batch_size': 2,
        'seed': 1,
        'guide': guides['simulated_segmentation'],
        'alignment_guidance': 1.0,
        'refine': 'relabel',
        'refine_confidence': 0.2,
    }
    one = generate(checkpoint, tmp_path / 'one', 3, **options)
    two = generate(checkpoint, tmp_path / 'two', 3, devices=2, **options)
    assert one['samples'] == two['samples']
    assert all(sample['refined_share'] > 0 for sample in one['samples'])
    first, second = _files(tmp_path / 'one'), _files(tmp_path / 'two')
    assert len(first) == 6
    assert {k: v[1] for k, v in first.items()} == {k: v[1] for k, v in second.items()}


@pytest.mark.parametrize(
    ('data', 'setting', 'message'),
    [
        ('simulated_change', {'refine': 'ignore'}, '--refine ignore: these masks have'),
        ('simulated_segmentation', {'guide_threshold': 0.2}, 'only a change guide'),
    ],
)
def test_guide_setting_that_does_not_fit_the_task_is_refused(
    tiny_diffusion: dict[str, Path],
    guides: dict[str, Path],
    tmp_path: Path,
    data: str,
    setting: dict[str, Any],
    message: str,
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        generate(
            tiny_diffusion[data],
            tmp_path / 'o',
            1,
            steps=2,
            guide=guides[data],
            **setting,
        )


def test_thresholded_change_guide_reads_its_threshold_as_even_odds(
    tiny_diffusion: dict[str, Path], guides: dict[str, Path]
) -> None:
    _, model = _pipeline(tiny_diffusion['simulated_change'])
    guide = _guide(model, guides['simulated_change'])
    pair = torch.randn(2, 2, model.vae.hparams['in_channels'], 16, 16)
    with torch.no_grad():
        raw = guide(guide_input(pair, guide))
        even = ThresholdedChangeGuide(guide, 0.5)
        assert torch.equal(even(guide_input(pair, even)), raw)
        shifted = ThresholdedChangeGuide(guide, 0.2)
        calibrated = class_probabilities(shifted(guide_input(pair, shifted)))
    raw_change = raw.sigmoid()[:, 0]
    assert torch.equal(calibrated[:, 1] > 0.5, raw_change > 0.2)
    assert torch.allclose(calibrated.sum(1), torch.ones_like(raw_change))
    for threshold in (0.0, 1.0):
        with pytest.raises(InvalidInputError, match='strictly between 0 and 1'):
            ThresholdedChangeGuide(guide, threshold)


def test_guide_threshold_moves_refinement_and_is_recorded(
    tiny_diffusion: dict[str, Path], guides: dict[str, Path], tmp_path: Path
) -> None:
    options: dict[str, Any] = {
        'steps': 3,
        'seed': 1,
        'guide': guides['simulated_change'],
        'refine': 'relabel',
        'refine_confidence': 0.9,
    }
    checkpoint = tiny_diffusion['simulated_change']
    plain = generate(checkpoint, tmp_path / 'plain', 4, **options)
    low = generate(checkpoint, tmp_path / 'low', 4, guide_threshold=0.01, **options)
    assert 'guide_threshold' not in plain['generator']
    assert low['generator']['guide_threshold'] == 0.01

    def change(manifest: dict[str, Any]) -> float:
        return sum(s['class_fractions'][1] for s in manifest['samples'])

    # At threshold 0.01 the guide is sure of change wherever its sigmoid passes
    # about 0.5, so relabelling paints change that the default threshold leaves.
    assert change(low) > change(plain)
    with pytest.raises(InvalidInputError, match='different configuration'):
        generate(checkpoint, tmp_path / 'low', 4, guide_threshold=0.02, **options)


@pytest.mark.parametrize(
    ('extra', 'message'),
    [
        (['--alignment-guidance', '1'], '--alignment-guidance 1.0 needs a guide'),
        (['--alignment-guidance', '-1'], '--alignment-guidance -1.0: must be'),
        (['--alignment-guidance', 'nan'], '--alignment-guidance nan: must be'),
        (['--guidance-start', '2'], '--guidance-start 2.0: must lie in [0, 1]'),
        (['--refine', 'relabel'], '--refine relabel needs a guide'),
    ],
)
def test_guidance_arguments(
    tiny_diffusion: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    args = ['sample', '--checkpoint', str(tiny_diffusion['simulated_segmentation'])]
    args += ['--out', str(tmp_path / 'o'), '--num-samples', '2', *extra]
    err = cli_error(args, capsys)
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / 'o').exists()


@pytest.mark.parametrize(
    ('model', 'guide', 'message'),
    [
        ('simulated_segmentation', None, 'file not found'),
        ('simulated_segmentation', 'simulated_change', 'the guide takes 13 bands'),
        ('simulated_change', 'simulated_segmentation', 'the guide takes 10 bands'),
        ('simulated_segmentation', 'vae', 'not a downstream model checkpoint'),
    ],
)
def test_guide_that_does_not_fit(
    tiny_diffusion: dict[str, Path],
    tiny_vae: dict[str, Path],
    guides: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    model: str,
    guide: str | None,
    message: str,
) -> None:
    if guide is None:
        path = tmp_path / 'missing.ckpt'
    elif guide == 'vae':
        path = tiny_vae['simulated_segmentation']
    else:
        path = guides[guide]
    args = _cli_args(tiny_diffusion[model], tmp_path / 'o', path, *GUIDED)
    err = cli_error(args, capsys)
    assert f'--guide {path}: {message}' in err
    assert len(err.strip().splitlines()) == 1


def test_guide_with_other_classes_or_task(
    guides: dict[str, Path], tmp_path: Path
) -> None:
    path = guides['simulated_segmentation']
    guide = torch.load(path, weights_only=True)
    bands = guide['hyper_parameters']['in_channels']
    classes = guide['hyper_parameters']['num_classes']
    with pytest.raises(InvalidInputError, match=f'masks have {classes + 1} classes'):
        load_guide(path, bands, classes + 1, change=False)
    with pytest.raises(InvalidInputError, match='need a binary change detector'):
        load_guide(path, bands, 2, change=True)
    # A segmentation model whose bands fit a change pair's: its weights do not fit.
    change = guides['simulated_change']
    change_bands = torch.load(change, weights_only=True)['hyper_parameters'][
        'in_channels'
    ]
    task = SemanticSegmentation(
        model='unet',
        backbone='resnet18',
        in_channels=change_bands,
        task='binary',
        loss='bce',
    )
    fake = tmp_path / 'fake.ckpt'
    torch.save(
        {'state_dict': task.state_dict(), 'hyper_parameters': dict(task.hparams)}, fake
    )
    with pytest.raises(InvalidInputError, match='weights do not fit a change'):
        load_guide(fake, change_bands, 2, change=True)
