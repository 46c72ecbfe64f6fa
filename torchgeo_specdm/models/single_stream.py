"""Single-stream KL autoencoder of the SpecDM LDM baseline."""

from typing import Literal

import torch
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from torch import Tensor

from .autoencoder_kl import build_autoencoder, decode_latents, encode_posterior
from .base import JointAutoencoder


class SingleStreamAutoencoder(JointAutoencoder):
    """Single-stream LDM baseline: one KL autoencoder over image and mask.

    The bands of every image (date 1 first for change detection) and the one-hot
    mask are stacked as ``T * C + K`` channels and encoded by a single
    :class:`~diffusers.AutoencoderKL` with as many output channels. The first
    ``T * C`` output channels are the reconstructed image and the last K are the
    mask logits. The only stream is called ``'joint'``.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        num_images: Literal[1, 2] = 1,
        latent_channels: int = 6,
        downsampling_factor: Literal[2, 4, 8] = 4,
        base_channels: int = 32,
        layers_per_block: int = 1,
    ) -> None:
        """Initialise a new SingleStreamAutoencoder instance.

        Args:
            in_channels: number of spectral bands C of each image.
            num_classes: number of mask classes K (at least 2).
            num_images: number of images (dates) per sample, 1 or 2.
            latent_channels: number of latent channels.
            downsampling_factor: spatial downsampling factor of the latents.
            base_channels: width of the first block of the autoencoder.
            layers_per_block: number of ResNet layers per block.

        Raises:
            ValueError: If an argument is out of range.
        """
        super().__init__(
            in_channels=in_channels,
            num_classes=num_classes,
            num_images=num_images,
            downsampling_factor=downsampling_factor,
            stream_channels={'joint': latent_channels},
        )
        channels = num_images * in_channels + num_classes
        self.autoencoder = build_autoencoder(
            in_channels=channels,
            out_channels=channels,
            latent_channels=latent_channels,
            downsampling_factor=downsampling_factor,
            base_channels=base_channels,
            layers_per_block=layers_per_block,
        )

    def encode(
        self, image: Tensor, mask: Tensor
    ) -> dict[str, DiagonalGaussianDistribution]:
        """Encode an (image, mask) batch into the joint posterior.

        Args:
            image: image of shape [B, C, H, W] (``num_images=1``) or
                [B, 2, C, H, W] (``num_images=2``).
            mask: mask of class indices of shape [B, H, W] or [B, 1, H, W].

        Returns:
            The posterior ``'joint'`` over [B, latent_channels, h, w].
        """
        image, mask = self._prepare_inputs(image, mask)
        x = torch.cat([image.flatten(1, 2), self._one_hot(mask, image.dtype)], dim=1)
        return {'joint': encode_posterior(self.autoencoder, x)}

    def decode(self, latents: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Decode the unscaled joint latent and split its output channels.

        Args:
            latents: unscaled latent ``'joint'`` of shape [B, latent_channels, h, w].

        Returns:
            The image, of shape [B, C, H, W] (``num_images=1``) or
            [B, 2, C, H, W] (``num_images=2``), and mask logits [B, K, H, W].
        """
        self._check_latents(latents)
        output = decode_latents(self.autoencoder, latents['joint'])
        num_bands = self.num_images * self.in_channels
        image = output[:, :num_bands].unflatten(1, (self.num_images, self.in_channels))
        return self._to_input_layout(image), output[:, num_bands:]
