"""Shared interface of the SpecDM joint image-mask autoencoders."""

import abc
import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from torch import Tensor, nn

from .autoencoder_kl import SUPPORTED_FACTORS


@dataclass
class AutoencoderOutput:
    """Output of :meth:`JointAutoencoder.forward`.

    Attributes:
        image: reconstructed image, in the layout of the input image.
        mask_logits: reconstructed mask logits of shape [B, K, H, W].
        posteriors: latent posterior of every stream, keyed by stream name.

    .. versionadded:: 0.1
    """

    image: Tensor
    mask_logits: Tensor
    posteriors: dict[str, DiagonalGaussianDistribution]


class JointAutoencoder(nn.Module, abc.ABC):
    """Base class of the autoencoders mapping (image, mask) pairs to one latent.

    A joint autoencoder has one or more named *streams* (e.g. ``'image'`` and
    ``'mask'``), each with its own latent tensor of a fixed number of channels.
    The joint latent modelled by the diffusion model is the channel-wise
    concatenation of the stream latents, in the order of :attr:`streams`, each
    multiplied by its own scale factor (see :meth:`join` and :meth:`split`).

    The scale factors are stored in the ``scale_factors`` buffer (one entry per
    stream, in the order of :attr:`streams`), so they are part of the
    ``state_dict`` and therefore of Lightning checkpoints. They are initialised to
    1 and set by :meth:`estimate_scale_factors`.

    Input conventions follow TorchGeo samples:

    * ``num_images=1``: image of shape [B, C, H, W], mask of shape [B, H, W] or
      [B, 1, H, W].
    * ``num_images=2`` (bi-temporal change detection): image of shape
      [B, 2, C, H, W], mask of shape [B, 1, H, W] or [B, H, W].

    Masks hold integer class indices in [0, K).

    .. versionadded:: 0.1
    """

    scale_factors: Tensor

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        num_images: Literal[1, 2],
        downsampling_factor: Literal[2, 4, 8],
        stream_channels: dict[str, int],
    ) -> None:
        """Initialise a new JointAutoencoder instance.

        Args:
            in_channels: number of spectral bands C of each image.
            num_classes: number of mask classes K.
            num_images: number of images (dates) per sample, 1 or 2.
            downsampling_factor: spatial downsampling factor of the latents.
            stream_channels: number of latent channels of each stream, in the
                order in which the streams are joined.

        Raises:
            ValueError: If an argument is out of range.
        """
        super().__init__()
        if in_channels < 1:
            msg = f'in_channels must be >= 1, got {in_channels}'
            raise ValueError(msg)
        if num_classes < 2:
            msg = f'num_classes must be >= 2, got {num_classes}'
            raise ValueError(msg)
        if num_images not in (1, 2):
            msg = f'num_images must be 1 or 2, got {num_images}'
            raise ValueError(msg)
        if downsampling_factor not in SUPPORTED_FACTORS:
            msg = (
                f'downsampling_factor must be one of {SUPPORTED_FACTORS}, '
                f'got {downsampling_factor}'
            )
            raise ValueError(msg)
        if not stream_channels or min(stream_channels.values()) < 1:
            msg = f'every stream needs >= 1 latent channel, got {stream_channels}'
            raise ValueError(msg)

        self.in_channels = in_channels
        self.num_classes = num_classes
        self.num_images = num_images
        self.downsampling_factor = downsampling_factor
        self.stream_channels = dict(stream_channels)
        self.register_buffer('scale_factors', torch.ones(len(stream_channels)))

    @abc.abstractmethod
    def encode(
        self, image: Tensor, mask: Tensor
    ) -> dict[str, DiagonalGaussianDistribution]:
        """Encode an (image, mask) batch into one posterior per stream.

        Args:
            image: image batch, see the class docstring for its layout.
            mask: mask batch of class indices, see the class docstring.

        Returns:
            The posterior of every stream, keyed by stream name.
        """

    @abc.abstractmethod
    def decode(self, latents: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Decode unscaled stream latents into an image and mask logits.

        Args:
            latents: unscaled latents of every stream, keyed by stream name.

        Returns:
            The image, in the input layout, and mask logits of shape [B, K, H, W].
        """

    @property
    def streams(self) -> tuple[str, ...]:
        """Names of the latent streams, in joint-latent order.

        Returns:
            The stream names.
        """
        return tuple(self.stream_channels)

    @property
    def latent_channels(self) -> int:
        """Number of channels of the joint latent.

        Returns:
            The sum of the latent channels of all streams.
        """
        return sum(self.stream_channels.values())

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """Shape of the joint latent of one sample of the given size.

        Args:
            height: image height in pixels.
            width: image width in pixels.

        Returns:
            The joint latent shape (channels, height, width), without batch.

        Raises:
            ValueError: If *height* or *width* is not divisible by the
                downsampling factor.
        """
        f = self.downsampling_factor
        if height < 1 or width < 1 or height % f or width % f:
            msg = (
                f'height and width must be positive multiples of '
                f'downsampling_factor={f}, got {height}x{width}'
            )
            raise ValueError(msg)
        return self.latent_channels, height // f, width // f

    def get_scale_factors(self) -> dict[str, float]:
        """Current latent scale factor of every stream.

        Returns:
            The scale factors, keyed by stream name.
        """
        values = self.scale_factors.tolist()
        return dict(zip(self.streams, values, strict=True))

    def set_scale_factors(self, factors: dict[str, float]) -> None:
        """Set the latent scale factor of some or all streams.

        Args:
            factors: new scale factors, keyed by stream name.

        Raises:
            ValueError: If a stream is unknown or a factor is not positive.
        """
        for name, value in factors.items():
            if name not in self.stream_channels:
                msg = f'unknown stream {name!r}, expected one of {self.streams}'
                raise ValueError(msg)
            if not (value > 0 and math.isfinite(value)):
                msg = f'scale factor of stream {name!r} must be > 0, got {value}'
                raise ValueError(msg)
        with torch.no_grad():
            for name, value in factors.items():
                self.scale_factors[self.streams.index(name)] = value

    @torch.no_grad()
    def estimate_scale_factors(self, latents: dict[str, Tensor]) -> dict[str, float]:
        """Set each stream's scale factor to 1 / std of that stream's latents.

        As in Stable Diffusion, one scalar per stream is used (the standard
        deviation over all elements, without centring), so that the scaled latents
        of every stream have unit variance and no stream dominates the diffusion
        loss. Pass *unscaled* latents of a representative batch as returned by
        :meth:`encode_latents`. We use the posterior **means**
        (``encode_latents(image, mask, sample=False)``), which is deterministic and
        matches the default of :meth:`encode_joint`; for a trained VAE the
        posterior variance is small and samples give nearly the same factors.

        Args:
            latents: unscaled latents of every stream, keyed by stream name.

        Returns:
            The new scale factors, keyed by stream name.

        Raises:
            ValueError: If a stream is missing or its latents have zero or
                non-finite standard deviation.
        """
        self._check_latents(latents)
        factors = {}
        for name in self.streams:
            std = latents[name].detach().double().std().item()
            if not (std > 0 and math.isfinite(std)):
                msg = f'latents of stream {name!r} have invalid std {std}'
                raise ValueError(msg)
            factors[name] = 1.0 / std
        self.set_scale_factors(factors)
        return self.get_scale_factors()

    def join(self, latents: dict[str, Tensor]) -> Tensor:
        """Scale and concatenate the stream latents into the joint latent.

        Args:
            latents: unscaled latents of every stream, keyed by stream name, each
                of shape [B, C_stream, h, w].

        Returns:
            The joint latent of shape [B, :attr:`latent_channels`, h, w].
        """
        self._check_latents(latents)
        parts = [
            latents[name] * self.scale_factors[i].to(latents[name].dtype)
            for i, name in enumerate(self.streams)
        ]
        return torch.cat(parts, dim=1)

    def split(self, z: Tensor) -> dict[str, Tensor]:
        """Split a joint latent into unscaled stream latents (inverse of :meth:`join`).

        Args:
            z: joint latent of shape [B, :attr:`latent_channels`, h, w].

        Returns:
            The unscaled latents of every stream, keyed by stream name.

        Raises:
            ValueError: If *z* does not have :attr:`latent_channels` channels.
        """
        if z.ndim != 4 or z.shape[1] != self.latent_channels:
            msg = (
                f'joint latent must have shape [B, {self.latent_channels}, h, w], '
                f'got {tuple(z.shape)}'
            )
            raise ValueError(msg)
        parts = torch.split(z, list(self.stream_channels.values()), dim=1)
        return {
            name: part / self.scale_factors[i].to(part.dtype)
            for i, (name, part) in enumerate(zip(self.streams, parts, strict=True))
        }

    def encode_latents(
        self, image: Tensor, mask: Tensor, sample: bool = False
    ) -> dict[str, Tensor]:
        """Encode an (image, mask) batch into unscaled stream latents.

        Args:
            image: image batch, see the class docstring for its layout.
            mask: mask batch of class indices, see the class docstring.
            sample: sample the posteriors instead of taking their means.

        Returns:
            The unscaled latents of every stream, keyed by stream name.
        """
        posteriors = self.encode(image, mask)
        return {
            name: p.sample() if sample else p.mode() for name, p in posteriors.items()
        }

    def encode_joint(self, image: Tensor, mask: Tensor, sample: bool = False) -> Tensor:
        """Encode an (image, mask) batch into the scaled joint latent.

        Args:
            image: image batch, see the class docstring for its layout.
            mask: mask batch of class indices, see the class docstring.
            sample: sample the posteriors instead of taking their means.

        Returns:
            The scaled joint latent of shape [B, :attr:`latent_channels`, h, w].
        """
        return self.join(self.encode_latents(image, mask, sample=sample))

    def decode_joint(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Decode a scaled joint latent into an image and mask logits.

        Args:
            z: scaled joint latent of shape [B, :attr:`latent_channels`, h, w].

        Returns:
            The image (layout of the input images) and mask logits [B, K, H, W].
        """
        return self.decode(self.split(z))

    def forward(
        self, image: Tensor, mask: Tensor, sample_posterior: bool = True
    ) -> AutoencoderOutput:
        """Reconstruct an (image, mask) batch, for autoencoder training.

        Args:
            image: image batch, see the class docstring for its layout.
            mask: mask batch of class indices, see the class docstring.
            sample_posterior: decode posterior samples instead of posterior means.

        Returns:
            The reconstructed image and mask logits, and the posteriors.
        """
        posteriors = self.encode(image, mask)
        latents = {
            name: p.sample() if sample_posterior else p.mode()
            for name, p in posteriors.items()
        }
        image_hat, mask_logits = self.decode(latents)
        return AutoencoderOutput(
            image=image_hat, mask_logits=mask_logits, posteriors=posteriors
        )

    def _check_latents(self, latents: dict[str, Tensor]) -> None:
        """Check that *latents* holds every stream with the right channels.

        Args:
            latents: unscaled latents of every stream, keyed by stream name.

        Raises:
            ValueError: If a stream is missing or unknown, or has the wrong shape.
        """
        if set(latents) != set(self.streams):
            msg = f'expected latents for streams {self.streams}, got {tuple(latents)}'
            raise ValueError(msg)
        spatial = None
        for name, channels in self.stream_channels.items():
            z = latents[name]
            if z.ndim != 4 or z.shape[1] != channels:
                msg = (
                    f'latent of stream {name!r} must have shape '
                    f'[B, {channels}, h, w], got {tuple(z.shape)}'
                )
                raise ValueError(msg)
            if spatial is None:
                spatial = (z.shape[0], *z.shape[2:])
            elif (z.shape[0], *z.shape[2:]) != spatial:
                msg = (
                    f'latents of all streams must share batch and spatial size, '
                    f'got { ({k: tuple(v.shape) for k, v in latents.items()}) }'
                )
                raise ValueError(msg)

    def _prepare_inputs(self, image: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Validate an (image, mask) batch and bring it to canonical layouts.

        Args:
            image: image batch, see the class docstring for its layout.
            mask: mask batch of class indices, see the class docstring.

        Returns:
            The image as a float tensor of shape [B, T, C, H, W] and the mask as a
            long tensor of shape [B, H, W].

        Raises:
            ValueError: If the shapes, band count or mask values are invalid.
        """
        t, c, f = self.num_images, self.in_channels, self.downsampling_factor
        shape = tuple(image.shape)
        if t == 1:
            expected = f'[B, {c}, H, W]'
            valid = image.ndim == 4
            image = image.unsqueeze(1)
        else:
            expected = f'[B, {t}, {c}, H, W]'
            valid = image.ndim == 5 and image.shape[1] == t
        if not valid:
            msg = f'image must have shape {expected}, got {shape}'
            raise ValueError(msg)
        if image.shape[2] != c:
            msg = (
                f'image must have in_channels={c} bands, got {image.shape[2]} '
                f'(expected shape {expected}, got {shape})'
            )
            raise ValueError(msg)
        b, h, w = image.shape[0], image.shape[-2], image.shape[-1]
        if h % f or w % f:
            msg = (
                f'image height and width must be divisible by downsampling_factor='
                f'{f}, got image of shape {shape}'
            )
            raise ValueError(msg)

        if mask.ndim == 4 and mask.shape[1] == 1:
            mask = mask[:, 0]
        if mask.ndim != 3 or tuple(mask.shape) != (b, h, w):
            msg = (
                f'mask must have shape [{b}, {h}, {w}] or [{b}, 1, {h}, {w}] to '
                f'match the image, got {tuple(mask.shape)}'
            )
            raise ValueError(msg)
        if mask.is_floating_point() and not torch.equal(mask, mask.round()):
            msg = 'mask must hold integer class indices, got fractional values'
            raise ValueError(msg)
        mask = mask.long()
        low, high = torch.aminmax(mask)
        if low < 0 or high >= self.num_classes:
            msg = (
                f'mask values must be in [0, num_classes={self.num_classes}), '
                f'got values in [{int(low)}, {int(high)}]'
            )
            raise ValueError(msg)

        if not image.is_floating_point():
            image = image.float()
        return image, mask

    def _one_hot(self, mask: Tensor, dtype: torch.dtype) -> Tensor:
        """One-hot encode a mask of class indices.

        Args:
            mask: long tensor of shape [B, H, W] with values in [0, K).
            dtype: floating point dtype of the result.

        Returns:
            The one-hot mask of shape [B, K, H, W].
        """
        return F.one_hot(mask, self.num_classes).permute(0, 3, 1, 2).to(dtype)

    def _to_input_layout(self, image: Tensor) -> Tensor:
        """Bring a canonical [B, T, C, H, W] image back to the input layout.

        Args:
            image: image of shape [B, T, C, H, W].

        Returns:
            [B, C, H, W] when ``num_images=1``, else the unchanged image.
        """
        return image[:, 0] if self.num_images == 1 else image
