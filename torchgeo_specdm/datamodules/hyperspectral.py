"""Datamodules over labelled hyperspectral scenes split into spatial blocks."""

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor
from torchgeo.datamodules import NonGeoDataModule

from ..datasets import HyperspectralScene, IndianPines, PaviaU, SalinasA
from ..datasets.validation import InvalidInputError
from .transforms import segmentation_augmentation
from .utils import pixel_statistics


class HyperspectralSceneDataModule(NonGeoDataModule):
    """Shared set-up of the hyperspectral scene datamodules.

    The scene is split into disjoint parts (``split_method``: three blocks, or
    grid blocks assigned so every part holds every class; see
    :class:`~torchgeo_specdm.datasets.HyperspectralScene`). Training draws
    ``patches_per_epoch`` seeded random crops from the train part; validation and
    test tile their parts with a grid of step ``eval_stride``. Each band is
    normalised with the mean and standard deviation of every pixel of the train
    part (the values are radiance, some of them negative, so there is no fixed
    scale to divide by). Training batches also get random flips and 90 degree
    rotations, on the device, after normalisation.

    Unlabelled pixels are class 0, :attr:`ignore_index`. Downstream segmentation
    losses should ignore them (``ignore_index=0``), while the SpecDM mask stream
    models them as an ordinary class, so generated masks contain unlabelled pixels
    in realistic places.

    With ``label_fraction`` below 1, only a seeded random share of the train
    part's labelled pixels keeps its label (the limited-label setting); the
    others become unlabelled. Validation and test parts keep every label.

    .. versionadded:: 0.1
    """

    dataset_class: type[HyperspectralScene]
    #: Mask value of unlabelled pixels, for the ``ignore_index`` of downstream losses.
    ignore_index = 0

    def __init__(
        self,
        batch_size: int = 16,
        patch_size: int = 16,
        patches_per_epoch: int = 512,
        eval_stride: int | None = 8,
        split_fractions: Sequence[float] = (0.6, 0.2, 0.2),
        split_axis: Literal['width', 'height'] = 'width',
        split_method: Literal['blocks', 'stratified_blocks'] = 'blocks',
        block_grid: Sequence[int] = (5, 5),
        seed: int = 0,
        label_fraction: float = 1.0,
        bands: Sequence[str] | None = None,
        num_workers: int = 0,
        **kwargs: Any,
    ) -> None:
        """Initialize a new HyperspectralSceneDataModule instance.

        Args:
            batch_size: size of each mini-batch.
            patch_size: side of each square patch in pixels.
            patches_per_epoch: random training patches per epoch.
            eval_stride: step of the validation and test grids in pixels
                (``None``: ``patch_size``, no overlap).
            split_fractions: shares of the scene given to the train, val and test
                parts.
            split_axis: with ``'blocks'``, 'width' puts the blocks side by side,
                'height' stacks them.
            split_method: 'blocks' (three blocks along ``split_axis``) or
                'stratified_blocks' (a grid of ``block_grid`` blocks, each given
                whole to one part so that every part holds every class where the
                blocks allow it).
            block_grid: rows and columns of blocks of ``'stratified_blocks'``.
            seed: seed of the training crops (the same crops every epoch; the
                flips and rotations still vary) and of the labels that
                ``label_fraction`` keeps.
            label_fraction: share of the train part's labelled pixels (mask not
                0) that keep their label, in (0, 1]. The kept pixels are a random
                subset drawn from ``seed`` on every ``setup('fit')``, the same for
                the same seed; the others become 0 (unlabelled). Patches cut from
                the part, overlapping ones included, see the same kept pixels.
                Validation and test parts keep all labels. ``seed`` never changes
                which blocks form which part.
            bands: bands to load (default: all of the dataset's bands).
            num_workers: number of workers for parallel data loading.
            **kwargs: additional keyword arguments passed to the dataset
                (``root`` among them).

        Raises:
            InvalidInputError: if ``label_fraction`` is not in (0, 1].
        """
        if not 0 < label_fraction <= 1:
            raise InvalidInputError(
                f'label_fraction={label_fraction}: give the share of labelled '
                'train pixels that keep their label, greater than 0 and at most 1 '
                '(e.g. 0.1 keeps 10 %; 1 keeps every label).'
            )
        all_bands = self.dataset_class.all_bands
        self.bands = all_bands if bands is None else tuple(bands)
        super().__init__(
            self.dataset_class,
            batch_size,
            num_workers,
            bands=self.bands,
            patch_size=patch_size,
            split_fractions=tuple(split_fractions),
            split_axis=split_axis,
            split_method=split_method,
            block_grid=tuple(block_grid),
            **kwargs,
        )
        self.patch_size = patch_size
        self.patches_per_epoch = patches_per_epoch
        self.eval_stride = eval_stride
        self.seed = seed
        self.label_fraction = label_fraction
        self.class_names = self.dataset_class.classes
        self.num_classes = len(self.class_names)
        wavelengths = self.dataset_class.wavelengths
        self.wavelengths = tuple(wavelengths[all_bands.index(b)] for b in self.bands)
        train_block = self.dataset_class(split='train', **self.kwargs)
        self.mean, self.std = pixel_statistics(train_block.image[:, train_block.region])
        self.train_aug = segmentation_augmentation(self.mean, self.std, train=True)
        self.aug = segmentation_augmentation(self.mean, self.std, train=False)

    def setup(self, stage: str) -> None:
        """Set up datasets.

        Args:
            stage: Either 'fit', 'validate', 'test', or 'predict'.
        """
        if stage in ['fit']:
            train = self.dataset_class(
                split='train',
                num_patches=self.patches_per_epoch,
                seed=self.seed,
                **self.kwargs,
            )
            if self.label_fraction < 1:
                # The patches view this part, so overlapping ones agree; pixels
                # of other parts are 0 in its mask, so they are never counted.
                keep_labels(train.mask, self.label_fraction, self.seed)
            self.train_dataset = train
        if stage in ['fit', 'validate']:
            self.val_dataset = self.dataset_class(
                split='val', stride=self.eval_stride, **self.kwargs
            )
        if stage in ['test', 'predict']:
            test = self.dataset_class(
                split='test', stride=self.eval_stride, **self.kwargs
            )
            self.test_dataset = self.predict_dataset = test


def keep_labels(mask: Tensor, fraction: float, seed: int) -> None:
    """Unlabel all but a seeded random share of a mask's labelled pixels, in place.

    Args:
        mask: class indices, [H, W]; 0 is unlabelled.
        fraction: share of the labelled (non-zero) pixels that keep their label;
            ``round(fraction * labelled)`` pixels, at least one, are kept.
        seed: seed of the choice; the same seed keeps the same pixels.
    """
    labelled = mask.nonzero()
    if len(labelled) == 0:
        return
    keep = max(1, round(fraction * len(labelled)))
    generator = torch.Generator().manual_seed(seed)
    dropped = labelled[torch.randperm(len(labelled), generator=generator)[keep:]]
    mask[dropped[:, 0], dropped[:, 1]] = 0


class SalinasADataModule(HyperspectralSceneDataModule):
    """LightningDataModule for the :class:`~torchgeo_specdm.datasets.SalinasA` scene.

    The defaults fit the small 83 x 86 px scene: 16 px patches, column blocks 52,
    17 and 17 px wide (train, val, test), 512 training crops per epoch and
    validation and test grids of step 8 (9 patches each). The column blocks leave
    Brocoli_green_weeds_1 out of val and test and Lettuce_romaine_4wk out of test;
    they stay the default so that earlier results can be reproduced.

    ``split_method='stratified_blocks'`` (the demo's and the downstream
    benchmark's split, see :data:`~torchgeo_specdm.datamodules.registry.DEMO_DATA`)
    cuts the scene into 5 x 5 blocks of 16-18 px and gives 15 to train, 5 to val
    and 5 to test (``T`` train, ``V`` val, ``X`` test; rows top to bottom)::

        T X T T V
        V T T T T
        X T V T T
        T X V T T
        T X T V X

    Pixels per class in each part (test and val grids of step 8 cover every
    pixel of their parts in 18 and 16 patches):

    =====  ==========  ======  ====  ========  ========  ========  ========
    part   unlabelled  Brocol  Corn  Lett 4wk  Lett 5wk  Lett 6wk  Lett 7wk
    =====  ==========  ======  ====  ========  ========  ========  ========
    train  918         268     805   397       988       416       474
    val    356         19      293   137       331       141       167
    test   516         104     245   82        206       117       158
    =====  ==========  ======  ====  ========  ========  ========  ========

    Brocoli_green_weeds_1 fills only the top left corner, three blocks, so val
    gets just 19 of its pixels.

    .. versionadded:: 0.1
    """

    dataset_class = SalinasA


class IndianPinesDataModule(HyperspectralSceneDataModule):
    """LightningDataModule for the :class:`~torchgeo_specdm.datasets.IndianPines` scene.

    .. versionadded:: 0.1
    """

    dataset_class = IndianPines


class PaviaUDataModule(HyperspectralSceneDataModule):
    """LightningDataModule for the :class:`~torchgeo_specdm.datasets.PaviaU` scene.

    .. versionadded:: 0.1
    """

    dataset_class = PaviaU
