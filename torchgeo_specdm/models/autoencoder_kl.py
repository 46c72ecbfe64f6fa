"""Factory for the diffusers KL autoencoders used by the SpecDM streams."""

import math
from typing import Literal

from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.models.autoencoders.vae import (
    DecoderOutput,
    DiagonalGaussianDistribution,
)
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from torch import Tensor

#: Downsampling factors supported by :func:`build_autoencoder`.
SUPPORTED_FACTORS: tuple[int, ...] = (2, 4, 8)

#: Upper bound on the number of GroupNorm groups (the Stable Diffusion default).
MAX_NORM_GROUPS = 32


def norm_groups(base_channels: int) -> int:
    """Number of GroupNorm groups for an autoencoder of the given base width.

    Every block width of :func:`build_autoencoder` is a multiple of
    *base_channels*, so the largest divisor of *base_channels* that is at most
    32 divides every block width (32 for the usual widths 32, 64, 128, ...).

    Args:
        base_channels: width of the first encoder block.

    Returns:
        The number of groups, between 1 and 32.

    Raises:
        ValueError: If *base_channels* is smaller than 1.
    """
    if base_channels < 1:
        msg = f'base_channels must be >= 1, got {base_channels}'
        raise ValueError(msg)
    for groups in range(min(MAX_NORM_GROUPS, base_channels), 0, -1):
        if base_channels % groups == 0:
            return groups
    return 1  # pragma: no cover (groups=1 always divides)


def build_autoencoder(
    in_channels: int,
    out_channels: int,
    latent_channels: int,
    downsampling_factor: Literal[2, 4, 8] = 4,
    base_channels: int = 32,
    layers_per_block: int = 1,
) -> AutoencoderKL:
    """Build a diffusers :class:`~diffusers.AutoencoderKL` for any band count.

    The encoder has ``log2(downsampling_factor) + 1`` blocks (the last block does
    not downsample) of widths ``base_channels * (1, 2, 4, 4, ...)``; the decoder
    mirrors it. GroupNorm uses :func:`norm_groups` groups so that it divides every
    block width. The diffusers ``scaling_factor`` is left at 1: latent scaling is
    done by :class:`~torchgeo_specdm.models.JointAutoencoder`.

    Args:
        in_channels: number of input channels.
        out_channels: number of output channels.
        latent_channels: number of latent channels.
        downsampling_factor: spatial downsampling factor between input and latent.
        base_channels: width of the first encoder block.
        layers_per_block: number of ResNet layers per block.

    Returns:
        A freshly initialised autoencoder.

    Raises:
        ValueError: If an argument is out of range.
    """
    for name, value in (
        ('in_channels', in_channels),
        ('out_channels', out_channels),
        ('latent_channels', latent_channels),
        ('base_channels', base_channels),
        ('layers_per_block', layers_per_block),
    ):
        if value < 1:
            msg = f'{name} must be >= 1, got {value}'
            raise ValueError(msg)
    if downsampling_factor not in SUPPORTED_FACTORS:
        msg = (
            f'downsampling_factor must be one of {SUPPORTED_FACTORS}, '
            f'got {downsampling_factor}'
        )
        raise ValueError(msg)

    num_blocks = int(math.log2(downsampling_factor)) + 1
    multipliers = (1, 2, *([4] * (num_blocks - 2)))[:num_blocks]
    block_out_channels = tuple(base_channels * m for m in multipliers)
    return AutoencoderKL(
        in_channels=in_channels,
        out_channels=out_channels,
        down_block_types=('DownEncoderBlock2D',) * num_blocks,
        up_block_types=('UpDecoderBlock2D',) * num_blocks,
        block_out_channels=block_out_channels,
        layers_per_block=layers_per_block,
        latent_channels=latent_channels,
        norm_num_groups=norm_groups(base_channels),
        scaling_factor=1.0,
    )


def encode_posterior(
    autoencoder: AutoencoderKL, x: Tensor
) -> DiagonalGaussianDistribution:
    """Encode *x* with a diffusers autoencoder into its latent posterior.

    Args:
        autoencoder: the autoencoder.
        x: input of shape [B, C, H, W].

    Returns:
        The diagonal Gaussian posterior over latents of shape [B, Cz, h, w].
    """
    output = autoencoder.encode(x)
    assert isinstance(output, AutoencoderKLOutput)
    posterior: DiagonalGaussianDistribution = output.latent_dist
    return posterior


def decode_latents(autoencoder: AutoencoderKL, z: Tensor) -> Tensor:
    """Decode latents with a diffusers autoencoder.

    Args:
        autoencoder: the autoencoder.
        z: latents of shape [B, Cz, h, w].

    Returns:
        The decoded tensor of shape [B, C, H, W].
    """
    output = autoencoder.decode(z)
    assert isinstance(output, DecoderOutput)
    sample: Tensor = output.sample
    return sample
