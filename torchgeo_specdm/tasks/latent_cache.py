"""Encode a training set once and train the diffusion model on the cached latents."""

from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..datamodules.utils import sample_loader
from ..generation.conditions import class_fractions
from ..types import Sample


def random_dihedral(batch: Sample) -> Sample:
    """Flip and rotate each sample's latents by one of the 8 square symmetries.

    The autoencoders are convolutional, so a flipped or rotated image encodes to
    (nearly) the flipped or rotated latent: this is the latent-space form of the
    datamodules' flip and rot90 augmentation.

    Args:
        batch: ``{'latent_mean': [B, C, h, w], 'latent_std': [B, C, h, w]}``.

    Returns:
        the batch with both tensors moved alike.
    """
    out = dict(batch)
    size = batch['latent_mean'].shape[0]
    turns = torch.randint(0, 4, (size,)).tolist()
    flips = torch.randint(0, 2, (size,)).tolist()
    for key in ('latent_mean', 'latent_std'):
        tensors = []
        for tensor, k, flip in zip(batch[key], turns, flips):
            tensor = torch.rot90(tensor, k, dims=(-2, -1))
            tensors.append(tensor.flip(-1) if flip else tensor)
        out[key] = torch.stack(tensors)
    return out


def _unchanged(batch: Sample) -> Sample:
    """Return a batch of cached posteriors as it is."""
    return batch


def _train_loader(datamodule: LightningDataModule) -> DataLoader[Sample]:
    """A loader over a datamodule's training set, unshuffled where it can be.

    NonGeoDataModules are read in order; GeoDataModules through their training
    sampler (one epoch of its patches), as they serve them.

    Args:
        datamodule: the datamodule, after ``setup('fit')``.

    Returns:
        the loader.
    """
    return sample_loader(
        datamodule, 'train', num_workers=getattr(datamodule, 'num_workers', 0)
    )


class LatentCache(Dataset[Sample]):
    """Scaled joint-latent posteriors (mean and std) of a whole training set.

    Each entry also holds its mask's class fractions, from which conditional
    models compute their conditions.

    .. versionadded:: 0.1
    """

    def __init__(self, mean: Tensor, std: Tensor, fractions: Tensor) -> None:
        """Initialize a new LatentCache instance.

        Args:
            mean: scaled posterior means, [N, C, h, w].
            std: scaled posterior standard deviations, [N, C, h, w].
            fractions: class fractions of each mask, [N, K].
        """
        self.mean = mean
        self.std = std
        self.fractions = fractions

    def __len__(self) -> int:
        """Return the number of cached latents.

        Returns:
            length of the cache
        """
        return len(self.mean)

    def __getitem__(self, index: int) -> Sample:
        """Return one cached posterior.

        Args:
            index: index to return

        Returns:
            its mean and standard deviation, and its mask's class fractions
        """
        return {
            'latent_mean': self.mean[index],
            'latent_std': self.std[index],
            'class_fractions': self.fractions[index],
        }

    @staticmethod
    def sample(batch: Sample) -> Tensor:
        """Draw one latent per cached posterior.

        Args:
            batch: a batch of cached posteriors.

        Returns:
            the latents.
        """
        mean = batch['latent_mean']
        return mean + batch['latent_std'] * torch.randn_like(mean)

    @classmethod
    @torch.no_grad()
    def build(
        cls,
        vae: Any,
        datamodule: LightningDataModule,
        passes: int = 1,
        augment: bool = False,
    ) -> 'LatentCache':
        """Encode the datamodule's training set.

        Args:
            vae: a trained :class:`~torchgeo_specdm.tasks.TwoStreamVAE`.
            datamodule: the datamodule, after ``setup('fit')``.
            passes: passes over the training set (more for datasets that crop at
                random, such as OSCD's one crop per city, or with ``augment``).
            augment: encode each pass through the datamodule's training
                augmentation (random flips and rotations in pixel space) instead
                of its normalisation alone.

        Returns:
            the cache.
        """
        loader = _train_loader(datamodule)
        normalise = (
            datamodule.train_aug  # type: ignore[attr-defined]
            if augment
            else datamodule.aug  # type: ignore[attr-defined]
        )
        autoencoder = vae.autoencoder
        device = vae.device
        means, stds, fractions = [], [], []
        progress = tqdm(total=passes * len(loader), desc='caching latents', leave=False)
        for _ in range(passes):
            for batch in loader:
                batch = normalise(
                    {
                        k: v.to(device)
                        for k, v in batch.items()
                        if k in ('image', 'mask')
                    }
                )
                fractions.append(
                    class_fractions(batch['mask'], autoencoder.num_classes).cpu()
                )
                posteriors = autoencoder.encode(batch['image'], batch['mask'])
                factors = autoencoder.get_scale_factors()
                means.append(
                    autoencoder.join({k: p.mean for k, p in posteriors.items()}).cpu()
                )
                stds.append(
                    torch.cat(
                        [p.std * factors[k] for k, p in posteriors.items()], dim=1
                    ).cpu()
                )
                progress.update()
        progress.close()
        return cls(torch.cat(means), torch.cat(stds), torch.cat(fractions))

    @staticmethod
    @torch.no_grad()
    def mask_fractions(datamodule: LightningDataModule, num_classes: int) -> Tensor:
        """Class fractions of every training mask, without encoding anything.

        Args:
            datamodule: the datamodule, after ``setup('fit')``.
            num_classes: number of mask classes.

        Returns:
            [N, K] class fractions.
        """
        fractions = [
            class_fractions(batch['mask'], num_classes)
            for batch in tqdm(
                _train_loader(datamodule), desc='reading masks', leave=False
            )
        ]
        return torch.cat(fractions)

    def install(self, datamodule: LightningDataModule, dihedral: bool = True) -> None:
        """Make the datamodule's training loader yield this cache.

        The training dataloader then serves cached posteriors, augmented by
        :func:`random_dihedral` after transfer (or left as they are); validation
        and test stay as they are.

        Args:
            datamodule: the datamodule of the running fit.
            dihedral: flip and rotate the latents of every training batch.
        """
        batch_size = min(datamodule.batch_size, len(self))  # type: ignore[attr-defined]

        def train_dataloader() -> DataLoader[Sample]:
            return DataLoader(self, batch_size=batch_size, shuffle=True, drop_last=True)

        datamodule.train_dataloader = train_dataloader  # type: ignore[method-assign]
        datamodule.train_aug = (  # type: ignore[attr-defined]
            random_dihedral if dihedral else _unchanged
        )
