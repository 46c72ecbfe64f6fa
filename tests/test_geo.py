"""GeoDataModules as input: fake GeoTIFF tiles with a CRS and a mask layer.

The tiles (tests/data/raster_mask, written by its data.py) are read by torchgeo's
RasterDataset & RasterDataset through RasterMaskDataModule, a GeoDataModule whose
datasets are indexed by the bounding boxes its samplers draw.
"""

import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest
import rasterio
import torch
import yaml
from torchgeo.datasets import IntersectionDataset
from torchgeo.main import main as torchgeo_main
from torchgeo.samplers import GriddedPatchSampler, RandomPatchSampler

from torchgeo_specdm.cli import main
from torchgeo_specdm.datamodules import RasterMaskDataModule, SyntheticMixDataModule
from torchgeo_specdm.datasets import InvalidInputError, SyntheticDataset
from torchgeo_specdm.export import DatasetWriter
from torchgeo_specdm.tasks.utils import infer_data_spec

from .conftest import DATA, ROOT, TEST_GENERATOR

TILES = DATA / 'raster_mask'
CONF = ROOT / 'tests' / 'conf'
VAE = str(ROOT / 'benchmarks' / 'configs' / 'vae.yaml')
DIFFUSION = str(ROOT / 'benchmarks' / 'configs' / 'diffusion.yaml')
SEGMENTATION = str(ROOT / 'benchmarks' / 'configs' / 'segmentation.yaml')
PATHS = [
    f'--data.init_args.image_paths={TILES / "images"}',
    f'--data.init_args.mask_paths={TILES / "masks"}',
]
SMALL_VAE = [
    '--model.init_args.base_channels=8',
    '--model.init_args.mask_base_channels=8',
]
QUIET = ['--trainer.logger=false', '--trainer.enable_progress_bar=false']


def datamodule(**kwargs: object) -> RasterMaskDataModule:
    options: dict[str, object] = {
        'batch_size': 4,
        'patch_size': 16,
        'length': 8,
        'split_fractions': [0.6, 0.2, 0.2],
        'bands': ['B02', 'B03', 'B04', 'B08'],
    }
    options.update(kwargs)
    return RasterMaskDataModule(TILES / 'images', TILES / 'masks', **options)  # type: ignore[arg-type]


def test_fake_tiles_are_georeferenced() -> None:
    with rasterio.open(TILES / 'images' / 'tile_0_0.tif') as source:
        assert source.crs.to_epsg() == 32632
        assert source.count == 4
    with rasterio.open(TILES / 'masks' / 'landcover.tif') as source:
        assert source.crs.to_epsg() == 32632
        assert source.count == 1
        assert set(source.read(1).flatten().tolist()) == {0, 1, 2, 3}


def test_patches_come_from_the_samplers() -> None:
    dm = datamodule()
    dm.setup('fit')
    assert isinstance(dm.train_dataset, IntersectionDataset)
    assert isinstance(dm.train_sampler, RandomPatchSampler)
    assert isinstance(dm.val_sampler, GriddedPatchSampler)
    # The 6 tiles are assigned whole to disjoint areas.
    areas = [dm.train_dataset, dm.val_dataset, dm.test_dataset]
    assert [len(area) for area in areas] == [4, 1, 1]  # type: ignore[arg-type]
    geometries = [area.index.geometry.union_all() for area in areas]  # type: ignore[union-attr]
    for i in range(3):
        for j in range(i + 1, 3):
            assert geometries[i].intersection(geometries[j]).area == 0
    batch = next(iter(dm.train_dataloader()))
    assert batch['image'].shape == (4, 4, 16, 16)
    assert batch['mask'].shape == (4, 16, 16)
    assert batch['mask'].dtype == torch.long
    # Statistics of the training area, in native units (reflectance x 10000).
    assert dm.mean.shape == (4,)
    assert 500 < float(dm.mean.mean()) < 2500
    normalised = dm.aug(dict(batch))['image']
    assert abs(float(normalised.mean())) < 1.5


def test_data_spec_reads_a_batch_through_the_sampler() -> None:
    dm = datamodule()
    dm.setup('fit')
    with pytest.warns(UserWarning, match=r'span \[0, 3\], so num_classes=4'):
        spec = infer_data_spec(dm)
    assert spec['in_channels'] == 4
    assert spec['num_images'] == 1
    assert spec['num_classes'] == 4
    assert spec['class_source'] == 'labels'
    assert spec['size'] == (16, 16)
    assert spec['bands'] == ['B02', 'B03', 'B04', 'B08']
    assert spec['mean'] == pytest.approx(dm.mean.tolist())
    # A declared count is taken as it is.
    named = datamodule(class_names=['background', 'water', 'forest', 'built-up'])
    named.setup('fit')
    spec = infer_data_spec(named)
    assert spec['num_classes'] == 4
    assert spec['class_names'] == ['background', 'water', 'forest', 'built-up']


@pytest.mark.parametrize('cli', ['specdm', 'torchgeo'])
def test_fast_dev_run(cli: str, tmp_path: Path) -> None:
    args = ['fit', '--config', VAE, '--config', str(CONF / 'raster_mask.yaml')]
    args += ['--trainer.fast_dev_run=true', f'--trainer.default_root_dir={tmp_path}']
    (main if cli == 'specdm' else torchgeo_main)(args + PATHS + SMALL_VAE)


def test_explicit_class_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ['fit', '--config', VAE, '--config', str(CONF / 'raster_mask.yaml')]
    base += ['--trainer.fast_dev_run=true', f'--trainer.default_root_dir={tmp_path}']
    base += PATHS + SMALL_VAE
    # More classes than the labels hold: accepted, with a warning.
    with pytest.warns(UserWarning, match='the model has 7 classes'):
        main([*base, '--model.init_args.num_classes=7'])
    # Fewer than the labels hold: one line with the fix, exit code 2.
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main([*base, '--model.init_args.num_classes=3'])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert 'Traceback' not in err
    # Lightning's own lines come first; ours is the last, and only one.
    err = err.strip().splitlines()[-1]
    assert err.startswith('specdm fit: error: the model was built for 3 classes')
    assert 'labels up to 3' in err
    assert 'set it to at least 4' in err


def test_patch_size_the_latents_cannot_divide(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ['fit', '--config', VAE, '--config', str(CONF / 'raster_mask.yaml')]
    args += ['--trainer.fast_dev_run=true', f'--trainer.default_root_dir={tmp_path}']
    args += [*PATHS, *SMALL_VAE, '--data.init_args.patch_size=18']
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert 'Traceback' not in err
    assert err.strip().splitlines()[-1] == (
        'specdm fit: error: the datamodule serves 18 x 18 px images, which '
        'downsampling_factor=4 does not divide. Crop or pad them to a multiple of 4 '
        '(for a GeoDataModule, set patch_size to one), or set '
        '--model.init_args.downsampling_factor to a factor of both sides.'
    )


@pytest.mark.parametrize(
    ('options', 'message'),
    [
        ({'patch_size': 64}, r'patch_size=64: no patch of that size fits'),
        ({'split_fractions': [0.5, 0.5]}, r'split_fractions=\[0.5, 0.5\]'),
        ({'bands': ['B02', 'B03']}, r'names 2 bands but .*tile_\d_\d\.tif has 4'),
    ],
)
def test_bad_settings(options: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        datamodule(**options).setup('fit')


def test_masks_that_miss_the_images(tmp_path: Path) -> None:
    with rasterio.open(TILES / 'masks' / 'landcover.tif') as source:
        profile, labels = source.profile, source.read()
    profile['transform'] = rasterio.Affine.translation(1e5, 0) * profile['transform']
    (tmp_path / 'masks').mkdir()
    with rasterio.open(tmp_path / 'masks' / 'far.tif', 'w', **profile) as target:
        target.write(labels)
    dm = RasterMaskDataModule(TILES / 'images', tmp_path / 'masks', patch_size=16)
    with pytest.raises(InvalidInputError, match='do not overlap'):
        dm.setup('fit')


def test_train_sample_and_mix_back_from_the_cli(tmp_path: Path) -> None:
    """The whole geospatial flow from the CLI: VAE, diffusion, sample, mix."""
    data = ['--config', str(CONF / 'raster_mask.yaml'), *PATHS, *QUIET]
    args = ['fit', '--config', VAE, *data, *SMALL_VAE, '--trainer.max_epochs=2']
    args += [f'--trainer.default_root_dir={tmp_path / "vae"}']
    main(args)
    vae = next((tmp_path / 'vae').rglob('last.ckpt'))
    args = ['fit', '--config', DIFFUSION, *data]
    args += [f'--model.init_args.vae_checkpoint={vae}']
    args += ['--model.init_args.block_out_channels=[16, 32]']
    args += ['--model.init_args.num_val_samples=2', '--model.init_args.val_steps=2']
    args += ['--model.init_args.sample_every_n_epochs=1']
    args += ['--trainer.max_epochs=2', '--trainer.check_val_every_n_epoch=1']
    args += [f'--trainer.default_root_dir={tmp_path / "diffusion"}']
    main(args)
    diffusion = next((tmp_path / 'diffusion').rglob('last.ckpt'))
    out = tmp_path / 'generated'
    main(
        [
            'sample',
            *('--checkpoint', str(diffusion), '--out', str(out)),
            *('--num-samples', '6', '--steps', '3'),
        ]
    )
    generated = SyntheticDataset(out)
    assert len(generated) == 6
    assert list(generated.bands) == ['B02', 'B03', 'B04', 'B08']
    assert generated[0]['image'].shape == (4, 16, 16)
    assert generated[0]['mask'].shape == (16, 16)

    # The pairs go back into the training patches; validation stays real.
    real = datamodule()
    mixed = SyntheticMixDataModule(real, out)
    mixed.setup('fit')
    indices = list(mixed.train_sampler)  # type: ignore[arg-type]
    assert len(indices) == 8 + 6
    images = torch.stack([mixed.train_dataset[i]['image'] for i in indices])  # type: ignore[index]
    synthetic = torch.stack([generated[i]['image'] for i in range(6)])
    matches = sum(bool((image == fake).all()) for image in images for fake in synthetic)
    assert matches == 6
    batches = list(mixed.train_dataloader())
    assert len(batches) == 14 // 4  # drop_last, as GeoDataModule's training loader
    assert set(batches[0]) == {'image', 'mask'}
    assert mixed.train_aug is real.train_aug
    assert torch.equal(mixed.mean, real.mean)
    validation = mixed.val_dataloader()
    assert isinstance(validation.sampler, GriddedPatchSampler)
    for batch in validation:
        for image in batch['image']:
            assert not any(bool((image == fake).all()) for fake in synthetic)

    # A stock torchgeo task, then the VAE, train on the mix from the CLI.
    mix = ['--config', str(CONF / 'raster_mask_synthetic.yaml'), *QUIET]
    mix += [f'--data.init_args.synthetic_root={out}']
    mix += [f'--data.init_args.datamodule.init_args.image_paths={TILES / "images"}']
    mix += [f'--data.init_args.datamodule.init_args.mask_paths={TILES / "masks"}']
    mix += ['--trainer.max_epochs=1', '--trainer.limit_val_batches=1']
    mix += [f'--trainer.default_root_dir={tmp_path / "mix"}']
    args = ['fit', '--config', SEGMENTATION, *mix]
    args += ['--model.init_args.in_channels=4', '--model.init_args.num_classes=4']
    main(args)
    main(['fit', '--config', VAE, *mix, *SMALL_VAE])


def test_synthetic_ratio_on_a_geodatamodule(tmp_path: Path) -> None:
    writer = DatasetWriter(
        tmp_path / 'gen',
        'segmentation',
        ['B02', 'B03', 'B04', 'B08'],
        4,
        ['a', 'b', 'c', 'd'],
        TEST_GENERATOR,
    )
    for index in range(3):
        writer.write(
            index, torch.full((4, 16, 16), 7777.0), torch.full((16, 16), 1), index
        )
    writer.finalize(3)
    mixed = SyntheticMixDataModule(datamodule(), tmp_path / 'gen', synthetic_ratio=0.5)
    mixed.setup('fit')
    images = torch.cat([batch['image'] for batch in mixed.train_dataloader()])
    # Half of each epoch is synthetic: 8 real patches and 8 draws from 3 pairs.
    assert len(images) == 16
    assert sum(bool((image == 7777).all()) for image in images) == 8
    # Pairs at another size than the sampler's patches are refused.
    small = SyntheticMixDataModule(datamodule(patch_size=8), tmp_path / 'gen')
    with pytest.raises(InvalidInputError, match=r'synthetic images are \(4, 16, 16\)'):
        small.setup('fit')


def _bind(spec: dict[str, Any]) -> None:
    """Check that a config's class exists and takes the arguments it is given."""
    module, _, name = str(spec['class_path']).rpartition('.')
    cls = getattr(importlib.import_module(module), name)
    init_args = dict(spec.get('init_args') or {})
    for value in init_args.values():
        if isinstance(value, dict) and 'class_path' in value:
            _bind(value)
    inspect.signature(cls).bind(**init_args, **(spec.get('dict_kwargs') or {}))


@pytest.mark.parametrize(
    'config', sorted(path.name for path in (ROOT / 'datamodules').glob('*.yaml'))
)
def test_user_facing_data_configs_name_real_arguments(config: str) -> None:
    data = yaml.safe_load((ROOT / 'datamodules' / config).read_text())['data']
    _bind(data)
