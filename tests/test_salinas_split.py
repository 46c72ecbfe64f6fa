"""The class-stratified block split of Salinas-A: disjoint parts that hold every class."""

from pathlib import Path

import numpy as np
import pytest
import torch

from torchgeo_specdm.datamodules import SalinasADataModule
from torchgeo_specdm.datamodules.registry import demo_datamodule
from torchgeo_specdm.datasets import IndianPines, InvalidInputError, SalinasA
from torchgeo_specdm.datasets.blocks import grid_blocks, stratified_assignment
from torchgeo_specdm.datasets.patches import ScenePatches

from .test_salinas_a import covered_pixels, write_fake

SPLITS = ('train', 'val', 'test')
#: Pixels per class (unlabelled first) of each part, as the datamodule documents.
COUNTS = {
    'train': [918, 268, 805, 397, 988, 416, 474],
    'val': [356, 19, 293, 137, 331, 141, 167],
    'test': [516, 104, 245, 82, 206, 117, 158],
}
STRATIFIED = {'split_method': 'stratified_blocks'}


@pytest.fixture(scope='module')
def salinas_root(shared_data: Path) -> Path:
    return shared_data / 'hsi' / 'salinas_a'


@pytest.fixture(scope='module')
def scene(salinas_root: Path) -> dict[str, torch.Tensor]:
    return SalinasA(salinas_root).load_scene()


@pytest.fixture(scope='module')
def parts(salinas_root: Path) -> dict[str, SalinasA]:
    return {
        'train': SalinasA(salinas_root, 'train', num_patches=512, **STRATIFIED),  # type: ignore[arg-type]
        'val': SalinasA(salinas_root, 'val', stride=8, **STRATIFIED),  # type: ignore[arg-type]
        'test': SalinasA(salinas_root, 'test', stride=8, **STRATIFIED),  # type: ignore[arg-type]
    }


def scene_region(dataset: SalinasA) -> torch.Tensor:
    """The pixels of a dataset's part, [83, 86]."""
    region = torch.zeros(83, 86, dtype=torch.bool)
    top, left, height, width = dataset.block(dataset.split)
    region[top : top + height, left : left + width] = dataset.region
    return region


def patch_cover(dataset: SalinasA, windows: list[tuple[int, int]]) -> torch.Tensor:
    """The scene pixels that some windows of a dataset cover, [83, 86]."""
    size = dataset.patch_size
    cover = torch.zeros(83, 86, dtype=torch.bool)
    for top, left in windows:
        cover[top : top + size, left : left + size] = True
    return cover


class TestRealSplit:
    def test_every_part_holds_every_class(self, parts: dict[str, SalinasA]) -> None:
        for split, dataset in parts.items():
            counts = dataset.class_counts()
            assert counts.tolist() == COUNTS[split], split
            assert (counts[1:] > 0).all(), split

    def test_parts_partition_the_scene(
        self, parts: dict[str, SalinasA], scene: dict[str, torch.Tensor]
    ) -> None:
        regions = {split: scene_region(parts[split]) for split in SPLITS}
        assert not (regions['train'] & regions['val']).any()
        assert not (regions['train'] & regions['test']).any()
        assert not (regions['val'] & regions['test']).any()
        assert bool((regions['train'] | regions['val'] | regions['test']).all())
        whole = torch.bincount(scene['mask'].flatten(), minlength=7)
        assert torch.equal(sum(d.class_counts() for d in parts.values()), whole)
        # 15, 5 and 5 of the 5 x 5 blocks, each at least one patch wide.
        assert [len(parts[s].part_blocks) for s in SPLITS] == [15, 5, 5]
        for dataset in parts.values():
            assert all(min(b[2:]) >= 16 for b in dataset.part_blocks)

    def test_no_training_patch_covers_another_part(
        self, parts: dict[str, SalinasA], scene: dict[str, torch.Tensor]
    ) -> None:
        train = parts['train']
        others = scene_region(parts['val']) | scene_region(parts['test'])
        crops = [train.window(index) for index in range(len(train))]
        assert not (patch_cover(train, crops) & others).any()
        # Nor could any crop: every window the sampler may draw lies in train.
        every = [(top, left) for _, top, left in train.patches.windows or []]
        assert len(every) > 1000
        assert not (patch_cover(train, every) & others).any()
        # Crops may cross from one train block into a neighbouring one.
        assert patch_cover(train, crops).sum() > 0.9 * scene_region(train).sum()
        # The windows say where the patches are, and patches carry scene pixels.
        for index in range(10):
            top, left = train.window(index)
            window = (..., slice(top, top + 16), slice(left, left + 16))
            assert torch.equal(train[index]['image'], scene['image'][window])
            assert torch.equal(train[index]['mask'], scene['mask'][window])

    def test_crops_draw_every_train_pixel_alike(
        self, parts: dict[str, SalinasA]
    ) -> None:
        train = parts['train']
        weights = train.patches.window_weights
        assert weights is not None
        # A random pixel, then a window around it: the odds sum to the pixels.
        assert float(weights.sum()) == pytest.approx(float(train.region.sum()))
        # The top left train block (Brocoli) touches only val and test blocks, so
        # it holds 4 windows; its pixels are still drawn as often as others.
        brocoli = sum(bool((train[i]['mask'] == 1).any()) for i in range(len(train)))
        assert brocoli >= 0.5 * 512 * 17 * 17 / 4266

    def test_eval_grids_cover_their_part_only(
        self, parts: dict[str, SalinasA], scene: dict[str, torch.Tensor]
    ) -> None:
        for split in ('val', 'test'):
            dataset = parts[split]
            windows = [dataset.window(index) for index in range(len(dataset))]
            assert torch.equal(patch_cover(dataset, windows), scene_region(dataset))
            labels = torch.cat(
                [dataset[i]['mask'].flatten() for i in range(len(dataset))]
            )
            assert (torch.bincount(labels, minlength=7)[1:] > 0).all(), split
        assert [len(parts[s]) for s in ('val', 'test')] == [16, 18]

    def test_other_parts_are_blank_in_a_parts_tensors(
        self, parts: dict[str, SalinasA]
    ) -> None:
        for dataset in parts.values():
            assert not dataset.image[:, ~dataset.region].any()
            assert not dataset.mask[~dataset.region].any()

    def test_old_blocks_miss_classes(self, salinas_root: Path) -> None:
        test = SalinasA(salinas_root, 'test')
        assert test.split_method == 'blocks'
        assert test.class_counts()[[1, 3]].tolist() == [0, 0]


class TestDataModule:
    def test_demo_uses_the_stratified_split(self, salinas_root: Path) -> None:
        module = demo_datamodule('salinas-a', salinas_root)
        assert isinstance(module, SalinasADataModule)
        assert module.kwargs['split_method'] == 'stratified_blocks'
        module.setup('test')
        assert module.test_dataset.class_counts().tolist() == COUNTS['test']  # type: ignore[union-attr]

    def test_statistics_use_train_pixels_only(
        self, salinas_root: Path, scene: dict[str, torch.Tensor]
    ) -> None:
        module = SalinasADataModule(root=salinas_root, **STRATIFIED)  # type: ignore[arg-type]
        module.setup('fit')
        region = scene_region(module.train_dataset)  # type: ignore[arg-type]
        pixels = scene['image'][:, region].double()
        torch.testing.assert_close(module.mean, pixels.mean(1).float())
        torch.testing.assert_close(module.std, pixels.std(1).float())

    @pytest.mark.parametrize('fraction', [0.05, 0.25])
    def test_label_fraction_only_thins_training_labels(
        self, salinas_root: Path, fraction: float
    ) -> None:
        def module(label_fraction: float) -> SalinasADataModule:
            out = SalinasADataModule(
                root=salinas_root,
                patches_per_epoch=16,
                label_fraction=label_fraction,
                seed=3,
                **STRATIFIED,  # type: ignore[arg-type]
            )
            out.setup('fit')
            out.setup('test')
            return out

        full, thin = module(1.0), module(fraction)
        full_mask = full.train_dataset.mask  # type: ignore[union-attr]
        mask = thin.train_dataset.mask  # type: ignore[union-attr]
        labelled = int((full_mask != 0).sum())
        assert labelled == sum(COUNTS['train'][1:])
        assert abs(int((mask != 0).sum()) - round(fraction * labelled)) <= 1
        kept = mask != 0
        assert torch.equal(mask[kept], full_mask[kept])
        # The same blocks, whatever the seed and fraction.
        assert thin.train_dataset.part_blocks == full.train_dataset.part_blocks  # type: ignore[union-attr]
        for name in ('val_dataset', 'test_dataset'):
            assert torch.equal(getattr(thin, name).mask, getattr(full, name).mask)
        assert thin.test_dataset.class_counts().tolist() == COUNTS['test']  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ('options', 'message'),
    [
        ({'block_grid': (0, 5)}, r'block_grid=\[0, 5\]: give two whole numbers'),
        ({'block_grid': (5,)}, r'block_grid=\[5\]: give two whole numbers'),
        ({'block_grid': (1, 2)}, r'block_grid=\[1, 2\].*enough blocks for train'),
        ({'block_grid': (2.5, 2)}, r'block_grid=\[2.5, 2\]'),
        ({'split_method': 'folds'}, "split_method='folds': choose 'blocks' or"),
        (
            {'block_grid': (5, 5), 'patch_size': 32},
            (
                r"split 'train': its block is 17 x 17 px .* patch_size=32.*"
                r'block_grid=\[5, 5\]'
            ),
        ),
    ],
)
def test_bad_arguments(
    salinas_root: Path, options: dict[str, object], message: str
) -> None:
    options = {'split_method': 'stratified_blocks'} | options
    with pytest.raises(InvalidInputError, match=message):
        SalinasA(salinas_root, **options)  # type: ignore[arg-type]


def test_fake_scene_split_is_disjoint(tmp_path: Path) -> None:
    root = write_fake(tmp_path, IndianPines, height=40, width=40)
    options = {'patch_size': 8, 'block_grid': (4, 4), **STRATIFIED}
    train = IndianPines(root, 'train', num_patches=300, **options)  # type: ignore[arg-type]
    val = IndianPines(root, 'val', stride=4, **options)  # type: ignore[arg-type]
    test = IndianPines(root, 'test', stride=4, **options)  # type: ignore[arg-type]
    pixels = [covered_pixels(dataset) for dataset in (train, val, test)]
    assert pixels[0].isdisjoint(pixels[1] | pixels[2])
    assert pixels[1].isdisjoint(pixels[2])
    # The grids cover their parts: 3 and 3 blocks of 10 x 10 px (0.2 of 16 blocks).
    assert len(pixels[1]) == len(pixels[2]) == 3 * 100


def test_assignment_is_stratified_and_deterministic() -> None:
    blocks = grid_blocks(83, 86, (5, 5))
    assert len(blocks) == 25
    assert sum(h * w for _, _, h, w in blocks) == 83 * 86
    # Class 1 lies in blocks 0, 1 and 2 only: each part must take one of them.
    counts = np.zeros((6, 3), dtype=np.int64)
    counts[:, 0] = 10
    counts[:3, 1] = 5
    counts[:, 2] = 7
    fractions = (4 / 6, 1 / 6, 1 / 6)
    parts = stratified_assignment(counts, fractions)
    assert sorted(parts.tolist()) == [0, 0, 0, 0, 1, 2]
    assert sorted(parts[:3].tolist()) == [0, 1, 2]
    assert np.array_equal(parts, stratified_assignment(counts, fractions))


@pytest.mark.parametrize(
    ('options', 'message'),
    [
        ({'windows': []}, 'windows: empty'),
        ({'windows': [(0, 0, 0)], 'positive_share': 0.5}, 'cannot be combined'),
        ({'windows': [(1, 0, 0)]}, 'windows: no scene 1'),
        ({'windows': [(0, 5, 0)]}, r'windows: \(0, 5, 0\) leaves the 8 x 8 px scene'),
    ],
)
def test_bad_windows(options: dict[str, object], message: str) -> None:
    scene = {'image': torch.zeros(2, 8, 8), 'mask': torch.zeros(8, 8, dtype=torch.long)}
    with pytest.raises(InvalidInputError, match=message):
        ScenePatches([scene], 4, **options)  # type: ignore[arg-type]
