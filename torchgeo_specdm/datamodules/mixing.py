"""Mix a generated dataset into the training split of any TorchGeo datamodule."""

from collections.abc import Iterator, Sequence
from typing import Any, Literal

import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torchgeo.datamodules import BaseDataModule, NonGeoDataModule
from torchgeo.datasets import GeoDataset
from torchgeo.samplers import BatchGeoSampler

from ..datasets import SyntheticDataset
from ..datasets.validation import InvalidInputError
from ..types import Path, Sample
from .utils import split_sampler


class MixedDataset(Dataset[Sample]):
    """All real samples plus synthetic samples, as one training epoch.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        real: Dataset[Sample],
        synthetic: Dataset[Sample],
        num_synthetic: int,
        draw: Literal['all', 'random'],
    ) -> None:
        """Initialize a new MixedDataset instance.

        Args:
            real: the real training samples.
            synthetic: the generated samples.
            num_synthetic: synthetic samples per epoch.
            draw: 'all' serves each synthetic sample once; 'random' draws each
                synthetic slot at random, so every epoch sees a new subset.
        """
        self.real = real
        self.synthetic = synthetic
        self.num_real = len(real)  # type: ignore[arg-type]
        self.num_synthetic = num_synthetic
        self.draw = draw

    def __len__(self) -> int:
        """Return the number of samples per epoch.

        Returns:
            real plus synthetic samples
        """
        return self.num_real + self.num_synthetic

    def __getitem__(self, index: int) -> Sample:
        """Return a real sample, then synthetic ones.

        Args:
            index: index to return

        Returns:
            the sample
        """
        if index < self.num_real:
            return self.real[index]
        if self.draw == 'all':
            return self.synthetic[index - self.num_real]
        size = len(self.synthetic)  # type: ignore[arg-type]
        return self.synthetic[int(torch.randint(size, ()))]


class MixedGeoDataset(Dataset[Sample]):
    """A GeoDataset's patches and synthetic samples behind one index.

    A bounding box (what a GeoSampler draws) reads the real dataset; an integer
    reads the synthetic one. Samples keep only the keys both sources have (the
    real patches' ``bounds`` and ``transform`` have no synthetic counterpart), so
    mixed batches collate.

    .. versionadded:: 0.1
    """

    def __init__(
        self, real: GeoDataset, synthetic: Dataset[Sample], keys: Sequence[str]
    ) -> None:
        """Initialize a new MixedGeoDataset instance.

        Args:
            real: the real training dataset.
            synthetic: the generated samples.
            keys: the sample keys to keep.
        """
        self.real = real
        self.synthetic = synthetic
        self.keys = tuple(keys)

    def __getitem__(self, index: Any) -> Sample:
        """Return a real patch or a synthetic sample.

        Args:
            index: a bounding box of the real dataset, or a synthetic index.

        Returns:
            the sample
        """
        source = self.synthetic if isinstance(index, int) else self.real
        sample = source[index]
        return {key: sample[key] for key in self.keys}


class MixedSampler(Sampler[Any]):
    """A GeoSampler's patches with synthetic indices shuffled in, each epoch.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        real: Sampler[Any],
        num_synthetic: int,
        num_available: int,
        draw: Literal['all', 'random'],
    ) -> None:
        """Initialize a new MixedSampler instance.

        Args:
            real: the real datamodule's training sampler (a ``GeoSampler``, or a
                ``BatchGeoSampler`` whose batches are served one patch at a time).
            num_synthetic: synthetic samples per epoch.
            num_available: synthetic samples there are.
            draw: 'all' serves each synthetic sample once; 'random' draws each
                synthetic slot at random, so every epoch sees a new subset.
        """
        self.real = real
        self.num_synthetic = num_synthetic
        self.num_available = num_available
        self.draw = draw

    @property
    def num_real(self) -> int:
        """Real patches per epoch."""
        count = len(self.real)  # type: ignore[arg-type]
        if isinstance(self.real, BatchGeoSampler):
            count *= int(getattr(self.real, 'batch_size', 1))
        return count

    def __iter__(self) -> Iterator[Any]:
        """Return the epoch's indices: real bounding boxes and synthetic integers.

        Returns:
            an iterator over the indices, in random order
        """
        real: list[Any] = []
        for item in self.real:
            real.extend(item if isinstance(self.real, BatchGeoSampler) else [item])
        if self.draw == 'all':
            synthetic = list(range(self.num_synthetic))
        else:
            synthetic = torch.randint(
                self.num_available, (self.num_synthetic,)
            ).tolist()
        items = real + synthetic
        for position in torch.randperm(len(items)).tolist():
            yield items[position]

    def __len__(self) -> int:
        """Return the number of samples per epoch.

        Returns:
            real plus synthetic samples
        """
        return self.num_real + self.num_synthetic


class SyntheticMixDataModule(NonGeoDataModule):
    """Add generated image-mask pairs to the training split of a real datamodule.

    The wrapped datamodule, a ``NonGeoDataModule`` or a ``GeoDataModule``, keeps its
    datasets, samplers, normalisation and augmentation: synthetic samples go through
    exactly the same ``train_aug`` as real ones, and the validation, test and
    predict loaders are the real datamodule's own. For a GeoDataModule, each
    training epoch is its training sampler's patches with the synthetic samples
    shuffled in (the synthetic pairs must have the sampler's patch size).

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        datamodule: BaseDataModule,
        synthetic_root: Path,
        synthetic_ratio: float | Literal['append'] = 'append',
        min_alignment: float | None = None,
    ) -> None:
        """Initialize a new SyntheticMixDataModule instance.

        Args:
            datamodule: the real datamodule, e.g. ``OSCDDataModule``,
                ``SegMunichDataModule`` or a ``GeoDataModule`` such as
                ``RasterMaskDataModule``.
            synthetic_root: a folder written by ``specdm sample``.
            synthetic_ratio: synthetic share of each training epoch in [0, 1)
                (0.5 = as many synthetic as real samples, drawn at random each
                epoch), or 'append' to add every synthetic sample once.
            min_alignment: keep only synthetic pairs whose alignment score reaches
                this value.

        Raises:
            InvalidInputError: if ``synthetic_ratio`` is out of range.
        """
        if synthetic_ratio != 'append' and not (
            isinstance(synthetic_ratio, int | float) and 0 <= synthetic_ratio < 1
        ):
            raise InvalidInputError(
                f'synthetic_ratio={synthetic_ratio!r}: pass the synthetic share of '
                "each epoch in [0, 1), e.g. 0.5, or 'append'."
            )
        super().__init__(
            SyntheticDataset, datamodule.batch_size, datamodule.num_workers
        )
        self.real = datamodule
        self.synthetic_root = synthetic_root
        self.synthetic_ratio = synthetic_ratio
        self.min_alignment = min_alignment
        self.collate_fn = getattr(datamodule, 'collate_fn', self.collate_fn)
        self._copy_settings()

    def _copy_settings(self) -> None:
        """Take the real datamodule's normalisation, augmentation and class names.

        Run again after its ``setup``: a datamodule may compute them there (e.g.
        :class:`~torchgeo_specdm.datamodules.RasterMaskDataModule`'s statistics).
        """
        datamodule = self.real
        for name in (
            'mean',
            'std',
            'aug',
            'train_aug',
            'val_aug',
            'test_aug',
            'predict_aug',
        ):
            setattr(self, name, getattr(datamodule, name, None))
        for name in ('bands', 'wavelengths', 'num_classes', 'class_names'):
            if hasattr(datamodule, name):
                setattr(self, name, getattr(datamodule, name))

    def setup(self, stage: str) -> None:
        """Set up the real datasets, then mix synthetic samples into training.

        Args:
            stage: Either 'fit', 'validate', 'test', or 'predict'.
        """
        self.real.setup(stage)
        self._copy_settings()
        for name in ('val_dataset', 'test_dataset', 'predict_dataset', 'dataset'):
            setattr(self, name, getattr(self.real, name, None))
        if stage != 'fit':
            return
        real = self.real.train_dataset
        if real is None:
            raise InvalidInputError(
                f'{type(self.real).__name__}.setup("fit") made no training dataset.'
            )
        synthetic = SyntheticDataset(
            self.synthetic_root, min_alignment=self.min_alignment
        )
        self.synthetic_dataset = synthetic
        sampler = split_sampler(self.real, 'train')
        if sampler is not None:
            self._setup_geo(real, sampler, synthetic)
            return
        self._check_compatible(real[0], synthetic)
        num_real = len(real)  # type: ignore[arg-type]
        if self.synthetic_ratio == 'append':
            mixed = MixedDataset(real, synthetic, len(synthetic), 'all')
        else:
            share = float(self.synthetic_ratio)
            count = round(num_real * share / (1 - share))
            mixed = MixedDataset(real, synthetic, count, 'random')
        self.train_dataset = mixed

    def _setup_geo(
        self, real: Any, sampler: Sampler[Any], synthetic: SyntheticDataset
    ) -> None:
        """Mix synthetic samples into the patches a training sampler draws.

        Args:
            real: the real training dataset (indexed by the sampler's boxes).
            sampler: the real datamodule's training sampler.
            synthetic: the generated samples.
        """
        first = next(iter(sampler))
        real_sample = real[first[0] if isinstance(sampler, BatchGeoSampler) else first]
        self._check_compatible(real_sample, synthetic)
        keys = [key for key in real_sample if key in synthetic[0]]
        mixed = MixedSampler(sampler, 0, len(synthetic), 'all')
        if self.synthetic_ratio == 'append':
            mixed.num_synthetic = len(synthetic)
        else:
            share = float(self.synthetic_ratio)
            mixed.num_synthetic = round(mixed.num_real * share / (1 - share))
            mixed.draw = 'random'
        self.train_dataset = MixedGeoDataset(real, synthetic, keys)
        self.train_sampler = mixed
        if isinstance(sampler, BatchGeoSampler):
            self.train_batch_size = int(getattr(sampler, 'batch_size', 1))

    def _dataloader_factory(self, split: str) -> DataLoader[Sample]:
        """Training mixes real and synthetic samples; the rest is the real loader.

        Args:
            split: Either 'train', 'val', 'test', or 'predict'.

        Returns:
            the loader.
        """
        if split != 'train':
            loader: DataLoader[Sample] = getattr(self.real, f'{split}_dataloader')()
            return loader
        sampler = getattr(self, 'train_sampler', None)
        if not isinstance(sampler, MixedSampler):
            return super()._dataloader_factory(split)
        return DataLoader(
            self._valid_attribute('train_dataset'),
            batch_size=self._valid_attribute('train_batch_size', 'batch_size'),
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=self.collate_fn,
            drop_last=True,
            persistent_workers=self.num_workers > 0,
        )

    def _check_compatible(
        self, real_sample: Sample, synthetic: SyntheticDataset
    ) -> None:
        fake_sample = synthetic[0]
        for key in ('image', 'mask'):
            real_shape, fake_shape = real_sample[key].shape, fake_sample[key].shape
            if real_shape != fake_shape:
                raise InvalidInputError(
                    f'{synthetic.manifest_path}: synthetic {key}s are '
                    f'{tuple(fake_shape)} but the real training {key}s are '
                    f'{tuple(real_shape)}. Generate at the training patch size, or '
                    'crop the real data to match.'
                )
        bands = getattr(self.real, 'bands', None)
        if bands is not None and tuple(bands) != tuple(synthetic.bands):
            raise InvalidInputError(
                f'{synthetic.manifest_path}: synthetic bands {list(synthetic.bands)} '
                f'differ from the datamodule bands {list(bands)}. Use the same bands.'
            )

    def plot(self, *args: Any, **kwargs: Any) -> Any:
        """Plot with the real datamodule's plot method.

        Args:
            *args: Arguments passed to the real datamodule's plot.
            **kwargs: Keyword arguments passed to it.

        Returns:
            the figure, if any.
        """
        return self.real.plot(*args, **kwargs)
