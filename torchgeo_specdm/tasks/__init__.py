"""TorchGeo trainer tasks of torchgeo-specdm."""

from .diffusion import LatentDiffusion
from .vae import TwoStreamVAE

__all__ = ('LatentDiffusion', 'TwoStreamVAE')
