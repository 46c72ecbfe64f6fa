"""Mixing generated pairs into real datamodules; validation and test stay real."""

from pathlib import Path

import pytest
import torch

from torchgeo_specdm.cli import main
from torchgeo_specdm.datamodules import (
    SimulatedSegmentationDataModule,
    SyntheticMixDataModule,
)
from torchgeo_specdm.datasets import InvalidInputError, SyntheticDataset
from torchgeo_specdm.export import DatasetWriter

from .conftest import ROOT, TEST_GENERATOR


@pytest.fixture
def synthetic(tmp_path: Path) -> Path:
    datamodule = SimulatedSegmentationDataModule(num_train=4, size=32)
    writer = DatasetWriter(
        tmp_path / 'gen',
        'segmentation',
        list(datamodule.bands),
        datamodule.num_classes,
        list(datamodule.class_names),
        TEST_GENERATOR,
    )
    for index in range(6):
        writer.write(
            index,
            torch.full((10, 32, 32), 5000.0),
            torch.full((32, 32), index % 3),
            seed=index,
        )
    writer.finalize(6)
    return tmp_path / 'gen'


def _real() -> SimulatedSegmentationDataModule:
    return SimulatedSegmentationDataModule(
        num_train=8, num_val=4, num_test=4, size=32, batch_size=4
    )


def test_append_and_real_evaluation_splits(synthetic: Path) -> None:
    mixed = SyntheticMixDataModule(_real(), synthetic)
    mixed.setup('fit')
    assert len(mixed.train_dataset) == 8 + 6  # type: ignore[arg-type]
    served = [mixed.train_dataset[i]['image'] for i in range(14)]  # type: ignore[index]
    assert sum(bool((image == 5000).all()) for image in served) == 6
    # Validation and test are the real datamodule's own datasets, with no synthetic sample.
    assert mixed.val_dataset is mixed.real.val_dataset
    assert not any(
        bool((mixed.val_dataset[i]['image'] == 5000).all()) for i in range(4)
    )  # type: ignore[index]
    mixed.setup('test')
    assert mixed.test_dataset is mixed.real.test_dataset
    assert not isinstance(mixed.test_dataset, SyntheticDataset)
    # One normalisation and augmentation for both sources.
    assert mixed.train_aug is mixed.real.train_aug
    assert mixed.aug is mixed.real.aug
    assert torch.equal(mixed.mean, mixed.real.mean)


def test_ratio_is_the_synthetic_share_of_an_epoch(synthetic: Path) -> None:
    mixed = SyntheticMixDataModule(_real(), synthetic, synthetic_ratio=0.5)
    mixed.setup('fit')
    assert len(mixed.train_dataset) == 16  # type: ignore[arg-type]


@pytest.mark.parametrize('ratio', [1.0, -0.1, 'all'])
def test_bad_ratio(synthetic: Path, ratio: object) -> None:
    with pytest.raises(InvalidInputError, match='synthetic_ratio='):
        SyntheticMixDataModule(_real(), synthetic, synthetic_ratio=ratio)  # type: ignore[arg-type]


def test_size_mismatch(synthetic: Path) -> None:
    real = SimulatedSegmentationDataModule(num_train=8, size=64)
    with pytest.raises(
        InvalidInputError,
        match=r'synthetic images are \(10, 32, 32\) but the real training images are \(10, 64, 64\)',
    ):
        SyntheticMixDataModule(real, synthetic).setup('fit')


def test_stock_segmentation_task_trains_on_the_mix(
    synthetic: Path, tmp_path: Path
) -> None:
    args = ['fit', '--config', str(ROOT / 'benchmarks/configs/segmentation.yaml')]
    args += [
        '--config',
        str(ROOT / 'datamodules/simulated_segmentation_synthetic.yaml'),
    ]
    args += [
        f'--data.init_args.synthetic_root={synthetic}',
        '--data.init_args.datamodule.init_args.size=32',
    ]
    args += [
        '--data.init_args.datamodule.init_args.num_train=8',
        '--data.init_args.datamodule.init_args.batch_size=4',
    ]
    args += ['--trainer.fast_dev_run=true', f'--trainer.default_root_dir={tmp_path}']
    main(args)
