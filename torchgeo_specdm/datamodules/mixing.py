"""Mix a generated dataset into the training split of any TorchGeo datamodule."""

from typing import Any, Literal

import torch
from torch.utils.data import Dataset
from torchgeo.datamodules import NonGeoDataModule

from ..datasets import SyntheticDataset
from ..datasets.validation import InvalidInputError
from ..types import Path, Sample


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


class SyntheticMixDataModule(NonGeoDataModule):
    """Add generated image-mask pairs to the training split of a real datamodule.

    The wrapped datamodule keeps its datasets, normalisation and augmentation:
    synthetic samples go through exactly the same ``train_aug`` as real ones, and
    the validation, test and predict splits stay purely real.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        datamodule: NonGeoDataModule,
        synthetic_root: Path,
        synthetic_ratio: float | Literal['append'] = 'append',
        min_alignment: float | None = None,
    ) -> None:
        """Initialize a new SyntheticMixDataModule instance.

        Args:
            datamodule: the real datamodule, e.g. ``OSCDDataModule`` or
                ``SegMunichDataModule``.
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
        self.collate_fn = datamodule.collate_fn
        for name in ('mean', 'std', 'aug', 'train_aug', 'val_aug', 'test_aug'):
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
        self._check_compatible(real, synthetic)
        self.synthetic_dataset = synthetic
        num_real = len(real)  # type: ignore[arg-type]
        if self.synthetic_ratio == 'append':
            mixed = MixedDataset(real, synthetic, len(synthetic), 'all')
        else:
            share = float(self.synthetic_ratio)
            count = round(num_real * share / (1 - share))
            mixed = MixedDataset(real, synthetic, count, 'random')
        self.train_dataset = mixed

    def _check_compatible(
        self, real: Dataset[Sample], synthetic: SyntheticDataset
    ) -> None:
        real_sample, fake_sample = real[0], synthetic[0]
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
