"""Latent diffusion task: stage 2 of SpecDM."""

import warnings
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from diffusers.models.unets.unet_2d import UNet2DModel
from diffusers.schedulers.scheduling_ddpm import DDPMScheduler
from diffusers.training_utils import EMAModel, compute_snr
from torch import Tensor
from torchgeo.tasks import BaseTask

from ..datasets.validation import InvalidInputError
from ..generation.conditions import (
    ConditionEmbedding,
    ConditionKind,
    class_fractions,
    condition_size,
    conditions_from_fractions,
    drop_conditions,
    flag_conditions,
)
from ..generation.loop import draw_pairs
from ..generation.pipeline import (
    DEFAULT_STEPS,
    Sampler,
    SpecDMPipeline,
    SpecDMPipelineOutput,
    make_scheduler,
)
from ..types import Path, Sample
from .checkpoints import own_hyperparameters, read_checkpoint
from .latent_cache import LatentCache
from .utils import check_data_spec, infer_data_spec, log_figure, plateau_optimizer
from .vae import TwoStreamVAE


class LatentDiffusion(BaseTask):
    """Latent diffusion over the joint latent of a frozen, trained SpecDM VAE.

    Each batch is encoded by the VAE into the scaled joint latent ``[z_x, z_y]``
    (``[z_x1, z_x2, z_y]`` for change pairs) and a diffusers ``UNet2DModel`` learns
    to denoise it. With ``cache_latents`` the training set is encoded once and the
    U-Net trains on the cached posteriors (one posterior sample per step), so the
    encoder does not run every epoch. An EMA copy of
    the U-Net is kept and used for validation sampling and export. The same task
    trains on the single-stream baseline VAE.

    With ``condition`` other than 'none', each training mask's class fractions,
    class presence or changed-pixel fraction conditions the U-Net (through its
    class-embedding input), and is replaced by a null condition with probability
    ``condition_dropout``, so that one model samples both conditionally and
    unconditionally (classifier-free guidance in
    :class:`~torchgeo_specdm.generation.SpecDMPipeline`). The class fractions of
    the training masks are stored in the checkpoint (the training class
    histogram, and the conditions that requests start from).

    .. versionadded:: 0.1
    """

    monitor = 'val_loss'
    mode = 'min'
    ignore = ('vae',)

    def __init__(
        self,
        vae_checkpoint: str | None = None,
        block_out_channels: Sequence[int] = (64, 128, 128),
        layers_per_block: int = 1,
        attention: bool = True,
        prediction_type: Literal['epsilon', 'v_prediction'] = 'v_prediction',
        beta_schedule: Literal[
            'linear', 'scaled_linear', 'squaredcos_cap_v2'
        ] = 'squaredcos_cap_v2',
        num_train_timesteps: int = 1000,
        snr_gamma: float | None = 5.0,
        ema_decay: float | None = 0.999,
        cache_latents: bool = True,
        cache_passes: int = 1,
        latent_augmentation: Literal['dihedral', 'pixel', 'none'] = 'none',
        mask_loss_weight: float = 1.0,
        latent_size: Sequence[int] | None = None,
        lr: float = 2e-4,
        patience: int = 10,
        sample_every_n_epochs: int = 5,
        num_val_samples: int = 8,
        val_sampler: Sampler = 'dpmpp',
        val_steps: int = DEFAULT_STEPS,
        channels_last: bool = False,
        compile_unet: bool = False,
        condition: ConditionKind = 'none',
        condition_dropout: float = 0.1,
        vae: TwoStreamVAE | None = None,
    ) -> None:
        """Initialize a new LatentDiffusion instance.

        Args:
            vae_checkpoint: checkpoint of a trained
                :class:`~torchgeo_specdm.tasks.TwoStreamVAE`.
            block_out_channels: widths of the U-Net levels.
            layers_per_block: ResNet layers per U-Net block.
            attention: use self-attention in the U-Net's lower levels.
            prediction_type: 'v_prediction' or 'epsilon'. With the cosine
                schedule, the last training step keeps a signal share
                (alpha-bar) of about 2e-9, so an epsilon model's clean-latent
                estimate there amplifies any error ~2e4 times and samplers that
                start at that step (DDPM-1000, DPM-Solver++) diverge; v-prediction
                stays bounded. Pair 'epsilon' with 'scaled_linear'.
            beta_schedule: 'linear', 'scaled_linear' or 'squaredcos_cap_v2' (cosine).
            num_train_timesteps: diffusion steps of the training schedule.
            snr_gamma: min-SNR loss weighting gamma; ``None`` for plain MSE.
            ema_decay: decay of the U-Net's EMA (with warm-up); ``None`` for no EMA.
            cache_latents: encode the training set once and train on the cache.
            cache_passes: passes over the training set when caching (use more
                when the dataset crops at random, e.g. OSCD).
            latent_augmentation: how cached training latents are augmented:
                'none' (the default) trains on the unaugmented latents; 'pixel'
                caches ``cache_passes`` randomly flipped and rotated views of each
                training image, encoded after the augmentation; 'dihedral' flips
                and rotates the cached latents at every step. The VAE is not
                equivariant: a rotated latent decodes to a worse, less aligned
                pair, and on the simulator 'dihedral' lowers the judge's alignment
                of the samples from 0.389 to 0.313 mean IoU
                (benchmarks/results/alignment_simulated-segmentation.md).
            mask_loss_weight: weight of the mask stream's latent channels in the
                denoising loss, relative to the image channels (1: every channel
                alike); the weights are rescaled to a mean of 1. Two-stream VAEs only.
            latent_size: (h, w) of the joint latent; read from the data when
                training starts, then stored in the checkpoint.
            lr: learning rate of the AdamW optimizer.
            patience: patience of the learning-rate plateau scheduler.
            sample_every_n_epochs: sample, plot and score every N validation epochs.
            num_val_samples: pairs to sample at those validations.
            val_sampler: sampler for those validations: 'ddpm', 'ddim' or 'dpmpp'.
            val_steps: denoising steps of those validations.
            channels_last: keep the U-Net weights and its training inputs in the
                channels-last memory layout (faster convolutions on GPUs with
                tensor cores, and with ``--trainer.precision bf16-mixed``).
            compile_unet: train through ``torch.compile`` of the U-Net (compiled on
                the first training step; sampling and the checkpoint's weight
                names are unchanged).
            condition: what the U-Net is told about each training mask: 'none'
                (unconditional, as before), 'class_fraction' (share of each
                class), 'class_presence' (1 for each class with any pixel) or
                'change_fraction' (share of changed pixels; change pairs only).
            condition_dropout: probability of training a sample with the null
                condition, so the model also samples unconditionally.
            vae: an already loaded VAE (used instead of ``vae_checkpoint``).

        Raises:
            InvalidInputError: for a condition dropout outside [0, 1), or a mask
                loss weight that is not a positive number.
        """
        if not mask_loss_weight > 0 or mask_loss_weight == float('inf'):
            raise InvalidInputError(
                f'mask_loss_weight={mask_loss_weight}: must be a finite number > 0 '
                '(1 weighs the mask and image latent channels alike).'
            )
        if not 0 <= condition_dropout < 1:
            raise InvalidInputError(
                f'condition_dropout={condition_dropout}: must lie in [0, 1); 0.1 '
                'trains one model for conditional and unconditional sampling.'
            )
        if prediction_type == 'epsilon' and beta_schedule == 'squaredcos_cap_v2':
            warnings.warn(
                "prediction_type='epsilon' with beta_schedule='squaredcos_cap_v2' "
                'diverges in samplers that start at the last timestep (DDPM, '
                "DPM-Solver++): use prediction_type='v_prediction' or "
                "beta_schedule='scaled_linear'.",
                UserWarning,
                stacklevel=2,
            )
        # Not an nn.Module attribute yet: Module.__init__ has not run.
        object.__setattr__(self, '_given_vae', vae)
        super().__init__()

    # Models

    def configure_models(self) -> None:
        """Load the frozen VAE and build the U-Net and noise scheduler."""
        vae = self.__dict__.pop('_given_vae', None)
        if vae is None:
            path = self.hparams['vae_checkpoint']
            if path is None:
                raise InvalidInputError(
                    'LatentDiffusion needs a trained VAE: set '
                    '--model.init_args.vae_checkpoint to a TwoStreamVAE checkpoint.'
                )
            vae = TwoStreamVAE.from_checkpoint(path)
        self.vae = vae.eval().requires_grad_(False)
        self.vae_hparams = dict(vae.hparams)
        kind = self.hparams['condition']
        if kind == 'change_fraction' and vae.hparams['num_images'] != 2:
            raise InvalidInputError(
                "condition='change_fraction' needs a change-detection VAE (image "
                'pairs); this VAE encodes single images. Use class_fraction or '
                'class_presence.'
            )
        self.num_conditions = condition_size(kind, vae.hparams['num_classes'])
        #: [N, K] class fractions of the training masks (conditional models).
        self.training_fractions: Tensor | None = None
        self.unet = self._build_unet()
        if self.hparams['channels_last']:
            # ModelMixin.to's @wraps signature confuses mypy; nn.Module.to is the same.
            torch.nn.Module.to(self.unet, memory_format=torch.channels_last)
        self.noise_scheduler = DDPMScheduler(
            num_train_timesteps=self.hparams['num_train_timesteps'],
            beta_schedule=self.hparams['beta_schedule'],
            prediction_type=self.hparams['prediction_type'],
            clip_sample=False,
        )
        decay = self.hparams['ema_decay']
        self.ema = (
            None
            if decay is None
            else EMAModel(
                self.unet.parameters(), decay=decay, use_ema_warmup=True, power=3 / 4
            )
        )
        self.latent_cache: LatentCache | None = None

    def _build_unet(self) -> UNet2DModel:
        channels = self.vae.autoencoder.latent_channels
        widths = tuple(self.hparams['block_out_channels'])
        levels = len(widths)
        attention = self.hparams['attention']
        down = ['DownBlock2D'] + ['AttnDownBlock2D' if attention else 'DownBlock2D'] * (
            levels - 1
        )
        up = ['AttnUpBlock2D' if attention else 'UpBlock2D'] * (levels - 1) + [
            'UpBlock2D'
        ]
        groups = min(32, min(widths))
        unet = UNet2DModel(
            sample_size=None,
            in_channels=channels,
            out_channels=channels,
            block_out_channels=widths,
            layers_per_block=self.hparams['layers_per_block'],
            down_block_types=tuple(down),
            up_block_types=tuple(up),
            norm_num_groups=groups,
            attention_head_dim=min(64, widths[-1]),
            class_embed_type='identity' if self.num_conditions else None,
        )
        if self.num_conditions:
            # The U-Net adds class_embedding(class_labels) to its time embedding.
            unet.class_embedding = ConditionEmbedding(
                self.num_conditions, widths[0] * 4
            )
        return unet

    def configure_optimizers(self) -> Any:
        """Optimise the U-Net only; the VAE stays frozen.

        Returns:
            Optimizer and learning rate scheduler.
        """
        return plateau_optimizer(
            self.unet.parameters(),
            self.hparams['lr'],
            self.hparams['patience'],
            self.monitor,
        )

    def setup(self, stage: str) -> None:
        """Check the data against the VAE, fix the latent size and cache latents.

        Args:
            stage: Either 'fit', 'validate', 'test', or 'predict'.
        """
        datamodule = getattr(self.trainer, 'datamodule', None)
        if datamodule is None:
            return
        spec = infer_data_spec(datamodule)
        check_data_spec(spec, self.vae.hparams)
        factor = self.vae.autoencoder.downsampling_factor
        height, width = spec['size']
        size = [height // factor, width // factor]
        if self.hparams['latent_size'] is None:
            self.hparams['latent_size'] = size
        elif list(self.hparams['latent_size']) != size:
            raise InvalidInputError(
                f'the model was trained on {list(self.hparams["latent_size"])} latents '
                f'but the datamodule gives {height} x {width} px images ({size} '
                'latents). Crop the data to the training size.'
            )
        if stage == 'fit' and self.hparams['cache_latents']:
            # Lightning moves the module to its device only after setup: encode on
            # the trainer's device (the GPU), not on wherever the module still is.
            self.vae.to(self.trainer.strategy.root_device)
            augmentation = self.hparams['latent_augmentation']
            self.latent_cache = LatentCache.build(
                self.vae,
                datamodule,
                passes=self.hparams['cache_passes'],
                augment=augmentation == 'pixel',
            )
            self.latent_cache.install(datamodule, dihedral=augmentation == 'dihedral')
            if self.num_conditions:
                self.training_fractions = self.latent_cache.fractions
        elif stage == 'fit' and self.num_conditions:
            self.training_fractions = LatentCache.mask_fractions(
                datamodule, self.vae.autoencoder.num_classes
            )

    # Training

    def _latents(self, batch: Sample) -> Tensor:
        if 'latent_mean' in batch:
            return LatentCache.sample(batch)
        image = batch['image'].to(self.vae.dtype)
        return self.vae.autoencoder.encode_joint(image, batch['mask'], sample=True)

    def _labels(self, batch: Sample, dropout: float) -> Tensor | None:
        """Flagged condition labels of a batch (None for an unconditional model).

        Args:
            batch: a batch of images and masks, or of cached posteriors.
            dropout: probability of replacing a sample's label by the null one.

        Returns:
            [B, D + 1] labels, or None.
        """
        if not self.num_conditions:
            return None
        if 'class_fractions' in batch:
            fractions = batch['class_fractions']
        else:
            fractions = class_fractions(batch['mask'], self.vae.autoencoder.num_classes)
        values = conditions_from_fractions(fractions, self.hparams['condition'])
        return drop_conditions(flag_conditions(values.to(self.device)), dropout)

    def _loss(self, latent: Tensor, labels: Tensor | None = None) -> Tensor:
        noise = torch.randn_like(latent)
        steps = self.noise_scheduler.config['num_train_timesteps']
        timesteps = torch.randint(0, steps, (latent.shape[0],), device=latent.device)
        noisy = self.noise_scheduler.add_noise(latent, noise, timesteps)
        if self.hparams['channels_last']:
            noisy = noisy.contiguous(memory_format=torch.channels_last)
        if labels is None:
            prediction = self._training_unet()(noisy, timesteps).sample
        else:
            prediction = self._training_unet()(
                noisy, timesteps, class_labels=labels.to(noisy.dtype)
            ).sample
        if self.hparams['prediction_type'] == 'epsilon':
            target = noise
        else:
            target = self.noise_scheduler.get_velocity(latent, noise, timesteps)
        gamma = self.hparams['snr_gamma']
        if gamma is None:
            return self._weigh_channels(
                F.mse_loss(prediction.float(), target.float(), reduction='none')
            ).mean()
        snr = compute_snr(self.noise_scheduler, timesteps)
        weights = torch.minimum(snr, torch.full_like(snr, gamma))
        weights = weights / (
            snr + 1 if self.hparams['prediction_type'] == 'v_prediction' else snr
        )
        loss = F.mse_loss(prediction.float(), target.float(), reduction='none')
        return (self._weigh_channels(loss).mean(dim=(1, 2, 3)) * weights).mean()

    def _weigh_channels(self, loss: Tensor) -> Tensor:
        """Weigh the mask stream's channels of a per-element loss [B, C, h, w]."""
        weight = self.hparams['mask_loss_weight']
        if weight == 1:
            return loss
        channels = self.vae.autoencoder.stream_channels
        if 'mask' not in channels:
            raise InvalidInputError(
                f'mask_loss_weight={weight}: this VAE has no separate mask stream '
                f'(streams: {", ".join(channels)}); use 1 with the single-stream VAE.'
            )
        weights = torch.ones(loss.shape[1], device=loss.device, dtype=loss.dtype)
        weights[-channels['mask'] :] = weight
        return loss * (weights / weights.mean()).view(1, -1, 1, 1)

    def _training_unet(self) -> Any:
        """The U-Net, or its ``torch.compile`` wrapper while training with it on."""
        if not (self.hparams['compile_unet'] and self.training):
            return self.unet
        compiled = self.__dict__.get('_compiled_unet')
        if compiled is None:
            # Kept out of the module tree: the state dict keeps its weight names.
            compiled = torch.compile(self.unet)
            object.__setattr__(self, '_compiled_unet', compiled)
        return compiled

    def training_step(
        self, batch: Sample, batch_idx: int, dataloader_idx: int = 0
    ) -> Tensor:
        """Compute the denoising loss.

        Args:
            batch: The output of your DataLoader.
            batch_idx: Integer displaying index of this batch.
            dataloader_idx: Index of the current dataloader.

        Returns:
            The loss tensor.
        """
        latent = self._latents(batch)
        loss = self._loss(
            latent, self._labels(batch, self.hparams['condition_dropout'])
        )
        self.log('train_loss', loss, batch_size=latent.shape[0], prog_bar=True)
        return loss

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """Step the optimizer, then the EMA of the U-Net weights.

        Updating here, not in ``on_train_batch_end``, keeps the EMA in step with
        checkpoints that callbacks save at the end of a batch.

        Args:
            args: Lightning's positional arguments.
            kwargs: Lightning's keyword arguments.
        """
        super().optimizer_step(*args, **kwargs)
        if self.ema is not None:
            self.ema.to(self.device)
            self.ema.step(self.unet.parameters())

    # Validation

    def validation_step(
        self, batch: Sample, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """Compute the validation loss; on sampling epochs, sample, plot and score.

        Args:
            batch: The output of your DataLoader.
            batch_idx: Integer displaying index of this batch.
            dataloader_idx: Index of the current dataloader.
        """
        with self.ema_weights():
            loss = self._loss(
                self.vae.autoencoder.encode_joint(batch['image'], batch['mask']),
                self._labels(batch, 0.0),
            )
        self.log('val_loss', loss, batch_size=batch['image'].shape[0])
        epoch_due = self.current_epoch % self.hparams['sample_every_n_epochs'] == 0
        if batch_idx == 0 and epoch_due and not self.trainer.sanity_checking:
            self._sample_and_score(batch)

    def _sample_and_score(self, batch: Sample) -> None:
        from ..metrics import class_histogram_tv, class_spectrum_sam
        from .utils import plot_reconstructions

        pipeline = self.pipeline(self.hparams['val_sampler'])
        pipeline.set_progress_bar_config(disable=True)
        with self.ema_weights():
            output = pipeline(
                num_samples=self.hparams['num_val_samples'],
                num_inference_steps=self.hparams['val_steps'],
                seed=0,
            )
        assert isinstance(output, SpecDMPipelineOutput)
        real_image = self.vae.denormalize(batch['image']).cpu()
        real_mask = batch['mask'].cpu()
        classes = self.vae.autoencoder.num_classes
        metrics = {
            'val_class_sam': class_spectrum_sam(
                output.image, output.mask, real_image, real_mask, classes
            ),
            'val_class_tv': class_histogram_tv(output.mask, real_mask, classes),
        }
        self.log_dict({k: float(v) for k, v in metrics.items()})
        for index in range(min(2, len(output.image))):
            figure = plot_reconstructions(
                real_image[index],
                output.image[index],
                real_mask[index].reshape(real_mask.shape[-2:]),
                output.mask[index].reshape(output.mask.shape[-2:]),
                bands=self.vae.hparams['bands'],
                class_names=self.vae.hparams['class_names'],
                titles=('real', 'generated'),
                wavelengths=self.vae.hparams.get('wavelengths'),
            )
            log_figure(self, f'samples/{index}', figure)

    # Sampling

    def ema_weights(self) -> Any:
        """Context manager that swaps the EMA weights into the U-Net.

        Returns:
            the context manager.
        """
        return _EMAWeights(self)

    def pipeline(self, sampler: Sampler = 'dpmpp') -> SpecDMPipeline:
        """A sampling pipeline over this task's VAE and U-Net.

        Args:
            sampler: 'ddpm', 'ddim' or 'dpmpp'.

        Returns:
            the pipeline (it uses the U-Net's current weights; see
            :meth:`ema_weights`).
        """
        scheduler = make_scheduler(sampler, dict(self.noise_scheduler.config))
        unet = self.unet
        latent_shape = self.latent_shape()
        unet.register_to_config(sample_size=latent_shape[1:])
        return SpecDMPipeline(vae=self.vae, unet=unet, scheduler=scheduler)

    def latent_shape(self) -> tuple[int, int, int]:
        """Shape of one joint latent.

        Returns:
            (channels, height, width) of the latents the U-Net is trained on.
        """
        size = self.hparams.get('latent_size')
        if size is None:
            raise InvalidInputError(
                'the latent size is unknown: this LatentDiffusion model has not been '
                'trained yet. Train it on data first, or load a trained checkpoint.'
            )
        return (self.vae.autoencoder.latent_channels, int(size[0]), int(size[1]))

    def configure_prediction(
        self,
        sampler: Sampler,
        steps: int,
        seed: int,
        batch_size: int,
        guidance_scale: float = 1.0,
        plan: Any = None,
        guidance: Any = None,
    ) -> None:
        """Choose how :meth:`predict_step` samples.

        Args:
            sampler: 'ddpm', 'ddim' or 'dpmpp'.
            steps: denoising steps.
            seed: run seed; sample i depends on (seed, i) only.
            batch_size: every batch is padded to this size.
            guidance_scale: classifier-free guidance scale (with a plan).
            plan: a :class:`~torchgeo_specdm.generation.SamplePlan` for
                conditional sampling, or None.
            guidance: a :class:`~torchgeo_specdm.generation.guidance.GuideSettings`
                for alignment guidance and mask refinement, or None.
        """
        self.prediction_settings = {
            'sampler': sampler,
            'steps': steps,
            'seed': seed,
            'batch_size': batch_size,
            'guidance_scale': guidance_scale,
            'plan': plan,
            'guidance': guidance,
        }

    def predict_step(
        self, batch: Tensor, batch_idx: int, dataloader_idx: int = 0
    ) -> Any:
        """Generate the pairs of a batch of sample indices.

        Args:
            batch: sample indices.
            batch_idx: Integer displaying index of this batch.
            dataloader_idx: Index of the current dataloader.

        Returns:
            a :class:`~torchgeo_specdm.generation.loop.DrawnPair` per index.
        """
        settings = getattr(self, 'prediction_settings', None) or {
            'sampler': 'dpmpp',
            'steps': DEFAULT_STEPS,
            'seed': 0,
            'batch_size': len(batch),
        }
        pipeline = self.pipeline(settings['sampler'])
        pipeline.set_progress_bar_config(disable=True)
        guidance = settings.get('guidance')
        if guidance is not None:
            guidance.guide.to(self.device)
        return draw_pairs(
            pipeline,
            batch.tolist(),
            settings['seed'],
            settings['steps'],
            settings['batch_size'],
            settings.get('guidance_scale', 1.0),
            settings.get('plan'),
            guidance,
        )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the VAE's hyperparameters and the EMA state with the weights.

        Args:
            checkpoint: the checkpoint being saved.
        """
        checkpoint['vae_hparams'] = {
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in self.vae_hparams.items()
            if not k.startswith('_')
        }
        if self.ema is not None:
            checkpoint['ema'] = self.ema.state_dict()
        if self.training_fractions is not None:
            checkpoint['training_fractions'] = self.training_fractions

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the EMA state and the training masks' class fractions.

        Args:
            checkpoint: the checkpoint being loaded.
        """
        if self.ema is not None and 'ema' in checkpoint:
            self.ema.load_state_dict(checkpoint['ema'])
        if 'training_fractions' in checkpoint:
            self.training_fractions = checkpoint['training_fractions'].float()

    def class_histogram(self) -> Tensor | None:
        """Pixel share of each class over the training masks.

        Returns:
            [K] fractions summing to 1, or None when the model stores no training
            statistics (unconditional models).
        """
        if self.training_fractions is None or not len(self.training_fractions):
            return None
        return self.training_fractions.mean(dim=0)

    @classmethod
    def from_checkpoint(
        cls, path: Path, map_location: str = 'cpu'
    ) -> 'LatentDiffusion':
        """Load a trained model without running any code stored in the file.

        Args:
            path: a LatentDiffusion checkpoint.
            map_location: device to load the tensors onto.

        Returns:
            the model, in eval mode, with the EMA weights in its U-Net when present.

        Raises:
            InvalidInputError: if the file is missing, unreadable or not a
                LatentDiffusion checkpoint with its VAE.
        """
        checkpoint = read_checkpoint(path, map_location)
        if 'vae_hparams' not in checkpoint:
            raise InvalidInputError(
                f'{path}: not a LatentDiffusion checkpoint with its VAE (no VAE '
                'settings stored). Pass the checkpoint that `specdm fit` wrote for the '
                'diffusion task, not the VAE one.'
            )
        with own_hyperparameters():
            vae = TwoStreamVAE(**checkpoint['vae_hparams'])
        hparams = {
            k: v
            for k, v in checkpoint['hyper_parameters'].items()
            if not k.startswith('_')
        }
        hparams.pop('vae_checkpoint', None)
        with own_hyperparameters():
            model = cls(vae=vae, **hparams)
        model.hparams['vae_checkpoint'] = checkpoint['hyper_parameters'].get(
            'vae_checkpoint'
        )
        try:
            model.load_state_dict(checkpoint['state_dict'])
        except RuntimeError as error:
            raise InvalidInputError(
                f'{path}: weights do not fit the stored settings ({error}).'
            ) from None
        model.on_load_checkpoint(checkpoint)
        if model.ema is not None:
            model.ema.copy_to(model.unet.parameters())
        return model.eval()


class _EMAWeights:
    """Swap a task's EMA weights into its U-Net for the duration of a block."""

    def __init__(self, task: LatentDiffusion) -> None:
        self.task = task

    def __enter__(self) -> None:
        ema = self.task.ema
        if ema is not None:
            ema.to(self.task.device)
            ema.store(self.task.unet.parameters())
            ema.copy_to(self.task.unet.parameters())

    def __exit__(self, *args: object) -> None:
        if self.task.ema is not None:
            self.task.ema.restore(self.task.unet.parameters())
