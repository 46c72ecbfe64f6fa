"""Datamodules over the embedded scene simulator."""

from collections.abc import Sequence
from typing import Any

from torchgeo.datamodules import NonGeoDataModule

from ..datasets import SimulatedChange, SimulatedSegmentation
from .transforms import BitemporalAugmentation, segmentation_augmentation
from .utils import band_statistics


class _SimulatedDataModule(NonGeoDataModule):
    """Shared set-up: disjoint seeded splits and statistics from the train split."""

    dataset_class: type[SimulatedSegmentation] | type[SimulatedChange]

    def __init__(
        self,
        num_train: int,
        num_val: int,
        num_test: int,
        size: int,
        seed: int,
        bands: Sequence[str],
        batch_size: int,
        num_workers: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            self.dataset_class,
            batch_size,
            num_workers,
            size=size,
            bands=tuple(bands),
            **kwargs,
        )
        self.num_samples = {'train': num_train, 'val': num_val, 'test': num_test}
        self.seed = seed
        self.bands = tuple(bands)
        self.class_names = self.dataset_class.classes
        self.num_classes = len(self.class_names)
        self.mean, self.std = band_statistics(self._split_dataset('train'))

    def _split_dataset(self, split: str) -> SimulatedSegmentation | SimulatedChange:
        offset = {'train': 0, 'val': 1_000_003, 'test': 2_000_003}[split]
        return self.dataset_class(
            num_samples=self.num_samples[split], seed=self.seed + offset, **self.kwargs
        )

    def setup(self, stage: str) -> None:
        """Set up datasets.

        Args:
            stage: Either 'fit', 'validate', 'test', or 'predict'.
        """
        if stage in ['fit']:
            self.train_dataset = self._split_dataset('train')
        if stage in ['fit', 'validate']:
            self.val_dataset = self._split_dataset('val')
        if stage in ['test']:
            self.test_dataset = self._split_dataset('test')
        if stage in ['predict']:
            self.predict_dataset = self._split_dataset('test')


class SimulatedSegmentationDataModule(_SimulatedDataModule):
    """LightningDataModule for :class:`~torchgeo_specdm.datasets.SimulatedSegmentation`.

    Train, val and test draw from disjoint seeds. Normalisation uses the band
    statistics of the training split; training batches get flips and rotations.

    .. versionadded:: 0.1
    """

    dataset_class = SimulatedSegmentation

    def __init__(
        self,
        num_train: int = 256,
        num_val: int = 32,
        num_test: int = 32,
        size: int = 64,
        seed: int = 0,
        bands: Sequence[str] = SimulatedSegmentation.default_bands,
        batch_size: int = 16,
        num_workers: int = 0,
        **kwargs: Any,
    ) -> None:
        """Initialize a new SimulatedSegmentationDataModule instance.

        Args:
            num_train: number of training scenes.
            num_val: number of validation scenes.
            num_test: number of test scenes.
            size: side of each scene in pixels.
            seed: base seed; each split uses its own offset from it.
            bands: Sentinel-2 bands to simulate.
            batch_size: size of each mini-batch.
            num_workers: number of workers for parallel data loading.
            **kwargs: additional keyword arguments passed to
                :class:`~torchgeo_specdm.datasets.SimulatedSegmentation`.
        """
        super().__init__(
            num_train,
            num_val,
            num_test,
            size,
            seed,
            bands,
            batch_size,
            num_workers,
            **kwargs,
        )
        self.train_aug = segmentation_augmentation(self.mean, self.std, train=True)
        self.aug = segmentation_augmentation(self.mean, self.std, train=False)


class SimulatedChangeDataModule(_SimulatedDataModule):
    """LightningDataModule for :class:`~torchgeo_specdm.datasets.SimulatedChange`.

    Batches match torchgeo's OSCD: ``image`` [B, 2, C, H, W] and ``mask`` [B, 1, H, W].
    Both dates and the mask get the same flips and rotations.

    .. versionadded:: 0.1
    """

    dataset_class = SimulatedChange

    def __init__(
        self,
        num_train: int = 256,
        num_val: int = 32,
        num_test: int = 32,
        size: int = 64,
        seed: int = 0,
        bands: Sequence[str] = SimulatedChange.all_bands,
        batch_size: int = 16,
        num_workers: int = 0,
        **kwargs: Any,
    ) -> None:
        """Initialize a new SimulatedChangeDataModule instance.

        Args:
            num_train: number of training scene pairs.
            num_val: number of validation scene pairs.
            num_test: number of test scene pairs.
            size: side of each scene in pixels.
            seed: base seed; each split uses its own offset from it.
            bands: Sentinel-2 bands to simulate.
            batch_size: size of each mini-batch.
            num_workers: number of workers for parallel data loading.
            **kwargs: additional keyword arguments passed to
                :class:`~torchgeo_specdm.datasets.SimulatedChange`.
        """
        super().__init__(
            num_train,
            num_val,
            num_test,
            size,
            seed,
            bands,
            batch_size,
            num_workers,
            **kwargs,
        )
        self.train_aug = BitemporalAugmentation(self.mean, self.std, train=True)
        self.aug = BitemporalAugmentation(self.mean, self.std, train=False)
