"""SegMunich datamodule."""

from collections.abc import Sequence
from typing import Any

import torch
from torchgeo.datamodules import NonGeoDataModule

from ..datasets import SegMunich
from .transforms import segmentation_augmentation

#: Per-band mean and standard deviation of the real SegMunich tile
#: ``SegMunich_train_img_10.tif`` (one training tile; a full-dataset estimate is
#: better when you have the data).
MEAN = dict(zip(SegMunich.all_bands, (471.8, 716.1, 634.9, 2853.3, 1098.7, 2354.8, 2767.1, 2995.9, 1858.6, 1100.0)))  # fmt: skip
STD = dict(zip(SegMunich.all_bands, (224.2, 317.6, 391.1, 562.0, 442.5, 513.1, 545.0, 570.2, 589.4, 507.5)))  # fmt: skip


class SegMunichDataModule(NonGeoDataModule):
    """LightningDataModule for the SegMunich dataset.

    Normalises each band, and augments training batches with random flips and 90
    degree rotations.

    .. versionadded:: 0.1
    """

    num_classes = len(SegMunich.classes)

    def __init__(
        self,
        batch_size: int = 16,
        num_workers: int = 0,
        bands: Sequence[str] = SegMunich.all_bands,
        **kwargs: Any,
    ) -> None:
        """Initialize a new SegMunichDataModule instance.

        Args:
            batch_size: size of each mini-batch.
            num_workers: number of workers for parallel data loading.
            bands: bands to load, a subset of :attr:`SegMunich.all_bands`.
            **kwargs: additional keyword arguments passed to
                :class:`~torchgeo_specdm.datasets.SegMunich`.
        """
        super().__init__(
            SegMunich, batch_size, num_workers, bands=tuple(bands), **kwargs
        )
        self.bands = tuple(bands)
        self.class_names = SegMunich.classes
        self.mean = torch.tensor([MEAN[band] for band in self.bands])
        self.std = torch.tensor([STD[band] for band in self.bands])
        self.train_aug = segmentation_augmentation(self.mean, self.std, train=True)
        self.aug = segmentation_augmentation(self.mean, self.std, train=False)
