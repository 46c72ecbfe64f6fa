"""Conditional diffusion: conditions from masks, guidance, requests and their manifests."""

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from torch import Tensor

from torchgeo_specdm.cli import main
from torchgeo_specdm.datasets import InvalidInputError, SyntheticDataset
from torchgeo_specdm.export import DatasetWriter, load_manifest
from torchgeo_specdm.generation.conditions import (
    ConditionEmbedding,
    class_fractions,
    condition_size,
    conditions_from_fractions,
    drop_conditions,
    flag_conditions,
    mask_conditions,
)
from torchgeo_specdm.generation.pipeline import SpecDMPipeline, sample_seed
from torchgeo_specdm.generation.request import (
    make_plan,
    parse_classes,
    parse_fraction_range,
    rebalance_targets,
)
from torchgeo_specdm.sample import generate
from torchgeo_specdm.tasks import LatentDiffusion

from .conftest import ROOT, TEST_GENERATOR, fit_tiny_diffusion

SIM_CLASSES = (
    'Arable land',
    'Pastures',
    'Forests',
    'Surface water',
    'Urban fabric',
    'Buildings',
    'Open spaces',
    'Wetlands',
)


@pytest.fixture(scope='module')
def conditional(
    tiny_vae: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Tiny conditional diffusion models: class fractions and change fraction."""
    out = {}
    kinds = {
        'simulated_segmentation': 'class_fraction',
        'simulated_change': 'change_fraction',
    }
    for data, kind in kinds.items():
        directory = tmp_path_factory.mktemp(f'conditional-{data}')
        extra = ['--trainer.max_epochs=2', '--trainer.logger=false']
        extra += [f'--model.init_args.condition={kind}']
        fit_tiny_diffusion(tiny_vae[data], data, directory, extra)
        out[data] = next(directory.rglob('last.ckpt'))
    return out


def _pipeline(checkpoint: Path, sampler: str = 'ddim') -> SpecDMPipeline:
    pipeline = LatentDiffusion.from_checkpoint(checkpoint).pipeline(sampler)  # type: ignore[arg-type]
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def _reference_loop(
    pipeline: SpecDMPipeline,
    index: int,
    seed: int,
    steps: int,
    labels: Tensor | None = None,
    attempt: int = 0,
    guidance_scale: float = 1.0,
) -> Tensor:
    """The plain diffusers loop for one sample, written out independently.

    With a guidance scale s other than 1, each step runs the U-Net twice, once on
    the labels and once on the null labels, and steps with
    ``uncond + s * (cond - uncond)``.
    """
    generator = torch.Generator().manual_seed(sample_seed(seed, index, attempt))
    latent = torch.randn((1, *pipeline.latent_shape), generator=generator)
    latent = latent * pipeline.scheduler.init_noise_sigma
    pipeline.scheduler.set_timesteps(steps)
    for t in pipeline.scheduler.timesteps:
        model_input = pipeline.scheduler.scale_model_input(latent, t)
        if labels is None:
            output = pipeline.unet(model_input, t).sample
        else:
            output = pipeline.unet(model_input, t, class_labels=labels).sample
        if labels is not None and guidance_scale != 1:
            null = torch.zeros_like(labels)
            uncond = pipeline.unet(model_input, t, class_labels=null).sample
            output = uncond + guidance_scale * (output - uncond)
        latent = pipeline.scheduler.step(
            output, t, latent, generator=[generator]
        ).prev_sample
    return latent


class _CountForwards:
    """Record the batch size of every U-Net forward (a real forward hook)."""

    def __init__(self, pipeline: SpecDMPipeline) -> None:
        self.sizes: list[int] = []
        self.handle = pipeline.unet.register_forward_hook(self._hook)

    def _hook(self, module: Any, args: Any, output: Any) -> None:
        self.sizes.append(int(args[0].shape[0]))

    def close(self) -> list[int]:
        self.handle.remove()
        return self.sizes


# Conditions from masks


def test_class_fractions_known_answers() -> None:
    mask = torch.tensor([[[0, 0], [1, 2]], [[2, 2], [2, 255]]])
    fractions = class_fractions(mask, 3)
    expected = torch.tensor([[0.5, 0.25, 0.25], [0.0, 0.0, 1.0]])
    torch.testing.assert_close(fractions, expected)
    torch.testing.assert_close(
        mask_conditions(mask, 'class_presence', 3),
        torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 1.0]]),
    )
    torch.testing.assert_close(mask_conditions(mask, 'class_fraction', 3), expected)
    # A mask of ignore labels only has no class at all.
    assert class_fractions(torch.full((1, 2, 2), 9), 3).sum() == 0


def test_change_fraction_known_answers() -> None:
    mask = torch.zeros(2, 1, 4, 4, dtype=torch.long)
    mask[0, 0, :1] = 1  # 4 of 16 pixels changed
    values = mask_conditions(mask, 'change_fraction', 2)
    torch.testing.assert_close(values, torch.tensor([[0.25], [0.0]]))
    # 'No change at all' is a real condition, not the null one.
    labels = flag_conditions(values)
    torch.testing.assert_close(labels, torch.tensor([[0.25, 1.0], [0.0, 1.0]]))
    with pytest.raises(InvalidInputError, match='binary change masks'):
        conditions_from_fractions(torch.zeros(1, 3), 'change_fraction')


def test_condition_sizes_and_dropout() -> None:
    assert condition_size('none', 8) == 0
    assert condition_size('class_fraction', 8) == 8
    assert condition_size('class_presence', 8) == 8
    assert condition_size('change_fraction', 2) == 1
    labels = flag_conditions(torch.rand(1000, 3))
    dropped = drop_conditions(labels, 0.25, torch.Generator().manual_seed(0))
    null_rows = (dropped == 0).all(dim=1)
    assert 200 < int(null_rows.sum()) < 300
    torch.testing.assert_close(dropped[~null_rows], labels[~null_rows])
    assert drop_conditions(labels, 0.0) is labels


def test_fresh_condition_embedding_is_a_no_op() -> None:
    embedding = ConditionEmbedding(3, 16)
    assert embedding(torch.rand(4, 4)).abs().max() == 0


# Request parsing


def test_parse_classes() -> None:
    assert parse_classes('wetlands', SIM_CLASSES) == [7]
    assert parse_classes('SURFACE_water, open  spaces,Wetlands', SIM_CLASSES) == [
        3,
        6,
        7,
    ]
    assert parse_classes('mine_dump,mine dump', ('a', 'Mine dump')) == [1]
    assert parse_classes('wetland,Mine_Dump', ('Wetlands', 'Mine dump')) == [0, 1]
    with pytest.raises(InvalidInputError, match='could be any of Open_spaces, Other'):
        parse_classes('o', ('Open spaces', 'Other'))
    with pytest.raises(InvalidInputError) as error:
        parse_classes('wetlands,swamp', SIM_CLASSES)
    message = str(error.value)
    assert "'swamp' is not a class" in message
    assert 'Surface_water' in message
    assert 'Wetlands' in message
    with pytest.raises(InvalidInputError, match='name at least one class'):
        parse_classes(' , ', SIM_CLASSES)


@pytest.mark.parametrize(
    ('text', 'message'),
    [
        (
            '0.1:1.5',
            r'--change-fraction 1.5: a fraction of pixels must lie in \[0, 1\]',
        ),
        ('-0.1:0.2', r'--change-fraction -0.1: a fraction'),
        ('0.3:0.1', 'the lower bound 0.3 exceeds the upper bound 0.1'),
        ('0.1', 'give a range LO:HI'),
        ('a:b', 'give a range LO:HI'),
        ('0.1:0.2:0.3', 'give a range LO:HI'),
    ],
)
def test_parse_fraction_range_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_fraction_range(text)


def test_parse_fraction_range() -> None:
    assert parse_fraction_range('0.1:0.2') == (0.1, 0.2)
    assert parse_fraction_range('0:0') == (0.0, 0.0)


def test_rebalance_targets_fill_the_rarest_classes_first() -> None:
    # Real image counts 10, 2, 5: the first three samples lift class 1 to 5,
    # then classes 1 and 2 share the rest (ties to the lower index).
    assert rebalance_targets([10, 2, 5], 6, [0, 1, 2]) == [1, 1, 1, 1, 2, 1]
    assert rebalance_targets([10, 2, 5], 2, [0, 2]) == [2, 2]


@pytest.mark.parametrize(
    ('kwargs', 'message'),
    [
        ({'kind': 'none', 'classes': 'wetlands'}, 'trained without conditions'),
        ({'classes': 'wetlands', 'min_fraction': 1.5}, r'--min-fraction 1.5'),
        ({'classes': 'wetlands', 'min_fraction': -0.1}, r'--min-fraction -0.1'),
        ({'min_fraction': 0.1}, '--min-fraction needs --classes'),
        ({'guidance_scale': 3.0}, '--guidance-scale 3.0 needs a request'),
        ({'classes': 'wetlands', 'guidance_scale': -1.0}, '--guidance-scale -1.0'),
        ({'change_fraction': '0.1:0.2'}, 'not on the changed-pixel fraction'),
        ({'classes': 'wetlands', 'change_fraction': '0.1:0.2'}, 'cannot be combined'),
        ({'classes': 'wetlands', 'max_attempts': 0}, '--max-attempts 0'),
        ({'rebalance': True}, 'no training class histogram'),
    ],
)
def test_make_plan_errors(kwargs: dict[str, Any], message: str) -> None:
    settings: dict[str, Any] = {'kind': 'class_fraction', 'guidance_scale': 1.0}
    settings.update(kwargs)
    kind, scale = settings.pop('kind'), settings.pop('guidance_scale')
    with pytest.raises(InvalidInputError, match=message):
        make_plan(kind, SIM_CLASSES, None, 4, scale, **settings)


def test_plan_conditions_meet_the_target() -> None:
    bank = torch.tensor([[0.9, 0.1, 0.0], [0.5, 0.2, 0.3], [0.4, 0.0, 0.6]])
    plan = make_plan('class_fraction', ('a', 'b', 'c'), bank, 4, 3.0, classes='c')
    assert plan is not None
    # Drawn from the training masks that hold class c, deterministic per attempt.
    for attempt in range(5):
        row = plan.condition(0, 1, attempt)
        assert any(torch.equal(row, r) for r in bank[1:])
        assert torch.equal(row, plan.condition(0, 1, attempt))
    # No training mask holds 40 % of b: b is raised to 1.5 x 40 % and the
    # others scaled to fill the rest.
    plan = make_plan(
        'class_fraction', ('a', 'b', 'c'), bank, 4, 3.0, classes='b', min_fraction=0.4
    )
    assert plan is not None
    row = plan.condition(0, 0, 0)
    assert float(row[1]) == pytest.approx(0.6)
    assert float(row.sum()) == pytest.approx(1.0)
    presence = make_plan('class_presence', ('a', 'b', 'c'), bank, 4, 3.0, classes='b')
    assert presence is not None
    assert float(presence.condition(0, 0, 0)[1]) == 1
    change = make_plan(
        'change_fraction',
        ('No change', 'Change'),
        None,
        4,
        3.0,
        change_fraction='0.1:0.3',
    )
    assert change is not None
    assert 0.15 <= float(change.condition(0, 0, 0)) <= 0.25
    mask = torch.zeros(1, 10, 10, dtype=torch.long)
    mask[0, :2] = 1
    assert change.meets(mask, 0)
    assert not change.meets(torch.zeros(1, 10, 10, dtype=torch.long), 0)


# Guidance in the pipeline


@pytest.mark.parametrize('sampler', ['ddim', 'dpmpp'])
def test_unconditional_model_keeps_the_plain_loop(
    tiny_diffusion: dict[str, Path], sampler: str
) -> None:
    pipeline = _pipeline(tiny_diffusion['simulated_segmentation'], sampler)
    assert pipeline.condition_size == 0
    counter = _CountForwards(pipeline)
    output = pipeline(indices=[3], batch_size=1, num_inference_steps=4, seed=5)
    assert counter.close() == [1] * 4
    expected = _reference_loop(pipeline, 3, 5, 4)
    assert torch.equal(output.latents, expected)
    with pytest.raises(InvalidInputError, match='trained without conditions'):
        pipeline(num_samples=1, num_inference_steps=2, condition=[0.5])


def test_guidance_scale_one_runs_the_conditional_branch_only(
    conditional: dict[str, Path],
) -> None:
    pipeline = _pipeline(conditional['simulated_segmentation'])
    assert pipeline.condition_size == 8
    condition = torch.full((8,), 1 / 8)
    labels = flag_conditions(condition[None])

    counter = _CountForwards(pipeline)
    guided_one = pipeline(
        indices=[2], batch_size=1, num_inference_steps=3, condition=condition
    )
    assert counter.close() == [1] * 3
    assert torch.equal(guided_one.latents, _reference_loop(pipeline, 2, 0, 3, labels))

    # No condition, and guidance scale 0, are the unconditional branch alone.
    null = torch.zeros_like(labels)
    unconditional = _reference_loop(pipeline, 2, 0, 3, null)
    counter = _CountForwards(pipeline)
    plain = pipeline(indices=[2], batch_size=1, num_inference_steps=3)
    zero = pipeline(
        indices=[2],
        batch_size=1,
        num_inference_steps=3,
        condition=condition,
        guidance_scale=0.0,
    )
    assert counter.close() == [1] * 6
    assert torch.equal(plain.latents, unconditional)
    assert torch.equal(zero.latents, unconditional)

    # Above 1: one doubled batch per step, and a different result.
    counter = _CountForwards(pipeline)
    guided = pipeline(
        indices=[2],
        batch_size=1,
        num_inference_steps=3,
        condition=condition,
        guidance_scale=3.0,
    )
    assert counter.close() == [2] * 3
    assert not torch.equal(guided.latents, guided_one.latents)
    # ... which is uncond + s * (cond - uncond) of the two branches at every step
    # (the pipeline runs them as one batch of two, hence the tolerance).
    expected = _reference_loop(pipeline, 2, 0, 3, labels, guidance_scale=3.0)
    torch.testing.assert_close(guided.latents, expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(
        _reference_loop(pipeline, 2, 0, 3, labels, guidance_scale=2.0),
        expected,
        rtol=1e-4,
        atol=1e-5,
    )


def test_guided_samples_keep_per_index_seeding(conditional: dict[str, Path]) -> None:
    pipeline = _pipeline(conditional['simulated_segmentation'])
    conditions = torch.rand(3, 8)
    conditions /= conditions.sum(1, keepdim=True)
    whole = pipeline(
        num_samples=3,
        batch_size=2,
        num_inference_steps=3,
        condition=conditions,
        guidance_scale=2.0,
        pad_batches=True,
    )
    single = pipeline(
        indices=[2],
        batch_size=2,
        num_inference_steps=3,
        condition=conditions[2:],
        guidance_scale=2.0,
        pad_batches=True,
    )
    torch.testing.assert_close(single.latents[0], whole.latents[2])
    redrawn = pipeline(
        indices=[2],
        attempts=[1],
        batch_size=2,
        num_inference_steps=3,
        condition=conditions[2:],
        guidance_scale=2.0,
        pad_batches=True,
    )
    assert not torch.allclose(redrawn.latents[0], whole.latents[2])


def test_pipeline_condition_errors(conditional: dict[str, Path]) -> None:
    pipeline = _pipeline(conditional['simulated_segmentation'])
    with pytest.raises(InvalidInputError, match='takes 8 condition values'):
        pipeline(num_samples=2, num_inference_steps=2, condition=[0.5, 0.5])
    with pytest.raises(InvalidInputError, match='takes 8 condition values'):
        pipeline(num_samples=2, num_inference_steps=2, condition=torch.rand(3, 8))
    with pytest.raises(InvalidInputError, match=r'guidance_scale=-1\.0'):
        pipeline(num_samples=1, condition=torch.rand(8), guidance_scale=-1.0)
    with pytest.raises(InvalidInputError, match='NaN or Inf'):
        pipeline(num_samples=1, condition=torch.full((8,), float('nan')))


def test_checkpoint_restores_the_condition(conditional: dict[str, Path]) -> None:
    checkpoint = torch.load(conditional['simulated_segmentation'], weights_only=True)
    assert checkpoint['hyper_parameters']['condition'] == 'class_fraction'
    assert checkpoint['training_fractions'].shape == (8, 8)
    model = LatentDiffusion.from_checkpoint(conditional['simulated_segmentation'])
    assert model.hparams['condition'] == 'class_fraction'
    assert model.training_fractions is not None
    torch.testing.assert_close(
        model.training_fractions.sum(1), torch.ones(8), atol=1e-5, rtol=0
    )
    histogram = model.class_histogram()
    assert histogram is not None
    assert float(histogram.sum()) == pytest.approx(1.0)
    change = LatentDiffusion.from_checkpoint(conditional['simulated_change'])
    assert change.pipeline().condition_size == 1


def test_change_fraction_needs_change_data(tiny_vae: dict[str, Path]) -> None:
    with pytest.raises(InvalidInputError, match='needs a change-detection VAE'):
        LatentDiffusion(
            vae_checkpoint=str(tiny_vae['simulated_segmentation']),
            condition='change_fraction',
        )
    with pytest.raises(InvalidInputError, match=r'condition_dropout=1\.0'):
        LatentDiffusion(condition='class_fraction', condition_dropout=1.0)


# specdm sample with requests


def _sample(checkpoint: Path, out: Path, *extra: str) -> dict[str, Any]:
    args = ['sample', '--checkpoint', str(checkpoint), '--out', str(out)]
    main([*args, '--steps', '3', '--batch-size', '2', *extra])
    return load_manifest(out)


def test_sample_classes_with_guidance(
    conditional: dict[str, Path], tmp_path: Path
) -> None:
    manifest = _sample(
        conditional['simulated_segmentation'],
        tmp_path / 'out',
        '--num-samples',
        '3',
        '--classes',
        'wetlands',
        '--min-fraction',
        '0.01',
        '--guidance-scale',
        '3',
    )
    assert manifest['generator']['guidance_scale'] == 3.0
    request = manifest['generator']['request']
    assert request['classes'] == ['Wetlands']
    assert request['min_fraction'] == 0.01
    assert request['on_miss'] == 'flag'
    assert len(manifest['samples']) == 3
    for sample in manifest['samples']:
        assert sample['target'] == {'classes': ['Wetlands'], 'min_fraction': 0.01}
        assert sample['attempts'] == 1
        assert sample['meets_request'] == (sample['class_fractions'][7] >= 0.01)
        assert sample['seed'] == sample_seed(0, sample['id'])
    assert len(SyntheticDataset(tmp_path / 'out')) == 3


def test_sample_redraw(conditional: dict[str, Path], tmp_path: Path) -> None:
    # 100 % wetland is out of reach of a tiny model: every pair is redrawn
    # until the last attempt, then kept and flagged.
    manifest = _sample(
        conditional['simulated_segmentation'],
        tmp_path / 'out',
        '--num-samples',
        '2',
        '--classes',
        'Wetlands',
        '--min-fraction',
        '1',
        '--guidance-scale',
        '2',
        '--on-miss',
        'redraw',
        '--max-attempts',
        '3',
    )
    for sample in manifest['samples']:
        assert sample['meets_request'] is False
        assert sample['attempts'] == 3
        assert sample['seed'] == sample_seed(0, sample['id'], 2)


def test_sample_change_fraction(conditional: dict[str, Path], tmp_path: Path) -> None:
    manifest = _sample(
        conditional['simulated_change'],
        tmp_path / 'out',
        '--num-samples',
        '2',
        '--change-fraction',
        '0:1',
        '--guidance-scale',
        '2',
    )
    assert manifest['generator']['request']['change_fraction'] == [0.0, 1.0]
    for sample in manifest['samples']:
        assert sample['target'] == {'change_fraction': [0.0, 1.0]}
        assert sample['meets_request'] is True


def test_sample_rebalance(conditional: dict[str, Path], tmp_path: Path) -> None:
    checkpoint = conditional['simulated_segmentation']
    manifest = _sample(
        checkpoint,
        tmp_path / 'out',
        '--num-samples',
        '4',
        '--rebalance',
        '--guidance-scale',
        '2',
    )
    fractions = LatentDiffusion.from_checkpoint(checkpoint).training_fractions
    assert fractions is not None
    counts = (fractions > 0).sum(0).tolist()
    expected = rebalance_targets(counts, 4, list(range(8)))
    request = manifest['generator']['request']
    assert request['rebalance'] is True
    assert request['training_class_images'] == counts
    targets = [s['target']['classes'] for s in manifest['samples']]
    assert targets == [[SIM_CLASSES[k]] for k in expected]


@pytest.mark.parametrize(
    ('extra', 'message'),
    [
        (['--classes', 'marsh'], "'marsh' is not a class of this model"),
        (['--classes', 'wetlands', '--min-fraction', '1.5'], '--min-fraction 1.5'),
        (['--change-fraction', '0.2:0.1'], 'conditioned on class_fraction'),
        (['--guidance-scale', '3'], 'needs a request'),
    ],
)
def test_sample_request_errors(
    conditional: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _sample(
            conditional['simulated_segmentation'],
            tmp_path / 'o',
            '--num-samples',
            '2',
            *extra,
        )
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / 'o').exists()


def test_sample_request_on_unconditional_model(
    tiny_diffusion: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        _sample(
            tiny_diffusion['simulated_segmentation'],
            tmp_path / 'o',
            '--num-samples',
            '2',
            '--classes',
            'wetlands',
        )
    assert 'trained without conditions' in capsys.readouterr().err


def test_sample_change_fraction_range_error(
    conditional: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        _sample(
            conditional['simulated_change'],
            tmp_path / 'o',
            '--num-samples',
            '2',
            '--change-fraction',
            '0.2:1.1',
        )
    assert '--change-fraction 1.1: a fraction of pixels' in capsys.readouterr().err


# Manifest schema


def test_manifest_request_fields(tmp_path: Path) -> None:
    writer = DatasetWriter(
        tmp_path / 'out',
        'segmentation',
        ('B02', 'B03', 'B04'),
        2,
        ('a', 'b'),
        {
            **TEST_GENERATOR,
            'guidance_scale': 3.0,
            'request': {'classes': ['b'], 'min_fraction': 0.1, 'on_miss': 'flag'},
        },
    )
    image, mask = torch.rand(3, 4, 4), torch.zeros(4, 4, dtype=torch.long)
    extra = {'target': {'classes': ['b'], 'min_fraction': 0.1}}
    record = writer.write(
        0, image, mask, 0, extra={**extra, 'meets_request': False, 'attempts': 2}
    )
    assert record['meets_request'] is False
    writer.write(1, image, mask, 0)  # fields are optional: old manifests load
    manifest = writer.finalize()
    assert manifest['samples'][0]['attempts'] == 2
    assert 'meets_request' not in manifest['samples'][1]
    with pytest.raises(InvalidInputError, match='meets_request'):
        writer.write(2, image, mask, 0, extra={'meets_request': 'yes'})
    with pytest.raises(InvalidInputError, match='unknown fields'):
        writer.write(2, image, mask, 0, extra={'id': 5})
    assert writer.completed() == {0, 1}
    json.dumps(load_manifest(tmp_path / 'out'))


def test_sharded_requests_match_one_process(
    conditional: dict[str, Path], tmp_path: Path
) -> None:
    from torchgeo_specdm.sample import generate

    checkpoint = conditional['simulated_segmentation']
    request: dict[str, Any] = {
        'classes': 'wetlands',
        'min_fraction': 0.05,
        'guidance_scale': 2.0,
        'on_miss': 'redraw',
        'max_attempts': 2,
    }
    one = generate(checkpoint, tmp_path / 'one', 3, steps=2, batch_size=2, **request)
    two = generate(
        checkpoint, tmp_path / 'two', 3, steps=2, batch_size=2, devices=2, **request
    )
    assert one['samples'] == two['samples']
    for name in ('images', 'masks'):
        for path in sorted((tmp_path / 'one' / name).iterdir()):
            assert (
                path.read_bytes() == (tmp_path / 'two' / name / path.name).read_bytes()
            )


def test_resumed_request_run_is_byte_identical(
    conditional: dict[str, Path], tmp_path: Path
) -> None:
    from torchgeo_specdm.sample import generate

    checkpoint = conditional['simulated_segmentation']
    request: dict[str, Any] = {'classes': 'forests', 'guidance_scale': 2.0}
    out = tmp_path / 'out'
    first = generate(checkpoint, out, 3, steps=2, batch_size=2, **request)
    image = (out / 'images' / '000001.tif').read_bytes()
    (out / '.parts' / '000001.json').unlink()
    (out / 'images' / '000001.tif').unlink()
    again = generate(checkpoint, out, 3, steps=2, batch_size=2, **request)
    assert again['samples'] == first['samples']
    assert (out / 'images' / '000001.tif').read_bytes() == image
    with pytest.raises(InvalidInputError, match='different configuration'):
        generate(checkpoint, out, 3, steps=2, batch_size=2, classes='wetlands')


def test_conditional_benchmark_report_and_figure(
    conditional: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    load_benchmark: Callable[[str], ModuleType],
) -> None:
    benchmark = load_benchmark('conditional')

    checkpoint = conditional['simulated_segmentation']
    work = tmp_path / 'work' / 'simulated-segmentation'
    request: dict[str, Any] = {'classes': 'wetlands', 'min_fraction': 0.01}
    model = LatentDiffusion.from_checkpoint(checkpoint)
    plan = make_plan(
        'class_fraction', SIM_CLASSES, model.training_fractions, 3, 3.0, **request
    )
    assert plan is not None
    regimes = []
    for scale in (None, 3.0):
        name = 'unconditional' if scale is None else 'guided_3'
        extra: dict[str, Any] = (
            {} if scale is None else {'guidance_scale': scale, **request}
        )
        generate(checkpoint, work / f'{name}_0', 3, steps=2, **extra)
        regimes.append(benchmark.score(work / f'{name}_0', plan, 1.0, scale))
    result = {
        'command': 'test',
        'dataset': 'simulated-segmentation',
        'request': plan.record,
        'sampler': 'dpmpp',
        'steps': 2,
        'num_samples': 3,
        'seed': 0,
        'training': {
            'train_steps': 5000,
            'train_minutes_budget': None,
            'train_minutes_with_caching': 21.0,
        },
        'real': benchmark.real_rates(plan),
        'regimes': regimes,
        'summary': 'test',
        'machine': 'test',
    }
    record = tmp_path / 'conditional_simulated-segmentation.json'
    record.write_text(json.dumps(result))
    results = tmp_path / 'results'
    results.mkdir()
    monkeypatch.setattr(
        sys,
        'argv',
        [
            'conditional.py',
            '--dataset',
            'simulated-segmentation',
            '--rerender',
            str(record),
            '--work-dir',
            str(tmp_path / 'work'),
            '--results-dir',
            str(results),
        ],
    )
    benchmark.main()
    assert (results / 'conditional_simulated-segmentation.png').stat().st_size > 5000
    text = (results / 'conditional_simulated-segmentation.md').read_text()
    assert '](conditional_simulated-segmentation.png)' in text
    assert '| requested | 3 |' in text
    assert '5000 training steps (21.0 min with latent caching)' in text
    assert 'None-minute' not in text


@pytest.mark.timeout(900)
def test_conditional_benchmark_scores_rows_with_the_judge(
    conditional: dict[str, Path], tmp_path: Path
) -> None:
    folders = {}
    for role in ('judge', 'guide'):
        folders[role] = tmp_path / role
        command = [sys.executable, str(ROOT / 'benchmarks' / 'judge.py')]
        command += ['--dataset', 'simulated-segmentation', '--role', role]
        command += ['--steps', '2', '--out', str(folders[role])]
        subprocess.run(command, check=True, capture_output=True, cwd=tmp_path)
    results = tmp_path / 'results'
    command = [sys.executable, str(ROOT / 'benchmarks' / 'conditional.py')]
    command += ['--dataset', 'simulated-segmentation']
    command += ['--checkpoint', str(conditional['simulated_segmentation'])]
    command += ['--classes', 'wetlands', '--min-fraction', '0.01']
    command += ['--guidance-scales', '3', '--num-samples', '3', '--steps', '2']
    command += ['--judge', str(folders['judge']), '--guide', str(folders['guide'])]
    command += ['--alignment-guidance', '1', '--work-dir', str(tmp_path / 'work')]
    command += ['--results-dir', str(results)]
    subprocess.run(command, check=True, capture_output=True, cwd=tmp_path)
    result = json.loads(
        (results / 'conditional_simulated-segmentation.json').read_text()
    )
    record = json.loads((folders['judge'] / 'judge.json').read_text())
    assert result['judge']['sha256'] == record['sha256']
    rows = result['regimes']
    assert [(r['guidance_scale'], r['alignment_guidance']) for r in rows] == [
        (None, 0.0),
        (3.0, 0.0),
        (3.0, 1.0),
    ]
    for row in rows:
        alignment = row['judge']['alignment']
        assert 0 <= alignment['mean'] <= 1
        assert alignment['real_mean'] > 0
        assert set(row['judge']['requested_class_sam_degrees']) <= {'Wetlands'}
    steered = tmp_path / 'work' / 'simulated-segmentation' / 'guided_3_align_1_0'
    generator = json.loads((steered / 'manifest.json').read_text())['generator']
    assert generator['alignment_guidance'] == 1.0
    assert generator['guide']['path'] == 'judge.ckpt'
    text = (results / 'conditional_simulated-segmentation.md').read_text()
    assert record['sha256'][:12] in text
    assert '| guidance 3 + alignment 1 |' in text


def test_conditional_benchmark_refuses_the_judge_as_guide(
    conditional: dict[str, Path], tmp_path: Path
) -> None:
    judge = tmp_path / 'judge'
    command = [sys.executable, str(ROOT / 'benchmarks' / 'judge.py')]
    command += ['--dataset', 'simulated-segmentation', '--steps', '1']
    subprocess.run([*command, '--out', str(judge)], check=True, capture_output=True)
    command = [sys.executable, str(ROOT / 'benchmarks' / 'conditional.py')]
    command += ['--dataset', 'simulated-segmentation']
    command += ['--checkpoint', str(conditional['simulated_segmentation'])]
    command += ['--judge', str(judge), '--guide', str(judge)]
    command += ['--alignment-guidance', '1', '--work-dir', str(tmp_path / 'work')]
    done = subprocess.run(
        command, check=False, capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 2
    assert '--guide is the judge' in done.stderr
    assert not (tmp_path / 'work' / 'simulated-segmentation').exists()
