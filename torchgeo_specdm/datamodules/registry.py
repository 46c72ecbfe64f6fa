"""Datamodules by the short names the ``specdm`` commands take."""

from typing import Any, Literal

from torchgeo.datamodules import NonGeoDataModule

from ..datasets.validation import InvalidInputError
from .hyperspectral import SalinasADataModule
from .oscd import OSCDPatchDataModule
from .segmunich import SegMunichDataModule
from .simulated import SimulatedChangeDataModule, SimulatedSegmentationDataModule

DatasetName = Literal[
    'simulated-segmentation', 'simulated-change', 'oscd', 'segmunich', 'salinas-a'
]
DATASET_NAMES: tuple[str, ...] = (
    'simulated-segmentation',
    'simulated-change',
    'oscd',
    'segmunich',
    'salinas-a',
)


def build_datamodule(
    name: str, root: str | None = None, **kwargs: Any
) -> NonGeoDataModule:
    """The datamodule of a dataset family.

    Args:
        name: one of :data:`DATASET_NAMES`.
        root: dataset root, required for the real datasets.
        **kwargs: keyword arguments of the datamodule (batch size, sizes, ...).

    Returns:
        the datamodule.

    Raises:
        InvalidInputError: for an unknown name or a missing root.
    """
    if name == 'simulated-segmentation':
        return SimulatedSegmentationDataModule(**kwargs)
    if name == 'simulated-change':
        return SimulatedChangeDataModule(**kwargs)
    if name not in DATASET_NAMES:
        raise InvalidInputError(
            f'--dataset {name}: unknown; choose one of {", ".join(DATASET_NAMES)}.'
        )
    if root is None:
        raise InvalidInputError(
            f'--dataset {name} reads real data: pass its folder with --root.'
        )
    if name == 'oscd':
        return OSCDPatchDataModule(root=root, **kwargs)
    if name == 'salinas-a':
        return SalinasADataModule(root=root, **kwargs)
    return SegMunichDataModule(root=root, **kwargs)
