"""TorchGeo datamodules of torchgeo-specdm."""

from .hyperspectral import (
    HyperspectralSceneDataModule,
    IndianPinesDataModule,
    PaviaUDataModule,
    SalinasADataModule,
)
from .mixing import SyntheticMixDataModule
from .oscd import OSCDPatchDataModule
from .raster import ImageRasters, MaskRasters, RasterMaskDataModule
from .segmunich import SegMunichDataModule
from .simulated import SimulatedChangeDataModule, SimulatedSegmentationDataModule

__all__ = (
    'HyperspectralSceneDataModule',
    'ImageRasters',
    'IndianPinesDataModule',
    'MaskRasters',
    'OSCDPatchDataModule',
    'PaviaUDataModule',
    'RasterMaskDataModule',
    'SalinasADataModule',
    'SegMunichDataModule',
    'SimulatedChangeDataModule',
    'SimulatedSegmentationDataModule',
    'SyntheticMixDataModule',
)
