"""TorchGeo datamodules of torchgeo-specdm."""

from .segmunich import SegMunichDataModule
from .simulated import SimulatedChangeDataModule, SimulatedSegmentationDataModule

__all__ = (
    'SegMunichDataModule',
    'SimulatedChangeDataModule',
    'SimulatedSegmentationDataModule',
)
