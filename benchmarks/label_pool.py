"""The labelled pool of a comparison: a seeded share of the real training data.

At a label fraction below 1, "real only" trains on a share of the real training split.
A generator (or guide) that learned from the whole split hands the mixed regimes labels
that real only never saw. A leak-free comparison draws the pool once, with one seed
(``--pool-seed``), trains its generators, its guide and every downstream model on that
pool, and varies only the training seed.
"""

from collections.abc import Sized
from typing import Any, cast

import torch
from torch.utils.data import Subset
from torchgeo.datamodules import NonGeoDataModule

from torchgeo_specdm.datasets import SyntheticDataset
from torchgeo_specdm.datasets.patches import ScenePatches

#: Single-scene datasets, where a real-data fraction keeps that share of the labelled
#: pixels of the train block (the classic small-label setting).
LABEL_FRACTION_DATASETS = ('salinas-a',)
#: Attributes a :class:`LimitedDataModule` takes from the datamodule it thins.
COPIED = (
    'mean',
    'std',
    'aug',
    'train_aug',
    'bands',
    'wavelengths',
    'num_classes',
    'class_names',
    'collate_fn',
    'ignore_index',
)


def share_and_overrides(
    dataset: str, fraction: float, seed: int
) -> tuple[float, dict[str, Any]]:
    """How a fraction of the labels is drawn for one dataset family.

    Args:
        dataset: dataset family.
        fraction: share of the real training labels to keep.
        seed: seed of the draw.

    Returns:
        the share of training samples :class:`LimitedDataModule` keeps, and the
        datamodule arguments that thin the labels instead (single-scene datasets).
    """
    if dataset in LABEL_FRACTION_DATASETS:
        return 1.0, {'label_fraction': fraction, 'seed': seed}
    return fraction, {}


class LimitedDataModule(NonGeoDataModule):
    """A datamodule whose training split keeps a seeded fraction of the real data."""

    def __init__(
        self, datamodule: NonGeoDataModule, fraction: float, seed: int
    ) -> None:
        """Initialise a new LimitedDataModule.

        Args:
            datamodule: the real datamodule; validation and test stay its own.
            fraction: share of its training samples (or scenes) to keep.
            seed: seed of the draw.
        """
        super().__init__(
            SyntheticDataset, datamodule.batch_size, datamodule.num_workers
        )
        self.real = datamodule
        self.fraction = fraction
        self.seed = seed
        self._copy_settings()

    def _copy_settings(self) -> None:
        """Take the real datamodule's normalisation, augmentation and class names."""
        for name in COPIED:
            if hasattr(self.real, name):
                setattr(self, name, getattr(self.real, name))

    def setup(self, stage: str) -> None:
        """Set up the real datamodule, then thin its training split.

        Args:
            stage: Lightning stage.
        """
        self.real.setup(stage)
        self._copy_settings()
        for name in ('val_dataset', 'test_dataset', 'train_dataset'):
            setattr(self, name, getattr(self.real, name, None))
        if stage == 'fit' and self.fraction < 1:
            self.train_dataset = limit(
                self.real.train_dataset, self.fraction, self.seed
            )

    @property
    def train_samples(self) -> int:
        """Number of samples (or scenes) in the thinned training split.

        Raises:
            RuntimeError: before ``setup('fit')``.
        """
        if self.train_dataset is None:
            raise RuntimeError('LimitedDataModule: call setup("fit") first')
        return len(cast(Sized, self.train_dataset))


def pool_order(size: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """The seeded draw of a labelled pool from ``size`` training samples (or scenes).

    Args:
        size: number of training samples (or scenes).
        fraction: share to keep (at least one).
        seed: seed of the draw.

    Returns:
        the kept indices and the others, each in draw order.
    """
    generator = torch.Generator().manual_seed(seed)
    keep = max(1, round(fraction * size))
    order: list[int] = torch.randperm(size, generator=generator).tolist()
    return order[:keep], order[keep:]


def check_guide_pool(
    guide: dict[str, Any], fraction: float, pool_seed: int, path: str
) -> None:
    """Refuse a guide that learned from labels outside a labelled pool.

    Args:
        guide: the guide's record (``judge.json``).
        fraction: share of the training split in the pool.
        pool_seed: seed of the pool's draw.
        path: the guide's folder, as the user passed it.

    Raises:
        SystemExit: if the guide's record names another pool (or none).
    """
    pool = guide.get('training_pool', {'fraction': 1.0, 'seed': 0})
    expected = {'fraction': fraction, 'seed': pool_seed}
    if pool != expected:
        raise SystemExit(
            f'--guide {path} learned from the labelled pool {pool}, not '
            f'{expected}: train it with judge.py --role guide '
            f'--fraction {fraction} --pool-seed {pool_seed}'
        )


def limit(dataset: Any, fraction: float, seed: int) -> Any:
    """A seeded share of a training dataset (whole scenes of a scene dataset).

    Args:
        dataset: the training dataset.
        fraction: share to keep (at least one sample or scene).
        seed: seed of the draw.

    Returns:
        the kept part; a scene dataset's records its ``scene_indices``.
    """
    if isinstance(dataset, ScenePatches):
        kept, _ = pool_order(len(dataset.scenes), fraction, seed)
        return scene_subset(dataset, kept)
    kept, _ = pool_order(len(dataset), fraction, seed)
    return Subset(dataset, kept)


def scene_subset(dataset: ScenePatches, indices: list[int]) -> ScenePatches:
    """The random patches of some scenes of a scene dataset, drawn as it draws them.

    Args:
        dataset: the scene dataset.
        indices: the scenes to keep, in order.

    Returns:
        patches of those scenes only, with the same patch size, patches per epoch
        and share of patches on positives; ``scene_indices`` records ``indices``.
    """
    patches = ScenePatches(
        [dataset.scenes[i] for i in indices],
        dataset.patch_size,
        dataset.num_patches,
        positive_share=dataset.positive_share,
    )
    patches.scene_indices = indices  # type: ignore[attr-defined]
    return patches
