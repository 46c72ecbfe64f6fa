import os
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import tifffile
import torch
from torchgeo.datasets import DatasetNotFoundError, RGBBandsMissingError

from torchgeo_specdm.datamodules import SegMunichDataModule
from torchgeo_specdm.datasets import InvalidInputError, SegMunich

from .conftest import DATA

FAKE = DATA / 'segmunich'


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    root = tmp_path / 'segmunich'
    shutil.copytree(FAKE, root, ignore=shutil.ignore_patterns('data.py'))
    return root


class TestSegMunich:
    @pytest.mark.parametrize(
        ('split', 'length'), [('train', 6), ('val', 2), ('test', 1)]
    )
    @pytest.mark.parametrize(
        'bands', [SegMunich.all_bands, ('B04', 'B03', 'B02', 'B08')]
    )
    def test_getitem(self, split: str, length: int, bands: tuple[str, ...]) -> None:
        dataset = SegMunich(FAKE, split=split, bands=bands)  # type: ignore[arg-type]
        assert len(dataset) == length
        sample = dataset[0]
        assert sample['image'].dtype == torch.float32
        assert sample['image'].shape == (len(bands), 32, 32)
        assert sample['mask'].dtype == torch.long
        assert sample['mask'].shape == (32, 32)
        assert 0 <= int(sample['mask'].min())
        assert int(sample['mask'].max()) < 13

    def test_band_subset_picks_the_named_bands(self) -> None:
        full = SegMunich(FAKE)[0]['image']
        subset = SegMunich(FAKE, bands=('B08', 'B02'))[0]['image']
        assert torch.equal(subset[0], full[3])
        assert torch.equal(subset[1], full[0])

    def test_label_remap(self, fake_root: Path) -> None:
        raw = np.array([[0, 5, 11, 12, 13, 14, 21], [22, 23, 31, 32, 33, 41, 0]])
        label = np.zeros((32, 32), np.uint8)
        label[:2, :7] = raw
        tifffile.imwrite(fake_root / 'train' / 'label' / '1.tif', label)
        mask = SegMunich(fake_root)._load_target(
            str(fake_root / 'train' / 'label' / '1.tif')
        )
        expected = torch.tensor([[0, 5, 11, 12, 9, 10, 1], [2, 3, 4, 6, 7, 8, 0]])
        assert torch.equal(mask[:2, :7], expected)

    def test_channels_first_file(self, fake_root: Path) -> None:
        path = fake_root / 'train' / 'img' / '1.tif'
        hwc = tifffile.imread(path)
        tifffile.imwrite(path, np.ascontiguousarray(hwc.transpose(2, 0, 1)))
        dataset = SegMunich(fake_root)
        index = dataset.names.index('1')
        assert torch.equal(
            dataset[index]['image'], torch.from_numpy(hwc).permute(2, 0, 1)
        )

    def test_missing_val_list_holds_out_seeded_train(self, fake_root: Path) -> None:
        os.remove(fake_root / 'dataset' / 'val.txt')
        train = SegMunich(fake_root, split='train', seed=3, val_fraction=0.34)
        val = SegMunich(fake_root, split='val', seed=3, val_fraction=0.34)
        again = SegMunich(fake_root, split='val', seed=3, val_fraction=0.34)
        assert len(val) == 2
        assert len(train) == 4
        assert set(train.names).isdisjoint(val.names)
        assert set(train.names) | set(val.names) == {'1', '2', '3', '4', '5', '6'}
        assert val.names == again.names
        assert val[0]['image'].shape == (10, 32, 32)

    def test_real_sample_file_loads(self, shared_data: Path, tmp_path: Path) -> None:
        real = (
            shared_data
            / 'segmunich_sample'
            / 'image_only'
            / 'SegMunich_train_img_10.tif'
        )
        (tmp_path / 'train' / 'img').mkdir(parents=True)
        (tmp_path / 'train' / 'label').mkdir(parents=True)
        (tmp_path / 'dataset').mkdir()
        os.symlink(real, tmp_path / 'train' / 'img' / '10.tif')
        tifffile.imwrite(
            tmp_path / 'train' / 'label' / '10.tif', np.full((128, 128), 31, np.uint8)
        )
        (tmp_path / 'dataset' / 'train.txt').write_text('10\n')
        (tmp_path / 'dataset' / 'val.txt').write_text('10\n')
        sample = SegMunich(tmp_path)[0]
        assert sample['image'].shape == (10, 128, 128)
        means = sample['image'].mean(dim=(1, 2))
        expected = torch.tensor(
            [
                471.8,
                716.1,
                634.9,
                2853.3,
                1098.7,
                2354.8,
                2767.1,
                2995.9,
                1858.6,
                1100.0,
            ]
        )
        torch.testing.assert_close(means, expected, atol=0.1, rtol=0)
        # NIR (B08, index 3) is brightest over this vegetated tile, red-edge B05 is not.
        assert SegMunich.all_bands[int(means.argmax())] in ('B08', 'B8A')
        assert int((sample['mask'] == 4).sum()) == 128 * 128

    def test_plot(self) -> None:
        dataset = SegMunich(FAKE)
        sample = dataset[0]
        sample['prediction'] = sample['mask'].clone()
        figure = dataset.plot(sample, suptitle='test')
        plt.close(figure)

    def test_plot_needs_rgb(self) -> None:
        dataset = SegMunich(FAKE, bands=('B08', 'B11'))
        with pytest.raises(RGBBandsMissingError):
            dataset.plot(dataset[0])

    def test_not_found(self, tmp_path: Path) -> None:
        with pytest.raises(DatasetNotFoundError, match='not found'):
            SegMunich(tmp_path)

    def test_bad_arguments(self) -> None:
        with pytest.raises(InvalidInputError, match='B99'):
            SegMunich(FAKE, bands=('B02', 'B99'))
        with pytest.raises(InvalidInputError, match='split'):
            SegMunich(FAKE, split='training')  # type: ignore[arg-type]


def _image(root: Path) -> Path:
    return root / 'train' / 'img' / '1.tif'


def _label(root: Path) -> Path:
    return root / 'train' / 'label' / '1.tif'


def _write_image(root: Path, array: np.ndarray) -> None:
    tifffile.imwrite(_image(root), array.astype(np.float32))


BAD_FILES = {
    'wrong band count': (
        lambda r: _write_image(r, np.ones((32, 32, 7))),
        r'1\.tif: image has 7 bands, expected 10',
    ),
    'nan pixels': (
        lambda r: _write_image(
            r, np.where(np.eye(32)[..., None], np.nan, 1.0) * np.ones((1, 1, 10))
        ),
        r'1\.tif: image holds 320 NaN or infinite values',
    ),
    'inf pixels': (
        lambda r: _write_image(r, np.full((32, 32, 10), np.inf)),
        r'1\.tif: image holds 10240 NaN or infinite values',
    ),
    'corrupted tiff': (
        lambda r: _image(r).write_bytes(_image(r).read_bytes()[:300]),
        r'1\.tif: cannot read this TIFF .* truncated or corrupted',
    ),
    'not a tiff': (
        lambda r: _image(r).write_text('hello'),
        r'1\.tif: cannot read this TIFF',
    ),
    'unknown label code': (
        lambda r: tifffile.imwrite(_label(r), np.full((32, 32), 99, np.uint8)),
        r'1\.tif: unknown SegMunich label codes \[99\]',
    ),
    'size mismatch': (
        lambda r: tifffile.imwrite(_label(r), np.zeros((16, 32), np.uint8)),
        r'1\.tif is \(32, 32\) pixels but its mask .*1\.tif is \(16, 32\)',
    ),
    'missing image file': (lambda r: os.remove(_image(r)), r'1\.tif: file not found'),
}


@pytest.mark.parametrize('case', BAD_FILES)
def test_bad_files_raise_clear_errors(fake_root: Path, case: str) -> None:
    corrupt, message = BAD_FILES[case]
    corrupt(fake_root)
    dataset = SegMunich(fake_root)
    with pytest.raises(InvalidInputError, match=message):
        dataset[dataset.names.index('1')]


def test_empty_split_file(fake_root: Path) -> None:
    (fake_root / 'dataset' / 'test.txt').write_text('\n\n')
    with pytest.raises(
        InvalidInputError, match=r'test\.txt: the split file lists no samples'
    ):
        SegMunich(fake_root, split='test')


class TestSegMunichDataModule:
    def test_batches(self) -> None:
        datamodule = SegMunichDataModule(root=FAKE, batch_size=2)
        datamodule.setup('fit')
        batch = next(iter(datamodule.train_dataloader()))
        assert batch['image'].shape == (2, 10, 32, 32)
        augmented = datamodule.train_aug(batch)
        assert augmented['image'].shape == (2, 10, 32, 32)
        assert augmented['mask'].shape == (2, 32, 32)
        val = datamodule.aug(next(iter(datamodule.val_dataloader())))
        assert abs(float(val['image'].mean())) < 10

    def test_bands(self) -> None:
        datamodule = SegMunichDataModule(root=FAKE, bands=('B04', 'B03', 'B02'))
        assert datamodule.mean.shape == (3,)
        datamodule.setup('test')
        assert next(iter(datamodule.test_dataloader()))['image'].shape[1] == 3
