"""SpecDM autoencoders mapping (image, mask) pairs to diffusion latents."""

from .autoencoder_kl import build_autoencoder
from .base import AutoencoderOutput, JointAutoencoder
from .single_stream import SingleStreamAutoencoder
from .two_stream import TwoStreamAutoencoder

__all__ = (
    'AutoencoderOutput',
    'JointAutoencoder',
    'SingleStreamAutoencoder',
    'TwoStreamAutoencoder',
    'build_autoencoder',
)
