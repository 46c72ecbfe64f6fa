"""OSCD datamodule that cuts many patches per epoch from cities held in memory."""

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Subset, random_split
from torchgeo.datamodules import NonGeoDataModule
from torchgeo.datamodules.oscd import MEAN, STD
from torchgeo.datasets import OSCD

from ..datasets.patches import ScenePatches
from ..datasets.validation import InvalidInputError
from .transforms import BitemporalAugmentation


class OSCDPatchDataModule(NonGeoDataModule):
    """OSCD with many random patches per epoch and a fixed grid for evaluation.

    torchgeo's :class:`~torchgeo.datamodules.OSCDDataModule` gives one random crop
    per city per epoch, so the 8 training cities of the standard split make one
    small batch per epoch and re-read every GeoTIFF each time. This datamodule reads
    each city once, draws ``patches_per_epoch`` random patches from the training
    cities, and tiles the validation and test cities with a non-overlapping grid,
    so evaluation is deterministic. The city split is torchgeo's
    (``random_split`` with seed 0), and so are the normalisation statistics.

    .. versionadded:: 0.1
    """

    num_classes = 2
    class_names = ('No change', 'Change')

    def __init__(
        self,
        batch_size: int = 16,
        patch_size: int = 64,
        patches_per_epoch: int = 256,
        val_split_pct: float = 0.2,
        num_workers: int = 0,
        bands: Sequence[str] = OSCD.all_bands,
        exclude_cities: Sequence[str] = (),
        city_pool: Sequence[str] | None = None,
        change_patch_share: float = 0.0,
        match_scene_statistics: bool = False,
        **kwargs: Any,
    ) -> None:
        """Initialize a new OSCDPatchDataModule instance.

        Args:
            batch_size: size of each mini-batch.
            patch_size: side of each square patch in pixels.
            patches_per_epoch: random training patches per epoch.
            val_split_pct: share of the training cities held out for validation.
            num_workers: number of workers for parallel data loading.
            bands: bands to load.
            exclude_cities: cities of the root's training split left out of
                training and validation, e.g. the cities of a held-out test root
                (they must never select a model or drive a scheduler).
            city_pool: the training cities to keep, after the validation split
                (the labelled pool of a leak-free comparison at a fraction below
                1); None keeps them all. Validation is unchanged.
            change_patch_share: share of the training patches placed around a
                changed pixel (see :class:`ScenePatches` ``positive_share``).
            match_scene_statistics: map each band of each city and date onto the
                dataset's mean and standard deviation (as Caye Daudt et al. 2018
                standardise each image), so that a radiometric shift between two
                acquisitions does not look like change everywhere.
            **kwargs: additional keyword arguments passed to
                :class:`~torchgeo.datasets.OSCD` (``root`` among them).
        """
        super().__init__(OSCD, batch_size, num_workers, bands=tuple(bands), **kwargs)
        self.patch_size = patch_size
        self.patches_per_epoch = patches_per_epoch
        self.val_split_pct = val_split_pct
        self.bands = tuple(bands)
        self.exclude_cities = tuple(exclude_cities)
        self.city_pool = None if city_pool is None else tuple(city_pool)
        self.change_patch_share = change_patch_share
        self.match_scene_statistics = match_scene_statistics
        self.mean = torch.tensor([MEAN[band] for band in self.bands])
        self.std = torch.tensor([STD[band] for band in self.bands])
        self.train_aug = BitemporalAugmentation(self.mean, self.std, train=True)
        self.aug = BitemporalAugmentation(self.mean, self.std, train=False)

    def setup(self, stage: str) -> None:
        """Set up datasets.

        Args:
            stage: Either 'fit', 'validate', 'test', or 'predict'.
        """
        if stage in ['fit', 'validate']:
            dataset = OSCD(split='train', **self.kwargs)
            regions = [str(file['region']) for file in dataset.files]
            unknown = sorted(set(self.exclude_cities) - set(regions))
            if unknown:
                raise InvalidInputError(
                    f'exclude_cities: {", ".join(unknown)} not among the training '
                    f'cities of {self.kwargs.get("root")} ({", ".join(regions)}).'
                )
            kept = [
                i
                for i, region in enumerate(regions)
                if region not in self.exclude_cities
            ]
            generator = torch.Generator().manual_seed(0)
            train, val = random_split(
                Subset(dataset, kept),
                [1 - self.val_split_pct, self.val_split_pct],
                generator,
            )
            train_indices = self._pooled(regions, [kept[i] for i in train.indices])
            val_indices = [kept[i] for i in val.indices]
            self.train_cities = [regions[i] for i in train_indices]
            self.val_cities = [regions[i] for i in val_indices]
            self.train_dataset = ScenePatches(
                [self._scene(dataset, i) for i in train_indices],
                self.patch_size,
                num_patches=self.patches_per_epoch,
                positive_share=self.change_patch_share,
            )
            self.val_dataset = ScenePatches(
                [self._scene(dataset, i) for i in val_indices], self.patch_size
            )
        if stage in ['test']:
            dataset = OSCD(split='test', **self.kwargs)
            self.test_dataset = ScenePatches(
                [self._scene(dataset, i) for i in range(len(dataset))], self.patch_size
            )

    def _pooled(self, regions: list[str], train_indices: list[int]) -> list[int]:
        """The training cities of ``city_pool`` (all of them without a pool).

        Raises:
            InvalidInputError: if a pool city is not a training city.
        """
        if self.city_pool is None:
            return train_indices
        cities = [regions[i] for i in train_indices]
        unknown = sorted(set(self.city_pool) - set(cities))
        if unknown or not self.city_pool:
            raise InvalidInputError(
                f'city_pool: {", ".join(unknown) or "empty"} not among the training '
                f'cities left after the validation split ({", ".join(cities)}).'
            )
        return [i for i in train_indices if regions[i] in self.city_pool]

    def _scene(self, dataset: OSCD, index: int) -> dict[str, Any]:
        """One city, its bands matched to the dataset statistics if asked."""
        sample = dataset[index]
        if self.match_scene_statistics:
            sample['image'] = match_statistics(sample['image'], self.mean, self.std)
        return sample


def match_statistics(image: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """Give each band of each image the same mean and standard deviation.

    Args:
        image: [..., C, H, W] images (e.g. the two dates of a city, [2, C, H, W]).
        mean: [C] target mean of each band.
        std: [C] target standard deviation of each band.

    Returns:
        the images, each band shifted and scaled to ``mean`` and ``std``.
    """
    image = image.float()
    own_mean = image.mean(dim=(-2, -1), keepdim=True)
    own_std = image.std(dim=(-2, -1), keepdim=True).clamp_min(1e-6)
    return (image - own_mean) / own_std * std[:, None, None] + mean[:, None, None]
