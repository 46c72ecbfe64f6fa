"""torchgeo-specdm: labelled multispectral and hyperspectral dataset synthesis for TorchGeo."""

__version__ = '0.1.0'
