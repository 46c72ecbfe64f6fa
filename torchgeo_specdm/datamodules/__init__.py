"""TorchGeo datamodules of torchgeo-specdm."""

from .mixing import SyntheticMixDataModule
from .oscd import OSCDPatchDataModule
from .segmunich import SegMunichDataModule
from .simulated import SimulatedChangeDataModule, SimulatedSegmentationDataModule

__all__ = (
    'OSCDPatchDataModule',
    'SegMunichDataModule',
    'SimulatedChangeDataModule',
    'SimulatedSegmentationDataModule',
    'SyntheticMixDataModule',
)
