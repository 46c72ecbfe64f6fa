"""Two-stream (image and mask) KL autoencoder of SpecDM."""

from typing import Literal

import torch
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from torch import Tensor

from .autoencoder_kl import build_autoencoder, decode_latents, encode_posterior
from .base import JointAutoencoder


class TwoStreamAutoencoder(JointAutoencoder):
    """SpecDM two-stream autoencoder: separate KL autoencoders for image and mask.

    The *image stream* is a :class:`~diffusers.AutoencoderKL` with C input and
    output channels. For bi-temporal change detection (``num_images=2``) both
    dates go through the same image stream (shared weights, time folded into the
    batch) and their latents are concatenated along channels, date 1 first, so
    the ``'image'`` stream has ``2 * image_latent_channels`` channels.

    The *mask stream* is a second, smaller :class:`~diffusers.AutoencoderKL`
    whose input is the **one-hot** mask (K channels) and whose output is K class
    logits, trained with cross-entropy. One-hot is preferred over analog bits
    (``ceil(log2 K)`` channels in {-1, 1}): with the K logits a decoded mask is a
    plain argmax, every class is equidistant from the others (analog bits put
    classes sharing bits closer together, an arbitrary bias), and the extra input
    channels are negligible next to the spectral bands since the mask stream
    compresses them into ``mask_latent_channels`` anyway.

    The joint latent is ``[z_x, z_y]`` (``num_images=1``) or
    ``[z_x1, z_x2, z_y]`` (``num_images=2``), each stream multiplied by its
    scale factor; see :class:`~torchgeo_specdm.models.JointAutoencoder`.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        num_images: Literal[1, 2] = 1,
        image_latent_channels: int = 4,
        mask_latent_channels: int = 2,
        downsampling_factor: Literal[2, 4, 8] = 4,
        base_channels: int = 32,
        mask_base_channels: int = 16,
        layers_per_block: int = 1,
    ) -> None:
        """Initialise a new TwoStreamAutoencoder instance.

        Args:
            in_channels: number of spectral bands C of each image.
            num_classes: number of mask classes K (at least 2).
            num_images: number of images (dates) per sample, 1 or 2.
            image_latent_channels: latent channels of one image (per date).
            mask_latent_channels: latent channels of the mask.
            downsampling_factor: spatial downsampling factor of both streams.
            base_channels: width of the first block of the image stream.
            mask_base_channels: width of the first block of the mask stream.
            layers_per_block: number of ResNet layers per block of both streams.

        Raises:
            ValueError: If an argument is out of range.
        """
        super().__init__(
            in_channels=in_channels,
            num_classes=num_classes,
            num_images=num_images,
            downsampling_factor=downsampling_factor,
            stream_channels={
                'image': num_images * image_latent_channels,
                'mask': mask_latent_channels,
            },
        )
        self.image_latent_channels = image_latent_channels
        self.mask_latent_channels = mask_latent_channels
        self.image_autoencoder = build_autoencoder(
            in_channels=in_channels,
            out_channels=in_channels,
            latent_channels=image_latent_channels,
            downsampling_factor=downsampling_factor,
            base_channels=base_channels,
            layers_per_block=layers_per_block,
        )
        self.mask_autoencoder = build_autoencoder(
            in_channels=num_classes,
            out_channels=num_classes,
            latent_channels=mask_latent_channels,
            downsampling_factor=downsampling_factor,
            base_channels=mask_base_channels,
            layers_per_block=layers_per_block,
        )

    def encode(
        self, image: Tensor, mask: Tensor
    ) -> dict[str, DiagonalGaussianDistribution]:
        """Encode an (image, mask) batch into the image and mask posteriors.

        Args:
            image: image of shape [B, C, H, W] (``num_images=1``) or
                [B, 2, C, H, W] (``num_images=2``).
            mask: mask of class indices of shape [B, H, W] or [B, 1, H, W].

        Returns:
            Posteriors ``'image'`` over [B, T * Cz, h, w] (dates concatenated
            along channels, date 1 first) and ``'mask'`` over [B, Cm, h, w].
        """
        image, mask = self._prepare_inputs(image, mask)
        b, t = image.shape[:2]
        image_posterior = encode_posterior(self.image_autoencoder, image.flatten(0, 1))
        if t > 1:
            # [B * T, 2 * Cz, h, w] (mean, logvar) -> [B, 2 * T * Cz, h, w]
            mean, logvar = image_posterior.parameters.unflatten(0, (b, t)).chunk(
                2, dim=2
            )
            parameters = torch.cat([mean.flatten(1, 2), logvar.flatten(1, 2)], dim=1)
            image_posterior = DiagonalGaussianDistribution(parameters)
        mask_posterior = encode_posterior(
            self.mask_autoencoder, self._one_hot(mask, image.dtype)
        )
        return {'image': image_posterior, 'mask': mask_posterior}

    def decode(self, latents: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Decode unscaled image and mask latents.

        Args:
            latents: unscaled latents ``'image'`` of shape [B, T * Cz, h, w] and
                ``'mask'`` of shape [B, Cm, h, w].

        Returns:
            The image, of shape [B, C, H, W] (``num_images=1``) or
            [B, 2, C, H, W] (``num_images=2``), and mask logits [B, K, H, W].
        """
        self._check_latents(latents)
        z_image = latents['image'].unflatten(
            1, (self.num_images, self.image_latent_channels)
        )
        b = z_image.shape[0]
        image = decode_latents(self.image_autoencoder, z_image.flatten(0, 1))
        image = self._to_input_layout(image.unflatten(0, (b, self.num_images)))
        mask_logits = decode_latents(self.mask_autoencoder, latents['mask'])
        return image, mask_logits
