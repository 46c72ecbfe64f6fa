"""Two-stream VAE task: stage 1 of SpecDM."""

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import Tensor
from torchgeo.tasks import BaseTask
from torchmetrics import MeanMetric, MeanSquaredError, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex
from torchmetrics.functional.image import peak_signal_noise_ratio
from torchmetrics.image import SpectralAngleMapper

from ..datasets.validation import InvalidInputError
from ..models import JointAutoencoder, SingleStreamAutoencoder, TwoStreamAutoencoder
from ..types import Path, Sample
from .checkpoints import own_hyperparameters, read_checkpoint
from .losses import spectral_angle_loss
from .utils import (
    check_data_spec,
    infer_data_spec,
    log_figure,
    plateau_optimizer,
    plot_reconstructions,
    resolve_data_spec,
)


class TwoStreamVAE(BaseTask):
    """Two-stream VAE: compress images and their masks into diffusion latents.

    The image stream is a KL autoencoder over the C bands (each date of a change
    pair goes through it with shared weights); the mask stream is a KL autoencoder
    over the one-hot mask that returns K logits. With ``architecture='single_stream'``
    one autoencoder encodes ``[bands, one-hot mask]`` stacked as channels: the
    paper's single-stream LDM baseline.

    Band count, class count, dates and normalisation come from the arguments or,
    when left as ``None``, from the datamodule when training starts (its ``bands``,
    ``num_classes``, ``mean``/``std`` attributes and its first training batch, read
    through its sampler for a GeoDataModule), so any TorchGeo segmentation or
    change-detection datamodule whose batches carry ``image`` and ``mask`` works. The
    resolved values are written back into the hyperparameters, so checkpoints load
    without the datamodule.

    Per-stream latent scale factors (1 / std of each stream's posterior means over
    the last training epoch) are set before every validation and stored in the
    checkpoint with the weights.

    .. versionadded:: 0.1
    """

    monitor = 'val_loss'
    mode = 'min'

    def __init__(
        self,
        in_channels: int | None = None,
        num_classes: int | None = None,
        num_images: Literal[1, 2] | None = None,
        architecture: Literal['two_stream', 'single_stream'] = 'two_stream',
        image_latent_channels: int = 4,
        mask_latent_channels: int = 2,
        latent_channels: int = 6,
        downsampling_factor: Literal[2, 4, 8] = 4,
        base_channels: int = 32,
        mask_base_channels: int = 16,
        layers_per_block: int = 1,
        reconstruction_loss: Literal['l1', 'l2'] = 'l1',
        image_weight: float = 1.0,
        sam_weight: float = 0.1,
        image_kl_weight: float = 1e-6,
        mask_weight: float = 1.0,
        mask_kl_weight: float = 1e-6,
        class_weights: Sequence[float] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        bands: Sequence[str] | None = None,
        wavelengths: Sequence[float] | None = None,
        class_names: Sequence[str] | None = None,
        lr: float = 1e-3,
        patience: int = 10,
        num_plots: int = 4,
        channels_last: bool = False,
        compile_autoencoder: bool = False,
    ) -> None:
        """Initialize a new TwoStreamVAE instance.

        Args:
            in_channels: bands per image; ``None`` reads them from the datamodule.
            num_classes: mask classes; ``None`` reads them from the datamodule
                (its ``num_classes`` or class names, else its labels: 0/1 masks
                give 2). A given count wins; it may exceed the data's classes
                (with a warning), not the labels.
            num_images: dates per sample, 1 (segmentation) or 2 (change detection);
                ``None`` reads it from the shape of a training sample.
            architecture: 'two_stream' (SpecDM) or 'single_stream' (the baseline).
            image_latent_channels: latent channels of the image stream, per date.
            mask_latent_channels: latent channels of the mask stream.
            latent_channels: latent channels of the single-stream baseline.
            downsampling_factor: spatial downsampling factor f of the latents.
            base_channels: width of the first block of the image autoencoder.
            mask_base_channels: width of the first block of the mask autoencoder.
            layers_per_block: ResNet layers per autoencoder block.
            reconstruction_loss: 'l1' or 'l2' image reconstruction loss.
            image_weight: weight of the image reconstruction loss.
            sam_weight: weight of the spectral-angle loss (radians).
            image_kl_weight: weight of the image stream's KL term.
            mask_weight: weight of the mask cross-entropy.
            mask_kl_weight: weight of the mask stream's KL term (the joint KL term
                in the single-stream baseline).
            class_weights: optional per-class weights of the cross-entropy.
            mean: per-band mean of the normalisation; ``None`` reads the
                datamodule's ``mean``.
            std: per-band standard deviation; ``None`` reads the datamodule's ``std``.
            bands: band names, for plots and exports; ``None`` reads the
                datamodule's ``bands``.
            wavelengths: centre of each band in nanometres, so that plots show
                the bands nearest red, green and blue; ``None`` reads the
                datamodule's ``wavelengths`` (hyperspectral scenes have them).
            class_names: class names; ``None`` reads the datamodule's
                ``class_names``.
            lr: learning rate of the AdamW optimizer.
            patience: patience of the learning-rate plateau scheduler.
            num_plots: validation batches to plot per epoch.
            channels_last: keep the autoencoder weights in the channels-last memory
                layout (faster convolutions on GPUs with tensor cores, and with
                ``--trainer.precision bf16-mixed``).
            compile_autoencoder: train through ``torch.compile`` of the
                autoencoder (compiled on the first training step; validation,
                encoding, decoding and the checkpoint's weight names are unchanged).
        """
        self.model: JointAutoencoder | None = None
        super().__init__()

    @property
    def autoencoder(self) -> JointAutoencoder:
        """The joint autoencoder, once built.

        Raises:
            RuntimeError: if the data-dependent sizes are still unknown.
        """
        if self.model is None:
            raise RuntimeError(
                'TwoStreamVAE has no model yet: pass in_channels, num_classes and '
                'num_images, or train it with a datamodule so that they are read '
                'from the data.'
            )
        return self.model

    def configure_models(self) -> None:
        """Build the autoencoder when the data-dependent sizes are known."""
        hparams = self.hparams
        if None in (
            hparams['in_channels'],
            hparams['num_classes'],
            hparams['num_images'],
        ):
            return
        channels, classes = hparams['in_channels'], hparams['num_classes']
        if hparams['architecture'] == 'single_stream':
            self.model = SingleStreamAutoencoder(
                in_channels=channels,
                num_classes=classes,
                num_images=hparams['num_images'],
                latent_channels=hparams['latent_channels'],
                downsampling_factor=hparams['downsampling_factor'],
                base_channels=hparams['base_channels'],
                layers_per_block=hparams['layers_per_block'],
            )
        else:
            self.model = TwoStreamAutoencoder(
                in_channels=channels,
                num_classes=classes,
                num_images=hparams['num_images'],
                image_latent_channels=hparams['image_latent_channels'],
                mask_latent_channels=hparams['mask_latent_channels'],
                downsampling_factor=hparams['downsampling_factor'],
                base_channels=hparams['base_channels'],
                mask_base_channels=hparams['mask_base_channels'],
                layers_per_block=hparams['layers_per_block'],
            )
        if hparams['channels_last']:
            self.model.to(memory_format=torch.channels_last)
        mean = hparams['mean'] if hparams['mean'] is not None else [0.0] * channels
        std = hparams['std'] if hparams['std'] is not None else [1.0] * channels
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32))
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32))
        self._reset_latent_statistics()

    def configure_losses(self) -> None:
        """Initialize the class weights of the mask cross-entropy."""
        weights = self.hparams['class_weights']
        self.class_weights = None if weights is None else torch.tensor(weights)

    def configure_metrics(self) -> None:
        """Initialize the validation metrics."""
        if self.model is None:
            return
        classes = self.autoencoder.num_classes
        # PSNR over each batch's own value range: the units differ between datasets.
        self.image_metrics = MetricCollection(
            {'psnr': MeanMetric(), 'sam': SpectralAngleMapper()}, prefix='val_'
        )
        self.band_rmse = MeanSquaredError(
            squared=False, num_outputs=self.autoencoder.in_channels
        )
        self.mask_metrics = MetricCollection(
            {
                'miou': MulticlassJaccardIndex(classes, average='macro'),
                'pixel_accuracy': MulticlassAccuracy(classes, average='micro'),
            },
            prefix='val_mask_',
        )

    def setup(self, stage: str) -> None:
        """Read data-dependent sizes from the datamodule and build the model.

        Args:
            stage: Either 'fit', 'validate', 'test', or 'predict'.
        """
        datamodule = getattr(self.trainer, 'datamodule', None)
        if datamodule is None:
            self.autoencoder  # noqa: B018 (raises the clear error when unbuilt)
            return
        spec = infer_data_spec(datamodule)
        if self.model is not None:
            check_data_spec(spec, self.hparams)
            return
        resolve_data_spec(spec, self.hparams)
        self.configure_models()
        self.configure_losses()
        self.configure_metrics()

    def configure_optimizers(self) -> Any:
        """Initialize the optimizer and learning rate scheduler.

        Returns:
            Optimizer and learning rate scheduler.
        """
        return plateau_optimizer(
            self.parameters(),
            self.hparams['lr'],
            self.hparams['patience'],
            self.monitor,
        )

    # Training

    def denormalize(self, image: Tensor) -> Tensor:
        """Undo the datamodule's normalisation.

        Args:
            image: normalised images, band axis at -3.

        Returns:
            the images in the dataset's native units.
        """
        shape = [1] * image.ndim
        shape[-3] = -1
        mean, std = self.get_buffer('mean'), self.get_buffer('std')
        return image * std.view(shape) + mean.view(shape)

    def _losses(
        self, batch: Sample, sample_posterior: bool
    ) -> tuple[dict[str, Tensor], Any]:
        image, mask = batch['image'], batch['mask']
        output = self._training_autoencoder()(
            image, mask, sample_posterior=sample_posterior
        )
        hparams = self.hparams
        reconstruction = (
            F.l1_loss(output.image, image)
            if hparams['reconstruction_loss'] == 'l1'
            else F.mse_loss(output.image, image)
        )
        sam = spectral_angle_loss(
            self.denormalize(output.image), self.denormalize(image)
        )
        target = mask.reshape(mask.shape[0], *mask.shape[-2:]).long()
        weights = None if self.class_weights is None else self.class_weights.to(image)
        cross_entropy = F.cross_entropy(output.mask_logits, target, weight=weights)
        kl = {
            name: posterior.kl().mean() / posterior.mean[0].numel()
            for name, posterior in output.posteriors.items()
        }
        losses = {
            'reconstruction': reconstruction,
            'sam': sam,
            'cross_entropy': cross_entropy,
            **{f'kl_{name}': value for name, value in kl.items()},
        }
        total = (
            hparams['image_weight'] * reconstruction
            + hparams['sam_weight'] * sam
            + hparams['mask_weight'] * cross_entropy
            + hparams['image_kl_weight'] * kl.get('image', torch.zeros(()))
            + hparams['mask_kl_weight']
            * kl.get('mask', kl.get('joint', torch.zeros(())))
        )
        losses['loss'] = total
        return losses, output

    def _training_autoencoder(self) -> Any:
        """The autoencoder, or its ``torch.compile`` wrapper while training with it on."""
        if not (self.hparams['compile_autoencoder'] and self.training):
            return self.autoencoder
        compiled = self.__dict__.get('_compiled_autoencoder')
        if compiled is None:
            # Kept out of the module tree: the state dict keeps its weight names.
            compiled = torch.compile(self.autoencoder)
            object.__setattr__(self, '_compiled_autoencoder', compiled)
        return compiled

    def training_step(
        self, batch: Sample, batch_idx: int, dataloader_idx: int = 0
    ) -> Tensor:
        """Compute the training loss.

        Args:
            batch: The output of your DataLoader.
            batch_idx: Integer displaying index of this batch.
            dataloader_idx: Index of the current dataloader.

        Returns:
            The loss tensor.
        """
        losses, output = self._losses(batch, sample_posterior=True)
        batch_size = batch['image'].shape[0]
        self.log_dict(
            {f'train_{k}': v for k, v in losses.items()}, batch_size=batch_size
        )
        self._accumulate_latent_statistics(output.posteriors)
        return losses['loss']

    def _reset_latent_statistics(self) -> None:
        self._latent_moments: dict[str, Tensor] = {}

    def _accumulate_latent_statistics(self, posteriors: dict[str, Any]) -> None:
        for name, posterior in posteriors.items():
            latent = posterior.mean.detach().double()
            moments = torch.stack(
                [
                    torch.tensor(
                        latent.numel(), dtype=torch.float64, device=latent.device
                    ),
                    latent.sum(),
                    latent.square().sum(),
                ]
            )
            self._latent_moments[name] = self._latent_moments.get(name, 0) + moments

    def _update_scale_factors(self) -> None:
        if not self._latent_moments:
            return
        factors = {}
        for name, moments in self._latent_moments.items():
            gathered = self.all_gather(moments)
            assert isinstance(gathered, Tensor)
            moments = gathered.reshape(-1, 3).sum(0)
            count, total, squares = moments.tolist()
            variance = max(squares / count - (total / count) ** 2, 1e-12)
            factors[name] = variance**-0.5
        self.autoencoder.set_scale_factors(factors)

    def on_train_epoch_start(self) -> None:
        """Start new latent statistics for the scale factors."""
        self._reset_latent_statistics()

    def on_validation_epoch_start(self) -> None:
        """Set the latent scale factors from the training epoch's latents."""
        self._update_scale_factors()

    def on_train_epoch_end(self) -> None:
        """Set the latent scale factors, also when no validation runs."""
        self._update_scale_factors()

    # Validation

    def validation_step(
        self, batch: Sample, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """Compute the validation loss and reconstruction metrics.

        Args:
            batch: The output of your DataLoader.
            batch_idx: Integer displaying index of this batch.
            dataloader_idx: Index of the current dataloader.
        """
        losses, output = self._losses(batch, sample_posterior=False)
        batch_size = batch['image'].shape[0]
        self.log_dict({f'val_{k}': v for k, v in losses.items()}, batch_size=batch_size)
        channels = self.autoencoder.in_channels
        real = self.denormalize(batch['image']).reshape(
            -1, channels, *batch['image'].shape[-2:]
        )
        fake = self.denormalize(output.image).reshape(real.shape)
        value_range = (float(real.min()), float(real.max()))
        self.image_metrics['psnr'].update(
            peak_signal_noise_ratio(fake, real, data_range=value_range)
        )
        self.image_metrics['sam'].update(fake.clamp_min(1e-3), real.clamp_min(1e-3))
        self.band_rmse.update(
            fake.permute(0, 2, 3, 1).reshape(-1, channels),
            real.permute(0, 2, 3, 1).reshape(-1, channels),
        )
        target = batch['mask'].reshape(batch_size, *batch['mask'].shape[-2:])
        prediction = output.mask_logits.argmax(dim=1)
        self.mask_metrics.update(prediction, target)
        if batch_idx < self.hparams['num_plots']:
            figure = self._plot(batch, output.image, prediction)
            log_figure(self, f'image/{batch_idx}', figure)

    def on_validation_epoch_end(self) -> None:
        """Log the epoch's reconstruction metrics."""
        metrics = self.image_metrics.compute()
        metrics['val_sam'] = torch.rad2deg(metrics['val_sam'])
        metrics.update(self.mask_metrics.compute())
        rmse = self.band_rmse.compute()
        names = self.hparams['bands'] or [str(i) for i in range(len(rmse))]
        metrics.update({f'val_rmse/{name}': value for name, value in zip(names, rmse)})
        self.log_dict(metrics)
        for metric in (self.image_metrics, self.band_rmse, self.mask_metrics):
            metric.reset()

    def _plot(
        self, batch: Sample, reconstruction: Tensor, prediction: Tensor
    ) -> Figure:
        return plot_reconstructions(
            self.denormalize(batch['image'][0]).cpu(),
            self.denormalize(reconstruction[0]).cpu(),
            batch['mask'][0].reshape(prediction.shape[-2:]).cpu(),
            prediction[0].cpu(),
            bands=self.hparams['bands'],
            class_names=self.hparams['class_names'],
            wavelengths=self.hparams['wavelengths'],
        )

    # Use as a frozen encoder

    @classmethod
    def from_checkpoint(cls, path: Path, map_location: str = 'cpu') -> 'TwoStreamVAE':
        """Load a trained VAE without running any code stored in the file.

        Args:
            path: a TwoStreamVAE checkpoint.
            map_location: device to load the tensors onto.

        Returns:
            the VAE in eval mode.

        Raises:
            InvalidInputError: if the file is missing, unreadable or not a trained
                TwoStreamVAE checkpoint.
        """
        checkpoint = read_checkpoint(path, map_location)
        hparams = {
            k: v
            for k, v in checkpoint.get('hyper_parameters', {}).items()
            if not k.startswith('_')
        }
        if 'image_latent_channels' not in hparams or hparams.get('in_channels') is None:
            raise InvalidInputError(
                f'{path}: not a trained TwoStreamVAE checkpoint. Pass the checkpoint '
                'that `specdm fit --config benchmarks/configs/vae.yaml` wrote.'
            )
        with own_hyperparameters():
            model = cls(**hparams)
        try:
            model.load_state_dict(checkpoint['state_dict'])
        except RuntimeError as error:
            raise InvalidInputError(
                f'{path}: weights do not fit the stored settings ({error}).'
            ) from None
        return model.eval()

    @torch.no_grad()
    def encode(self, image: Tensor, mask: Tensor) -> Tensor:
        """Encode normalised images and masks into the scaled joint latent.

        Args:
            image: normalised image batch, [B, C, H, W] or [B, 2, C, H, W].
            mask: mask batch of class indices.

        Returns:
            the scaled joint latent (posterior means).
        """
        return self.autoencoder.encode_joint(image, mask, sample=False)

    @torch.no_grad()
    def decode(self, latent: Tensor) -> tuple[Tensor, Tensor]:
        """Decode scaled joint latents into images in native units and labels.

        Args:
            latent: scaled joint latent batch.

        Returns:
            the images, denormalised to the dataset's units, and the label maps.
        """
        image, logits = self.autoencoder.decode_joint(latent)
        return self.denormalize(image), logits.argmax(dim=1)
