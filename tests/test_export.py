import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pytest
import rasterio
import torch
from torch import Tensor
from torchgeo.datasets import NonGeoDataset, RGBBandsMissingError

from torchgeo_specdm.datasets.synthetic import SyntheticDataset
from torchgeo_specdm.datasets.validation import InvalidInputError
from torchgeo_specdm.export import (
    FORMAT,
    MANIFEST_SCHEMA,
    DatasetWriter,
    load_manifest,
    update_alignment,
)

from .conftest import ROOT

RGBN = ('B02', 'B03', 'B04', 'B08')
S2 = (
    'B01',
    'B02',
    'B03',
    'B04',
    'B05',
    'B06',
    'B07',
    'B08',
    'B8A',
    'B09',
    'B10',
    'B11',
    'B12',
)
HYPER = tuple(f'band_{i:03d}' for i in range(204))
CLASSES = ('background', 'water', 'forest')
SIZE = 16


def generator(**changes: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        'checkpoint_sha256': 'ab' * 32,
        'sampler': 'ddim',
        'steps': 20,
        'guidance_scale': 2.0,
        'request': {'class_fractions': [0.5, 0.3, 0.2]},
        'seed': 7,
        'package_version': '0.1.0',
    }
    settings.update(changes)
    return settings


def seg_writer(
    root: Path, bands: tuple[str, ...] = RGBN, **changes: Any
) -> DatasetWriter:
    return DatasetWriter(root, 'segmentation', bands, 3, CLASSES, generator(**changes))


def change_writer(root: Path, bands: tuple[str, ...] = RGBN) -> DatasetWriter:
    return DatasetWriter(root, 'change', bands, 2, ('no change', 'change'), generator())


def make_sample(
    index: int, num_bands: int, task: str = 'segmentation', num_classes: int = 3
) -> tuple[Tensor, Tensor]:
    rng = torch.Generator().manual_seed(index)
    shape = (
        (num_bands, SIZE, SIZE)
        if task == 'segmentation'
        else (2, num_bands, SIZE, SIZE)
    )
    image = torch.rand(shape, generator=rng) * 10000 - 100
    mask = torch.randint(0, num_classes, (SIZE, SIZE), generator=rng)
    return image, mask


def fill(
    writer: DatasetWriter, indices: range | list[int]
) -> dict[int, tuple[Tensor, Tensor]]:
    written = {}
    for index in indices:
        image, mask = make_sample(
            index, len(writer.bands), writer.task, writer.num_classes
        )
        writer.write(index, image, mask, seed=1000 + index)
        written[index] = (image, mask)
    return written


def files(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob('*') if path.is_file()}


def edit_manifest(root: Path, **changes: Any) -> None:
    path = root / 'manifest.json'
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


def stat(path: Path) -> tuple[int, bytes]:
    return path.stat().st_mtime_ns, path.read_bytes()


@pytest.fixture
def seg_root(tmp_path: Path) -> Path:
    root = tmp_path / 'out'
    writer = seg_writer(root)
    fill(writer, range(2))
    writer.finalize(2)
    return root


class TestRoundTrip:
    @pytest.mark.parametrize('bands', [RGBN[:3], RGBN, S2, HYPER])
    def test_segmentation(self, tmp_path: Path, bands: tuple[str, ...]) -> None:
        root = tmp_path / 'out'
        writer = seg_writer(root, bands)
        written = fill(writer, range(3))
        manifest = writer.finalize(3)
        assert manifest == load_manifest(root)
        assert manifest['format'] == FORMAT
        assert manifest['bands'] == list(bands)
        assert manifest['generator'] == generator()
        assert files(root) == {
            'manifest.json',
            '.parts/config.json',
            *(
                f'{d}/{i:06d}.{e}'
                for d, e in [('images', 'tif'), ('masks', 'tif'), ('.parts', 'json')]
                for i in range(3)
            ),
        }
        dataset = SyntheticDataset(root)
        assert len(dataset) == 3
        assert dataset.bands == bands
        assert dataset.classes == CLASSES
        assert dataset.num_classes == 3
        assert dataset.task == 'segmentation'
        for index, (image, mask) in written.items():
            record = manifest['samples'][index]
            assert record['id'] == index
            assert record['seed'] == 1000 + index
            assert record['image'] == f'images/{index:06d}.tif'
            expected = torch.bincount(mask.flatten(), minlength=3) / mask.numel()
            assert record['class_fractions'] == pytest.approx(expected.tolist())
            sample = dataset[index]
            assert torch.equal(sample['image'], image)
            assert torch.equal(sample['mask'], mask)
        assert len(files(root)) == 2 + 3 * 3  # reading left no side files
        with rasterio.open(root / 'masks' / '000000.tif') as src:
            assert src.dtypes == ('uint8',)
        with rasterio.open(root / 'images' / '000000.tif') as src:
            assert src.count == len(bands)
            assert set(src.dtypes) == {'float32'}

    @pytest.mark.parametrize('bands', [RGBN[:3], S2])
    @pytest.mark.parametrize('mask_shape', ['2d', '3d'])
    def test_change(
        self, tmp_path: Path, bands: tuple[str, ...], mask_shape: str
    ) -> None:
        root = tmp_path / 'out'
        writer = change_writer(root, bands)
        written = {}
        for index in range(2):
            image, mask = make_sample(index, len(bands), 'change', 2)
            writer.write(index, image, mask[None] if mask_shape == '3d' else mask, 5)
            written[index] = (image, mask)
        manifest = writer.finalize()
        assert {'image1', 'image2'} <= set(manifest['samples'][0])
        assert 'image' not in manifest['samples'][0]
        dataset = SyntheticDataset(root)
        assert dataset.task == 'change'
        assert len(dataset) == 2
        for index, (image, mask) in written.items():
            sample = dataset[index]
            assert sample['image'].shape == (2, len(bands), SIZE, SIZE)
            assert sample['image'].dtype == torch.float32
            assert sample['mask'].shape == (1, SIZE, SIZE)
            assert sample['mask'].dtype == torch.long
            assert torch.equal(sample['image'], image)
            assert torch.equal(sample['mask'][0], mask)
            fractions = manifest['samples'][index]['class_fractions']
            assert fractions == pytest.approx(
                [1 - mask.float().mean().item(), mask.float().mean().item()]
            )

    def test_numpy_and_float_inputs(self, tmp_path: Path) -> None:
        writer = seg_writer(tmp_path)
        image, mask = make_sample(0, 4)
        writer.write(0, image.double().numpy(), mask.float().numpy()[None], seed=0)
        writer.finalize()
        sample = SyntheticDataset(tmp_path)[0]
        assert torch.equal(sample['image'], image)
        assert torch.equal(sample['mask'], mask)

    def test_nongeodataset_contract(self, seg_root: Path) -> None:
        def transform(sample: dict[str, Tensor]) -> dict[str, Tensor]:
            return {**sample, 'image': sample['image'] * 0}

        dataset = SyntheticDataset(seg_root, transforms=transform)
        assert isinstance(dataset, NonGeoDataset)
        assert len(dataset) == 2
        assert 'size: 2' in str(dataset)
        for sample in dataset:  # type: ignore[attr-defined]
            assert set(sample) == {'image', 'mask'}
            assert sample['image'].dtype == torch.float32
            assert sample['image'].shape == (4, SIZE, SIZE)
            assert not sample['image'].any()
            assert sample['mask'].dtype == torch.long
            assert sample['mask'].shape == (SIZE, SIZE)
        with pytest.raises(IndexError):
            dataset[2]

    def test_plot(self, seg_root: Path, tmp_path: Path) -> None:
        dataset = SyntheticDataset(seg_root)
        sample = dataset[0]
        dataset.plot(sample, suptitle='test')
        sample['prediction'] = sample['mask'].clone()
        dataset.plot(sample, show_titles=False)
        root = tmp_path / 'change'
        writer = change_writer(root)
        image, mask = make_sample(0, 4, 'change', 2)
        writer.write(0, image, mask, 0)
        writer.finalize()
        change = SyntheticDataset(root)
        change.plot(change[0])
        plt.close('all')

    def test_plot_rgb_missing(self, tmp_path: Path) -> None:
        writer = seg_writer(tmp_path, ('B08', 'B11', 'B12'))
        fill(writer, [0])
        writer.finalize()
        dataset = SyntheticDataset(tmp_path)
        with pytest.raises(RGBBandsMissingError):
            dataset.plot(dataset[0])


class TestWriterInputs:
    @pytest.fixture
    def writer(self, tmp_path: Path) -> DatasetWriter:
        return seg_writer(tmp_path)

    def test_non_finite(self, writer: DatasetWriter) -> None:
        image, mask = make_sample(0, 4)
        image[1, 2, 3] = float('nan')
        with pytest.raises(
            InvalidInputError, match='sample 0 image: image holds 1 NaN'
        ):
            writer.write(0, image, mask, 0)
        assert writer.completed() == set()

    def test_band_count(self, writer: DatasetWriter) -> None:
        image, mask = make_sample(0, 3)
        with pytest.raises(InvalidInputError, match='has 3 bands, expected 4'):
            writer.write(0, image, mask, 0)

    def test_labels(self, writer: DatasetWriter) -> None:
        image, mask = make_sample(0, 4)
        mask[0, 0] = 3
        with pytest.raises(InvalidInputError, match=r'sample 0 mask: .* outside the 3'):
            writer.write(0, image, mask, 0)

    def test_size(self, writer: DatasetWriter) -> None:
        image, mask = make_sample(0, 4)
        with pytest.raises(InvalidInputError, match='must cover the same grid'):
            writer.write(0, image, mask[:8], 0)

    def test_batch(self, writer: DatasetWriter) -> None:
        image, mask = make_sample(0, 4)
        with pytest.raises(InvalidInputError, match='one sample at a time'):
            writer.write(0, image[None], mask, 0)
        with pytest.raises(InvalidInputError, match=r'\[H, W\] or \[1, H, W\]'):
            writer.write(0, image, mask[None].repeat(3, 1, 1), 0)

    def test_change_pair(self, tmp_path: Path) -> None:
        writer = change_writer(tmp_path)
        image, mask = make_sample(0, 4)
        with pytest.raises(InvalidInputError, match=r'\[2, C, H, W\]'):
            writer.write(0, image[None].repeat(3, 1, 1, 1), mask, 0)

    def test_non_integer_mask(self, writer: DatasetWriter) -> None:
        image, mask = make_sample(0, 4)
        with pytest.raises(InvalidInputError, match='non-integer'):
            writer.write(0, image, mask + 0.5, 0)

    def test_index(self, writer: DatasetWriter) -> None:
        image, mask = make_sample(0, 4)
        with pytest.raises(InvalidInputError, match='non-negative integer'):
            writer.write(-1, image, mask, 0)

    def test_class_names(self, tmp_path: Path) -> None:
        with pytest.raises(InvalidInputError, match=r'\$\.class_names names 2'):
            DatasetWriter(tmp_path, 'segmentation', RGBN, 3, ('a', 'b'), generator())

    def test_change_classes(self, tmp_path: Path) -> None:
        with pytest.raises(InvalidInputError, match='Pass num_classes=2'):
            DatasetWriter(tmp_path, 'change', RGBN, 3, CLASSES, generator())

    def test_generator(self, tmp_path: Path) -> None:
        settings = generator()
        del settings['steps']
        with pytest.raises(
            InvalidInputError, match=r"\$\.generator is invalid: 'steps'"
        ):
            DatasetWriter(tmp_path, 'segmentation', RGBN, 3, CLASSES, settings)
        with pytest.raises(
            InvalidInputError, match=r'\$\.generator\.checkpoint_sha256'
        ):
            seg_writer(tmp_path, checkpoint_sha256='abc')
        with pytest.raises(InvalidInputError, match='cannot be stored as JSON'):
            seg_writer(tmp_path, request={'array': np.zeros(2)})
        assert not (tmp_path / '.parts').exists()


class TestResume:
    def test_killed_run(self, tmp_path: Path) -> None:
        writer = seg_writer(tmp_path)
        written = fill(writer, range(5))
        # Killed between sample 2's files and its record; sample 3's image lost.
        (tmp_path / '.parts' / '000002.json').unlink()
        (tmp_path / 'images' / '000003.tif').unlink()
        host = socket.gethostname()
        dead = 4194305  # above Linux's largest pid
        stale = [
            tmp_path / 'images' / f'.000005.tif.tmp-{dead}@{host}',
            tmp_path / 'masks' / f'.000005.tif.tmp-{dead}',
            tmp_path / '.parts' / f'.000005.json.tmp-{dead}@{host}',
            tmp_path / f'.manifest.json.tmp-{dead}@{host}',
        ]
        live = tmp_path / 'images' / f'.000006.tif.tmp-{os.getppid()}@{host}'
        for path in [*stale, live]:
            path.write_bytes(b'partial')
        finished = {
            path: stat(path)
            for index in (0, 1, 4)
            for path in (
                tmp_path / 'images' / f'{index:06d}.tif',
                tmp_path / 'masks' / f'{index:06d}.tif',
                tmp_path / '.parts' / f'{index:06d}.json',
            )
        }

        rerun = seg_writer(tmp_path)
        assert not any(path.exists() for path in stale)
        assert live.exists()
        assert rerun.completed() == {0, 1, 4}
        with pytest.raises(
            InvalidInputError, match=r'samples 2, 3 of 5 are not finished'
        ):
            rerun.finalize(5)
        for index in range(5):
            if index not in rerun.completed():
                image, mask = written[index]
                rerun.write(index, image, mask, seed=1000 + index)
        assert rerun.completed() == set(range(5))
        assert all(stat(path) == before for path, before in finished.items())
        rerun.finalize(5)
        dataset = SyntheticDataset(tmp_path)
        assert len(dataset) == 5
        for index, (image, mask) in written.items():
            assert torch.equal(dataset[index]['image'], image)
            assert torch.equal(dataset[index]['mask'], mask)
        live.unlink()
        assert rerun.cleanup() == []

    def test_failed_write_leaves_nothing(self, tmp_path: Path) -> None:
        writer = seg_writer(tmp_path)
        image, mask = make_sample(0, 4)
        mask[0, 0] = 9
        with pytest.raises(InvalidInputError):
            writer.write(0, image, mask, 0)
        assert files(tmp_path) == {'.parts/config.json'}

    def test_finalize_subsets(self, tmp_path: Path) -> None:
        writer = seg_writer(tmp_path)
        fill(writer, [0, 1, 3])
        assert [s['id'] for s in writer.finalize()['samples']] == [0, 1, 3]
        assert [s['id'] for s in writer.finalize(2)['samples']] == [0, 1]
        assert len(SyntheticDataset(tmp_path)) == 2

    def test_finalize_empty(self, tmp_path: Path) -> None:
        with pytest.raises(InvalidInputError, match='no finished samples'):
            seg_writer(tmp_path).finalize()

    @pytest.mark.parametrize(
        ('task', 'bands', 'changes', 'field'),
        [
            ('segmentation', S2, {}, r'\$\.bands'),
            (
                'segmentation',
                RGBN,
                {'steps': 50},
                r'\$\.generator\.steps: 20 in the folder, 50 now',
            ),
            (
                'segmentation',
                RGBN,
                {'checkpoint_sha256': 'cd' * 32},
                'checkpoint_sha256',
            ),
            ('change', RGBN, {}, r'\$\.task'),
        ],
    )
    def test_different_config(
        self,
        seg_root: Path,
        task: str,
        bands: tuple[str, ...],
        changes: dict[str, Any],
        field: str,
    ) -> None:
        classes = CLASSES if task == 'segmentation' else ('no', 'yes')
        for _ in range(2):
            with pytest.raises(
                InvalidInputError,
                match=f'{seg_root}: holds a generated dataset with a different configuration.*{field}.*Pick a new --out folder, or delete',
            ):
                DatasetWriter(
                    seg_root, task, bands, len(classes), classes, generator(**changes)
                )  # type: ignore[arg-type]
            # The manifest alone is checked too.
            (seg_root / '.parts' / 'config.json').unlink(missing_ok=True)

    def test_unreadable_config(self, seg_root: Path) -> None:
        (seg_root / '.parts' / 'config.json').write_text('{')
        with pytest.raises(
            InvalidInputError, match=r'config\.json: unreadable.*Pick a new --out'
        ):
            seg_writer(seg_root)

    def test_same_config_accepted(self, seg_root: Path) -> None:
        request = {'class_fractions': (0.5, 0.3, 0.2)}
        writer = DatasetWriter(
            seg_root, 'segmentation', list(RGBN), 3, CLASSES, generator(request=request)
        )
        assert writer.completed() == {0, 1}

    def test_finalize_keeps_alignment(self, seg_root: Path) -> None:
        update_alignment(seg_root, {0: 0.9})
        writer = seg_writer(seg_root)
        fill(writer, [2])
        samples = writer.finalize()['samples']
        assert [s.get('alignment') for s in samples] == [0.9, None, None]


class TestManifest:
    def test_missing(self, tmp_path: Path) -> None:
        with pytest.raises(
            InvalidInputError,
            match=r'manifest\.json: manifest not found\. Run `specdm sample` to create it or check the folder',
        ):
            SyntheticDataset(tmp_path)

    @pytest.mark.parametrize('text', ['{"format": ', '{"format": NaN}', ''])
    def test_bad_json(self, seg_root: Path, text: str) -> None:
        (seg_root / 'manifest.json').write_text(text)
        with pytest.raises(
            InvalidInputError,
            match=r'manifest\.json: not valid JSON .*Rerun `specdm sample`',
        ):
            load_manifest(seg_root)

    @pytest.mark.parametrize(
        ('path', 'value', 'field'),
        [
            (('samples', 0, 'seed'), 'x', r'\$\.samples\[0\]\.seed'),
            (
                ('samples', 1, 'class_fractions', 2),
                1.5,
                r'\$\.samples\[1\]\.class_fractions\[2\]',
            ),
            (
                ('samples', 0, 'image1'),
                'images/000000.tif',
                r'\$\.samples\[0\]\.image1',
            ),
            (('format',), 'specdm-synthetic/2', r'\$\.format'),
            (('generator', 'steps'), 0, r'\$\.generator\.steps'),
            (('extra',), 1, r'\$ is invalid: Additional properties'),
            (('samples',), [], r'\$\.samples'),
        ],
    )
    def test_schema(
        self, seg_root: Path, path: tuple[Any, ...], value: Any, field: str
    ) -> None:
        manifest = json.loads((seg_root / 'manifest.json').read_text())
        node = manifest
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        (seg_root / 'manifest.json').write_text(json.dumps(manifest))
        with pytest.raises(InvalidInputError, match=f'manifest.json: field {field}'):
            load_manifest(seg_root)

    def test_class_counts(self, seg_root: Path) -> None:
        edit_manifest(seg_root, class_names=['a', 'b'])
        with pytest.raises(InvalidInputError, match=r'\$\.class_names names 2 classes'):
            load_manifest(seg_root)
        edit_manifest(seg_root, class_names=['a', 'b'], num_classes=2)
        with pytest.raises(
            InvalidInputError, match=r'\$\.samples\[0\]\.class_fractions has 3'
        ):
            load_manifest(seg_root)

    def test_duplicate_id(self, seg_root: Path) -> None:
        samples = json.loads((seg_root / 'manifest.json').read_text())['samples']
        samples[1]['id'] = 0
        edit_manifest(seg_root, samples=samples)
        with pytest.raises(
            InvalidInputError, match=r'\$\.samples\[1\]\.id = 0 repeats'
        ):
            load_manifest(seg_root)

    @pytest.mark.parametrize(
        'escape', ['../x.tif', 'absolute', 'images/../../x.tif', 'C:\\x.tif']
    )
    def test_path_escape(self, seg_root: Path, escape: str) -> None:
        outside = seg_root.parent / 'x.tif'
        outside.write_bytes((seg_root / 'images' / '000000.tif').read_bytes())
        samples = json.loads((seg_root / 'manifest.json').read_text())['samples']
        samples[1]['image'] = str(outside) if escape == 'absolute' else escape
        edit_manifest(seg_root, samples=samples)
        with pytest.raises(
            InvalidInputError,
            match=r'\$\.samples\[1\]\.image = .* leaves the dataset folder',
        ):
            SyntheticDataset(seg_root)

    def test_symlink_escape(self, seg_root: Path) -> None:
        outside = seg_root.parent / 'x.tif'
        target = seg_root / 'masks' / '000001.tif'
        os.replace(target, outside)
        target.symlink_to(outside)
        with pytest.raises(
            InvalidInputError, match=r'\$\.samples\[1\]\.mask .* symbolic link'
        ):
            load_manifest(seg_root)
        # A link that stays inside the folder is fine.
        os.replace(outside, seg_root / 'masks' / 'real.tif')
        target.unlink()
        target.symlink_to(seg_root / 'masks' / 'real.tif')
        assert len(SyntheticDataset(seg_root)) == 2

    def test_missing_file(self, seg_root: Path) -> None:
        (seg_root / 'masks' / '000001.tif').unlink()
        with pytest.raises(
            InvalidInputError,
            match=r'\$\.samples\[1\]\.mask names .*000001\.tif, which does not exist',
        ):
            SyntheticDataset(seg_root)

    def test_band_count_edited(self, seg_root: Path) -> None:
        edit_manifest(seg_root, bands=['B02', 'B03', 'B04'])
        dataset = SyntheticDataset(seg_root)
        with pytest.raises(
            InvalidInputError,
            match=r'images/000000\.tif: image has 4 bands but .*manifest\.json lists 3 bands',
        ):
            dataset[0]

    def test_corrupted_image(self, seg_root: Path) -> None:
        path = seg_root / 'images' / '000001.tif'
        path.write_bytes(path.read_bytes()[:100])
        dataset = SyntheticDataset(seg_root)
        with pytest.raises(
            InvalidInputError,
            match=r'000001\.tif: cannot read this GeoTIFF .*000001\.json',
        ):
            dataset[1]

    def test_labels_out_of_range(self, seg_root: Path) -> None:
        path = seg_root / 'masks' / '000000.tif'
        with rasterio.open(path, 'r+') as dst:
            dst.write(np.full((1, SIZE, SIZE), 7, np.uint8))
        with pytest.raises(
            InvalidInputError,
            match=r'000000\.tif: label values span \[7, 7\], outside the 3',
        ):
            SyntheticDataset(seg_root)[0]

    def test_schema_is_valid(self) -> None:
        import jsonschema

        jsonschema.Draft202012Validator.check_schema(MANIFEST_SCHEMA)


class TestAlignment:
    def test_min_alignment(self, tmp_path: Path) -> None:
        writer = seg_writer(tmp_path)
        fill(writer, range(4))
        writer.finalize()
        with pytest.raises(
            InvalidInputError,
            match=r'samples 0, 1, 2, 3 have no alignment score.*Run the alignment scoring first',
        ):
            SyntheticDataset(tmp_path, min_alignment=0.5)
        update_alignment(tmp_path, {0: 0.9, 1: 0.2, 2: 0.5})
        with pytest.raises(
            InvalidInputError, match='samples 3 have no alignment score'
        ):
            SyntheticDataset(tmp_path, min_alignment=0.5)
        manifest = update_alignment(tmp_path, {3: 0.7})
        assert [s['alignment'] for s in manifest['samples']] == [0.9, 0.2, 0.5, 0.7]
        assert len(SyntheticDataset(tmp_path)) == 4
        dataset = SyntheticDataset(tmp_path, min_alignment=0.5)
        assert [s['id'] for s in dataset.samples] == [0, 2, 3]
        assert torch.equal(dataset[1]['mask'], make_sample(2, 4)[1])
        with pytest.raises(
            InvalidInputError,
            match=r'no sample reaches min_alignment=0\.95 \(the best score is 0\.9\)',
        ):
            SyntheticDataset(tmp_path, min_alignment=0.95)

    def test_bad_scores(self, seg_root: Path) -> None:
        with pytest.raises(InvalidInputError, match='sample id 5 is not in'):
            update_alignment(seg_root, {5: 0.1})
        with pytest.raises(InvalidInputError, match='not a finite number'):
            update_alignment(seg_root, {0: float('nan')})
        assert 'alignment' not in load_manifest(seg_root)['samples'][0]


@pytest.mark.parametrize(
    'first', ['torchgeo_specdm.export', 'torchgeo_specdm.datasets.synthetic']
)
def test_writer_and_reader_share_one_manifest_loader(first: str) -> None:
    # The export package re-exports the reader of the datasets floor, in either
    # import order.
    code = (
        f'import {first}; '
        'import torchgeo_specdm.export as e, torchgeo_specdm.datasets.synthetic as s; '
        'assert s.load_manifest is e.load_manifest; '
        'assert s.MANIFEST_NAME == e.MANIFEST_NAME'
    )
    subprocess.run([sys.executable, '-c', code], check=True, cwd=ROOT)
