"""Hyperspectral scenes: real Salinas-A, fake Indian Pines and Pavia U, their datamodules."""

import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import scipy.io
import torch
import yaml
from matplotlib.figure import Figure
from torchgeo.datasets import DatasetNotFoundError, RGBBandsMissingError

from torchgeo_specdm.datamodules import (
    IndianPinesDataModule,
    PaviaUDataModule,
    SalinasADataModule,
)
from torchgeo_specdm.datamodules.registry import DATASET_NAMES, build_datamodule
from torchgeo_specdm.datasets import (
    HyperspectralScene,
    IndianPines,
    InvalidInputError,
    PaviaU,
    SalinasA,
)

from .conftest import ROOT

#: Pixels per class after the remap, from the Salinas-A table in hsi/README.md.
SALINAS_COUNTS = [1790, 391, 1343, 616, 1525, 674, 799]
SCENES = [SalinasA, IndianPines, PaviaU]


@pytest.fixture(scope='module')
def salinas_root(shared_data: Path) -> Path:
    return shared_data / 'hsi' / 'salinas_a'


@pytest.fixture(scope='module')
def salinas_scene(salinas_root: Path) -> dict[str, torch.Tensor]:
    return SalinasA(salinas_root).load_scene()


def write_fake(
    root: Path,
    scene: type[HyperspectralScene],
    height: int = 24,
    width: int = 40,
    dtype: type = np.uint16,
) -> Path:
    """A fake scene in the real file layout; bands 0 and 1 hold each pixel's row and column."""
    root.mkdir(parents=True, exist_ok=True)
    rows, cols = np.mgrid[:height, :width]
    cube = np.empty((height, width, len(scene.all_bands)), dtype)
    cube[...] = 100 + np.arange(len(scene.all_bands))
    cube[..., 0], cube[..., 1] = rows, cols
    codes = np.array(sorted(scene.label_codes))
    labels = codes[(rows // 2 + cols) % len(codes)].astype(np.uint8)
    scipy.io.savemat(root / scene.image_file, {scene.image_key: cube})
    scipy.io.savemat(root / scene.label_file, {scene.label_key: labels})
    return root


def covered_pixels(dataset: HyperspectralScene) -> set[tuple[int, int]]:
    """Scene pixels in any patch of a dataset, read from the row/column bands."""
    pixels: set[tuple[int, int]] = set()
    for index in range(len(dataset)):
        image = dataset[index]['image']
        pixels |= set(zip(image[0].flatten().tolist(), image[1].flatten().tolist()))
    return {(int(row), int(col)) for row, col in pixels}


class TestRealSalinasA:
    def test_scene(self, salinas_scene: dict[str, torch.Tensor]) -> None:
        image, mask = salinas_scene['image'], salinas_scene['mask']
        assert image.shape == (204, 83, 86)
        assert image.dtype == torch.float32
        assert image.is_contiguous()
        assert mask.dtype == torch.long
        assert mask.shape == (83, 86)
        assert torch.bincount(mask.flatten()).tolist() == SALINAS_COUNTS
        assert sum(SALINAS_COUNTS[1:]) == 5348
        # Values from hsi/README.md: int16 radiance, -9 ... 8373, 183 negative values.
        assert float(image.min()) == -9
        assert float(image.max()) == 8373
        assert int((image < 0).sum()) == 183

    def test_band_metadata(self) -> None:
        assert len(SalinasA.all_bands) == len(SalinasA.wavelengths) == 204
        assert 'B107' in SalinasA.all_bands
        for dropped in ('B108', 'B112', 'B154', 'B167', 'B224'):
            assert dropped not in SalinasA.all_bands
        assert np.all(np.diff(SalinasA.wavelengths) > 0)
        assert SalinasA.wavelengths[0] == 400
        assert 2480 < SalinasA.wavelengths[-1] < 2500
        for band, target in zip(SalinasA.rgb_bands, (640, 550, 470), strict=True):
            centre = SalinasA.wavelengths[SalinasA.all_bands.index(band)]
            assert abs(centre - target) < 5

    def test_patches(self, salinas_root: Path) -> None:
        dataset = SalinasA(salinas_root, split='val', stride=8)
        assert len(dataset) == 9
        sample = dataset[0]
        assert sample['image'].shape == (204, 16, 16)
        assert sample['image'].dtype == torch.float32
        assert sample['mask'].shape == (16, 16)
        assert sample['mask'].dtype == torch.long

    def test_split_is_spatially_disjoint(
        self, salinas_root: Path, salinas_scene: dict[str, torch.Tensor]
    ) -> None:
        datasets = {
            'train': SalinasA(salinas_root, split='train', num_patches=512),
            'val': SalinasA(salinas_root, split='val', stride=8),
            'test': SalinasA(salinas_root, split='test', stride=8),
        }
        assert [datasets[s].image.shape[-1] for s in datasets] == [52, 17, 17]
        covered = {}
        for split, dataset in datasets.items():
            covered[split] = torch.zeros(83, 86, dtype=torch.bool)
            for index in range(len(dataset)):
                top, left = dataset.window(index)
                window = (..., slice(top, top + 16), slice(left, left + 16))
                covered[split][window] = True
                if index < 20:  # the windows say where the patches really are
                    sample = dataset[index]
                    assert torch.equal(sample['image'], salinas_scene['image'][window])
                    assert torch.equal(sample['mask'], salinas_scene['mask'][window])
        assert not (covered['train'] & covered['test']).any()
        assert not (covered['train'] & covered['val']).any()
        assert not (covered['val'] & covered['test']).any()
        columns = {
            split: mask.any(dim=0).nonzero().flatten()
            for split, mask in covered.items()
        }
        assert int(columns['train'].max()) == 51
        assert int(columns['val'].min()) == 52
        assert int(columns['test'].min()) == 69

    def test_band_subset(
        self, salinas_root: Path, salinas_scene: dict[str, torch.Tensor]
    ) -> None:
        bands = ('B050', 'B010')
        dataset = SalinasA(salinas_root, split='test', bands=bands)
        indices = [SalinasA.all_bands.index(band) for band in bands]
        top, left = dataset.window(0)
        expected = salinas_scene['image'][indices, top : top + 16, left : left + 16]
        assert torch.equal(dataset[0]['image'], expected)

    def test_plot(self, salinas_root: Path) -> None:
        dataset = SalinasA(salinas_root, split='val')
        sample = dataset[0]
        sample['prediction'] = sample['mask'].clone()
        figure = dataset.plot(sample, suptitle='Salinas-A')
        assert isinstance(figure, Figure)
        legend = [text.get_text() for text in figure.legends[0].get_texts()]
        assert legend == list(SalinasA.classes)
        plt.close(figure)

    def test_plot_needs_visible_bands(self, salinas_root: Path) -> None:
        dataset = SalinasA(salinas_root, bands=('B100', 'B150'))
        with pytest.raises(RGBBandsMissingError):
            dataset.plot(dataset[0])

    def test_block_smaller_than_patch(self, salinas_root: Path) -> None:
        with pytest.raises(
            InvalidInputError,
            match=r"split 'val': its block is 83 x 17 px .* patch_size=32",
        ):
            SalinasA(salinas_root, split='val', patch_size=32)

    def test_truncated_file(self, salinas_root: Path, tmp_path: Path) -> None:
        data = (salinas_root / SalinasA.image_file).read_bytes()
        (tmp_path / SalinasA.image_file).write_bytes(data[: len(data) // 2])
        shutil.copy(salinas_root / SalinasA.label_file, tmp_path)
        with pytest.raises(
            InvalidInputError,
            match=r'SalinasA_corrected\.mat: cannot read this \.mat file .*truncated',
        ):
            SalinasA(tmp_path)


@pytest.fixture(scope='module')
def datamodule(salinas_root: Path) -> SalinasADataModule:
    module = SalinasADataModule(root=salinas_root, batch_size=8, patches_per_epoch=16)
    module.setup('fit')
    return module


class TestSalinasADataModule:
    def test_attributes(self, datamodule: SalinasADataModule) -> None:
        assert datamodule.num_classes == 7
        assert datamodule.class_names == SalinasA.classes
        assert datamodule.class_names[datamodule.ignore_index] == 'Unlabelled'
        assert datamodule.bands == SalinasA.all_bands
        assert len(datamodule.wavelengths) == 204
        assert datamodule.mean.shape == datamodule.std.shape == (204,)
        assert len(datamodule.train_dataset) == 16  # type: ignore[arg-type]
        assert len(datamodule.val_dataset) == 9  # type: ignore[arg-type]

    def test_statistics_normalise_the_train_block(
        self, datamodule: SalinasADataModule
    ) -> None:
        block = datamodule.train_dataset.image  # type: ignore[union-attr]
        batch = {'image': block[None], 'mask': datamodule.train_dataset.mask[None]}  # type: ignore[union-attr]
        image = datamodule.aug(batch)['image'][0].flatten(1)
        torch.testing.assert_close(image.mean(1), torch.zeros(204), atol=1e-3, rtol=0)
        torch.testing.assert_close(image.std(1), torch.ones(204), atol=1e-3, rtol=0)

    def test_batches(self, datamodule: SalinasADataModule) -> None:
        batch = next(iter(datamodule.train_dataloader()))
        assert batch['image'].shape == (8, 204, 16, 16)
        counts = [torch.bincount(mask.flatten(), minlength=7) for mask in batch['mask']]
        out = datamodule.train_aug(batch)
        assert out['image'].shape == (8, 204, 16, 16)
        assert out['mask'].shape == (8, 16, 16)
        assert out['mask'].dtype == torch.long
        for mask, count in zip(out['mask'], counts, strict=True):
            assert torch.equal(torch.bincount(mask.flatten(), minlength=7), count)
        assert abs(float(out['image'].mean())) < 0.5
        val = datamodule.aug(next(iter(datamodule.val_dataloader())))
        assert abs(float(val['image'].mean())) < 1
        assert val['mask'].dtype == torch.long

    def test_test_split(self, salinas_root: Path) -> None:
        module = SalinasADataModule(root=salinas_root)
        module.setup('test')
        assert len(module.test_dataset) == 9  # type: ignore[arg-type]
        assert int(module.test_dataset.window(0)[1]) == 69  # type: ignore[union-attr]

    def test_registry(self, salinas_root: Path) -> None:
        assert 'salinas-a' in DATASET_NAMES
        module = build_datamodule('salinas-a', str(salinas_root), batch_size=4)
        assert isinstance(module, SalinasADataModule)
        assert module.batch_size == 4
        with pytest.raises(InvalidInputError, match='--root'):
            build_datamodule('salinas-a')

    def test_config(self) -> None:
        config = yaml.safe_load((ROOT / 'datamodules' / 'salinas_a.yaml').read_text())
        data = config['data']
        assert data['class_path'] == 'torchgeo_specdm.datamodules.SalinasADataModule'
        assert data['dict_kwargs']['root'] == '../shared/data/hsi/salinas_a'
        assert data['init_args']['patch_size'] == 16


def _limited(root: Path, fraction: float, seed: int = 0) -> SalinasADataModule:
    module = SalinasADataModule(
        root=root, patches_per_epoch=16, label_fraction=fraction, seed=seed
    )
    module.setup('fit')
    module.setup('test')
    return module


class TestLimitedLabels:
    def test_train_block_keeps_a_share(
        self, salinas_root: Path, datamodule: SalinasADataModule
    ) -> None:
        full = datamodule.train_dataset.mask  # type: ignore[union-attr]
        module = _limited(salinas_root, 0.1)
        mask = module.train_dataset.mask  # type: ignore[union-attr]
        original = int((full != 0).sum())
        assert original > 1000
        assert abs(int((mask != 0).sum()) - round(0.1 * original)) <= 1
        # Kept pixels keep their class; dropped ones become unlabelled.
        kept = mask != 0
        assert torch.equal(mask[kept], full[kept])
        # Patches view the block, so they see the same kept pixels.
        top, left = module.train_dataset.patches.window(0)[1:]  # type: ignore[union-attr]
        patch = module.train_dataset[0]['mask']  # type: ignore[index]
        assert torch.equal(patch, mask[top : top + 16, left : left + 16])

    def test_val_and_test_keep_all_labels(
        self, salinas_root: Path, datamodule: SalinasADataModule
    ) -> None:
        module = _limited(salinas_root, 0.1)
        full = SalinasADataModule(root=salinas_root)
        full.setup('test')
        for name, reference in (('val_dataset', datamodule), ('test_dataset', full)):
            limited = getattr(module, name).mask
            assert torch.equal(limited, getattr(reference, name).mask)
            assert int((limited != 0).sum()) > 0

    def test_seeded(self, salinas_root: Path) -> None:
        first = _limited(salinas_root, 0.1).train_dataset.mask  # type: ignore[union-attr]
        again = _limited(salinas_root, 0.1).train_dataset.mask  # type: ignore[union-attr]
        other = _limited(salinas_root, 0.1, seed=1).train_dataset.mask  # type: ignore[union-attr]
        assert torch.equal(first, again)
        assert not torch.equal(first != 0, other != 0)

    @pytest.mark.parametrize('fraction', [0, -0.5, 1.5])
    def test_bad_fraction(self, salinas_root: Path, fraction: float) -> None:
        with pytest.raises(InvalidInputError, match='label_fraction') as error:
            SalinasADataModule(root=salinas_root, label_fraction=fraction)
        assert 'at most 1' in str(error.value)


@pytest.mark.parametrize('scene', SCENES)
class TestFakeScenes:
    def test_load(self, scene: type[HyperspectralScene], tmp_path: Path) -> None:
        root = write_fake(tmp_path, scene)
        dataset = scene(root, split='train', patch_size=8)
        full = dataset.load_scene()
        assert full['image'].shape == (len(scene.all_bands), 24, 40)
        assert int(full['mask'].max()) == len(scene.classes) - 1
        assert scene.classes[0] == 'Unlabelled'
        assert len(dataset) == 3 * 3
        assert dataset[0]['image'].shape == (len(scene.all_bands), 8, 8)
        figure = dataset.plot(dataset[0])
        plt.close(figure)

    @pytest.mark.parametrize('split_axis', ['width', 'height'])
    def test_split_is_disjoint(
        self, scene: type[HyperspectralScene], tmp_path: Path, split_axis: str
    ) -> None:
        root = write_fake(tmp_path, scene, height=40, width=40)
        options = {'patch_size': 8, 'split_axis': split_axis}
        train = scene(root, 'train', num_patches=200, **options)  # type: ignore[arg-type]
        val = scene(root, 'val', stride=1, **options)  # type: ignore[arg-type]
        test = scene(root, 'test', stride=1, **options)  # type: ignore[arg-type]
        pixels = [covered_pixels(dataset) for dataset in (train, val, test)]
        assert pixels[0].isdisjoint(pixels[2])
        assert pixels[0].isdisjoint(pixels[1])
        assert pixels[1].isdisjoint(pixels[2])
        assert len(pixels[2]) == 40 * 8
        axis = 1 if split_axis == 'width' else 0
        assert max(pixel[axis] for pixel in pixels[0]) == 23

    def test_seeded_crops(
        self, scene: type[HyperspectralScene], tmp_path: Path
    ) -> None:
        root = write_fake(tmp_path, scene)
        first = scene(root, num_patches=20, patch_size=8, seed=1)
        again = scene(root, num_patches=20, patch_size=8, seed=1)
        other = scene(root, num_patches=20, patch_size=8, seed=2)
        windows = [first.window(i) for i in range(20)]
        assert windows == [again.window(i) for i in range(20)]
        assert windows != [other.window(i) for i in range(20)]
        assert torch.equal(first[5]['image'], again[5]['image'])

    def test_other_array_name(
        self, scene: type[HyperspectralScene], tmp_path: Path
    ) -> None:
        root = write_fake(tmp_path, scene)
        cube = scipy.io.loadmat(root / scene.image_file)[scene.image_key]
        scipy.io.savemat(root / scene.image_file, {'data': cube, 'note': np.ones(3)})
        assert scene(root, patch_size=8)[0]['image'].shape[0] == len(scene.all_bands)


@pytest.mark.parametrize(
    ('module', 'scene'),
    [(IndianPinesDataModule, IndianPines), (PaviaUDataModule, PaviaU)],
)
def test_fake_datamodules(
    module: type[SalinasADataModule], scene: type[HyperspectralScene], tmp_path: Path
) -> None:
    root = write_fake(tmp_path, scene)
    datamodule = module(root=root, patch_size=8, patches_per_epoch=4, batch_size=4)
    datamodule.setup('fit')
    batch = datamodule.train_aug(next(iter(datamodule.train_dataloader())))
    assert batch['image'].shape == (4, len(scene.all_bands), 8, 8)
    assert datamodule.num_classes == len(scene.classes)


def _rewrite(path: Path, key: str, array: np.ndarray) -> None:
    scipy.io.savemat(path, {key: array})


def _image(root: Path) -> Path:
    return root / IndianPines.image_file


def _label(root: Path) -> Path:
    return root / IndianPines.label_file


def _cube(height: int = 24, width: int = 40, bands: int = 200) -> np.ndarray:
    return np.ones((height, width, bands), np.float32)


BAD_FILES = {
    'wrong key, two cubes': (
        lambda r: scipy.io.savemat(_image(r), {'a': _cube(), 'b': _cube()}),
        (
            r"Indian_pines_corrected\.mat: no array named 'indian_pines_corrected', and "
            r'2 other 3-D numeric arrays .* holds: a \(24, 40, 200\), b \(24, 40, 200\)'
        ),
    ),
    'wrong key, no cube': (
        lambda r: _rewrite(_image(r), 'gt', np.zeros((24, 40))),
        (
            r"Indian_pines_corrected\.mat: no array named 'indian_pines_corrected', and "
            r'0 other 3-D .* holds: gt \(24, 40\)'
        ),
    ),
    'labels are 3-D': (
        lambda r: _rewrite(_label(r), 'indian_pines_gt', np.zeros((24, 40, 2))),
        (
            r"Indian_pines_gt\.mat: array 'indian_pines_gt' is float64 with shape "
            r'\(24, 40, 2\); expected a 2-D numeric array'
        ),
    ),
    'cube and labels differ in size': (
        lambda r: _rewrite(_label(r), 'indian_pines_gt', np.zeros((24, 39), np.uint8)),
        (
            r'Indian_pines_corrected\.mat is \(24, 40\) pixels but its mask '
            r'.*Indian_pines_gt\.mat is \(24, 39\)'
        ),
    ),
    'truncated cube': (
        lambda r: _image(r).write_bytes(_image(r).read_bytes()[:5000]),
        r'Indian_pines_corrected\.mat: cannot read this \.mat file .*truncated',
    ),
    'truncated labels': (
        lambda r: _label(r).write_bytes(_label(r).read_bytes()[:200]),
        r'Indian_pines_gt\.mat: cannot read this \.mat file',
    ),
    'not a mat file': (
        lambda r: _image(r).write_text('hello'),
        r'Indian_pines_corrected\.mat: cannot read this \.mat file',
    ),
    'NaN values': (
        lambda r: _rewrite(
            _image(r),
            'indian_pines_corrected',
            np.where(np.eye(24, 40)[..., None], np.nan, _cube()),
        ),
        r'Indian_pines_corrected\.mat: image holds 4800 NaN or infinite values',
    ),
    'wrong band count': (
        lambda r: _rewrite(_image(r), 'indian_pines_corrected', _cube(bands=220)),
        r'Indian_pines_corrected\.mat: image has 220 bands, expected 200',
    ),
    'unknown label code': (
        lambda r: _rewrite(
            _label(r), 'indian_pines_gt', np.full((24, 40), 17, np.uint8)
        ),
        r'Indian_pines_gt\.mat: unknown IndianPines label codes \[17\]',
    ),
    'fractional labels': (
        lambda r: _rewrite(_label(r), 'indian_pines_gt', np.full((24, 40), 0.5)),
        r'Indian_pines_gt\.mat: 960 labels are not whole numbers',
    ),
}


@pytest.mark.parametrize('case', BAD_FILES)
def test_bad_files_raise_clear_errors(tmp_path: Path, case: str) -> None:
    root = write_fake(tmp_path, IndianPines)
    corrupt, message = BAD_FILES[case]
    corrupt(root)
    with pytest.raises(InvalidInputError, match=message):
        IndianPines(root, patch_size=8)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match='Dataset not found in `root='):
        SalinasA(tmp_path)
    root = write_fake(tmp_path / 'scene', SalinasA)
    (root / SalinasA.label_file).unlink()
    with pytest.raises(DatasetNotFoundError, match='scene'):
        SalinasA(root)


@pytest.mark.parametrize(
    ('options', 'message'),
    [
        ({'split': 'training'}, "split='training' is not one of"),
        ({'bands': ('B001', 'B108')}, r"bands: \['B108'\] not in SalinasA"),
        ({'bands': ()}, 'bands: empty not in SalinasA'),
        ({'patch_size': 0}, 'patch_size=0: must be at least 1'),
        ({'split_fractions': (0.5, 0.5)}, r'split_fractions=\[0.5, 0.5\]: give three'),
        ({'split_fractions': (0.8, 0.2, 0.2)}, 'sum to 1'),
        ({'split_axis': 'depth'}, "split_axis='depth'"),
        ({'num_patches': 0}, 'num_patches=0: must be at least 1'),
        ({'stride': 0}, 'stride=0: must be at least 1'),
    ],
)
def test_bad_arguments(
    tmp_path: Path, options: dict[str, object], message: str
) -> None:
    root = write_fake(tmp_path, SalinasA)
    with pytest.raises(InvalidInputError, match=message):
        SalinasA(root, patch_size=options.pop('patch_size', 8), **options)  # type: ignore[arg-type]
