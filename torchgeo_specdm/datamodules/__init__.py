"""TorchGeo datamodules of torchgeo-specdm."""

from .hyperspectral import (
    HyperspectralSceneDataModule,
    IndianPinesDataModule,
    PaviaUDataModule,
    SalinasADataModule,
)
from .mixing import SyntheticMixDataModule
from .oscd import OSCDPatchDataModule
from .segmunich import SegMunichDataModule
from .simulated import SimulatedChangeDataModule, SimulatedSegmentationDataModule

__all__ = (
    'HyperspectralSceneDataModule',
    'IndianPinesDataModule',
    'OSCDPatchDataModule',
    'PaviaUDataModule',
    'SalinasADataModule',
    'SegMunichDataModule',
    'SimulatedChangeDataModule',
    'SimulatedSegmentationDataModule',
    'SyntheticMixDataModule',
)
