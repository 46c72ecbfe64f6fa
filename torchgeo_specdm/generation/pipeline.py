"""SpecDMPipeline: sample joint latents and decode them into image-mask pairs."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from diffusers.models.unets.unet_2d import UNet2DModel
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.schedulers.scheduling_ddim import DDIMScheduler
from diffusers.schedulers.scheduling_ddpm import DDPMScheduler
from diffusers.schedulers.scheduling_dpmsolver_multistep import (
    DPMSolverMultistepScheduler,
)
from diffusers.utils.outputs import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from torch import Tensor

from ..datasets.validation import InvalidInputError
from .conditions import ConditionEmbedding, flag_conditions, null_conditions
from .guidance import (
    check_guidance,
    class_probabilities,
    guide_input,
    guided_output,
    guided_step_count,
)
from .refine import RefineMode, check_refine, refine_mask

Sampler = Literal['ddpm', 'ddim', 'dpmpp']
SAMPLERS: tuple[str, ...] = ('ddpm', 'ddim', 'dpmpp')
#: Default DPM-Solver++ steps: the fewest that stayed within 10 % of DDPM-1000's
#: fidelity metrics on a trained model (benchmarks/results/speed_full.md).
DEFAULT_STEPS = 15


def sample_seed(seed: int, index: int, attempt: int = 0) -> int:
    """The noise seed of sample ``index``: it depends on (seed, index, attempt) only.

    Args:
        seed: the run's seed.
        index: the sample's index.
        attempt: redraw number of the sample (0: the first draw).

    Returns:
        a 63-bit seed for a :class:`torch.Generator`.
    """
    entropy = [seed, index] if attempt == 0 else [seed, index, attempt]
    state = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


def make_scheduler(sampler: str, config: dict[str, Any]) -> Any:
    """A diffusers scheduler for a sampler name, from the training scheduler's config.

    Args:
        sampler: 'ddpm' (ancestral), 'ddim' or 'dpmpp' (DPM-Solver++, 2nd order).
        config: the training scheduler's config.

    Returns:
        the scheduler.

    Raises:
        InvalidInputError: for an unknown sampler name.
    """
    if sampler == 'ddpm':
        return DDPMScheduler.from_config(config)
    if sampler == 'ddim':
        return DDIMScheduler.from_config(config)
    if sampler == 'dpmpp':
        return DPMSolverMultistepScheduler.from_config(
            config, algorithm_type='dpmsolver++', solver_order=2
        )
    raise InvalidInputError(
        f'sampler={sampler!r} is unknown: choose one of {", ".join(SAMPLERS)}.'
    )


@dataclass
class SpecDMPipelineOutput(BaseOutput):
    """Output of :class:`SpecDMPipeline`.

    Attributes:
        image: images in the dataset's native units, [N, C, H, W] or [N, 2, C, H, W].
        mask: labels, [N, H, W] (segmentation) or [N, 1, H, W] (change, 0/1).
        latents: the sampled scaled joint latents, [N, Cz, h, w].
        refined_share: with ``refine``, the share of each mask's pixels that the
            refinement changed, [N]; else None.

    .. versionadded:: 0.1
    """

    image: Tensor
    mask: Tensor
    latents: Tensor
    refined_share: Tensor | None = None


class SpecDMPipeline(DiffusionPipeline):
    """Generate image-mask pairs with a SpecDM VAE, U-Net and any diffusers scheduler.

    The loop is diffusers' own: ``set_timesteps``, then for each ``t`` the U-Net
    predicts and ``scheduler.step`` moves the latent. Each sample has its own
    generator seeded from (seed, index), so sample i is the same whatever the
    batch size or the number of processes.

    .. versionadded:: 0.1
    """

    vae: Any
    unet: UNet2DModel
    scheduler: Any

    def __init__(self, vae: Any, unet: UNet2DModel, scheduler: Any) -> None:
        """Initialize a new SpecDMPipeline instance.

        Args:
            vae: a trained :class:`~torchgeo_specdm.tasks.TwoStreamVAE`.
            unet: the denoising U-Net over the joint latent.
            scheduler: any diffusers scheduler.
        """
        super().__init__()
        self.register_modules(vae=vae, unet=unet, scheduler=scheduler)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """Shape of one joint latent, (channels, height, width)."""
        size = self.unet.config['sample_size']
        height, width = (size, size) if isinstance(size, int) else size
        return int(self.unet.config['in_channels']), int(height), int(width)

    @property
    def condition_size(self) -> int:
        """Number of condition values the U-Net takes (0: unconditional model)."""
        embedding = self.unet.class_embedding
        return embedding.num_values if isinstance(embedding, ConditionEmbedding) else 0

    @torch.no_grad()
    def __call__(
        self,
        num_samples: int = 1,
        batch_size: int = 16,
        seed: int = 0,
        indices: Sequence[int] | None = None,
        num_inference_steps: int = DEFAULT_STEPS,
        output_type: Literal['pt', 'latent'] = 'pt',
        return_dict: bool = True,
        pad_batches: bool = False,
        condition: Tensor | Sequence[float] | Sequence[Sequence[float]] | None = None,
        guidance_scale: float = 1.0,
        attempts: Sequence[int] | None = None,
        guide: Any = None,
        alignment_guidance: float = 0.0,
        guidance_start: float = 0.5,
        refine: RefineMode | None = None,
        refine_confidence: float = 0.9,
        ignore_index: int | None = None,
    ) -> SpecDMPipelineOutput | tuple[Tensor, Tensor, Tensor]:
        """Sample image-mask pairs.

        Args:
            num_samples: number of pairs, indices 0 .. num_samples - 1.
            batch_size: pairs denoised at once.
            seed: run seed; sample i uses the seed derived from (seed, i).
            indices: explicit sample indices (overrides ``num_samples``).
            num_inference_steps: denoising steps.
            output_type: 'pt' decodes images and masks; 'latent' skips decoding.
            return_dict: return a :class:`SpecDMPipelineOutput` rather than a tuple.
            pad_batches: denoise a short last batch padded to ``batch_size``. On
                CPU, results are bit-identical only for the same batch size and
                thread count, so this makes files independent of how the indices
                are split over processes.
            condition: condition values for a conditional U-Net: one vector [D]
                for every sample, or one per sample [N, D] (see
                :func:`~torchgeo_specdm.generation.conditions.mask_conditions`).
                ``None`` samples unconditionally; for an unconditional U-Net this
                is the only choice, and the loop is exactly the plain one.
            guidance_scale: classifier-free guidance scale s, with
                ``prediction = uncond + s * (cond - uncond)``: 0 ignores the
                condition (unconditional), 1 follows the conditional model alone
                (one U-Net pass per step) and above 1 pushes the samples further
                towards the condition (two passes per step). Only used with a
                ``condition``.
            attempts: redraw number of each sample (default 0 for all): sample i
                at attempt a uses the noise seed of (seed, i, a).
            guide: a downstream SemanticSegmentation or ChangeDetection model
                (frozen, in eval mode, on the U-Net's device) that takes
                normalised images; used by ``alignment_guidance`` and ``refine``.
            alignment_guidance: alignment-guidance scale S. In each guided step
                the predicted clean latent takes a normalised gradient step on the
                consistency loss between the guide's prediction on the decoded
                image and the decoded mask, moving each sample by S * 0.1 latent
                RMS (see :func:`~torchgeo_specdm.generation.guidance.guided_output`).
                0 (or no guide) samples exactly as without guidance.
            guidance_start: share of the steps that are guided: the last
                ``ceil(guidance_start * num_inference_steps)`` ones, the least noisy.
            refine: after decoding, 'ignore' sets the mask pixels where the guide
                is confident (top probability >= ``refine_confidence``) of another
                class to ``ignore_index``; 'relabel' gives them the guide's class.
            refine_confidence: the guide's smallest probability that changes a
                pixel.
            ignore_index: the label 'ignore' writes.

        Returns:
            the images, masks and latents.

        Raises:
            InvalidInputError: for a non-positive sample count, batch size or step
                count, more steps than the scheduler was trained with, a negative
                guidance scale, a condition that the U-Net cannot take, or
                alignment guidance or refinement settings that do not fit.
        """
        chosen = list(range(num_samples)) if indices is None else list(indices)
        if not chosen:
            raise InvalidInputError(
                f'num_samples={num_samples}: ask for at least one sample.'
            )
        tries = [0] * len(chosen) if attempts is None else list(attempts)
        if len(tries) != len(chosen):
            raise InvalidInputError(
                f'attempts: {len(tries)} entries for {len(chosen)} samples. Give one '
                'attempt number per sample.'
            )
        labels = self._condition_labels(condition, len(chosen), guidance_scale)
        check_guidance(alignment_guidance, guidance_start, guide is not None)
        check_refine(refine, refine_confidence, guide is not None, ignore_index)
        if guide is None:
            alignment_guidance = 0.0
        if batch_size < 1:
            raise InvalidInputError(f'batch_size={batch_size} must be at least 1.')
        trained = int(self.scheduler.config['num_train_timesteps'])
        if not 1 <= num_inference_steps <= trained:
            raise InvalidInputError(
                f'steps={num_inference_steps}: must lie in [1, {trained}], the '
                'number of diffusion steps the model was trained with.'
            )
        images, masks, latents, shares = [], [], [], []
        for start in self.progress_bar(range(0, len(chosen), batch_size)):
            batch = chosen[start : start + batch_size]
            padding = batch_size - len(batch) if pad_batches else 0
            batch_tries = tries[start : start + batch_size]
            batch_labels = None
            if labels is not None:
                batch_labels = labels[start : start + batch_size]
                batch_labels = torch.cat(
                    [batch_labels, batch_labels[-1:].expand(padding, -1)]
                )
            latent = self._denoise(
                batch + batch[-1:] * padding,
                seed,
                num_inference_steps,
                batch_tries + batch_tries[-1:] * padding,
                batch_labels,
                guidance_scale,
                guide,
                alignment_guidance,
                guidance_start,
            )
            latent = latent[: len(batch)]
            latents.append(latent.cpu())
            if output_type == 'pt' and refine is not None:
                image, mask, share = self._decode_refined(
                    latent, guide, refine, refine_confidence, ignore_index
                )
                shares.append(share.cpu())
            elif output_type == 'pt':
                image, mask = self.decode(latent)
            if output_type == 'pt':
                images.append(image.cpu())
                masks.append(mask.cpu())
        latent_out = torch.cat(latents)
        image_out = torch.cat(images) if images else torch.empty(0)
        mask_out = torch.cat(masks) if masks else torch.empty(0, dtype=torch.long)
        if not return_dict:
            return image_out, mask_out, latent_out
        return SpecDMPipelineOutput(
            image=image_out,
            mask=mask_out,
            latents=latent_out,
            refined_share=torch.cat(shares) if shares else None,
        )

    def _condition_labels(
        self,
        condition: Tensor | Sequence[float] | Sequence[Sequence[float]] | None,
        count: int,
        guidance_scale: float,
    ) -> Tensor | None:
        """Check the condition and turn it into flagged U-Net class labels.

        Args:
            condition: the ``condition`` argument of :meth:`__call__`.
            count: number of samples.
            guidance_scale: the guidance scale.

        Returns:
            [count, D + 1] labels; the null labels for a conditional U-Net without
            a condition; None for an unconditional U-Net.

        Raises:
            InvalidInputError: for a negative or non-finite guidance scale, or a
                condition that does not fit the U-Net.
        """
        if not guidance_scale >= 0 or guidance_scale == float('inf'):
            raise InvalidInputError(
                f'guidance_scale={guidance_scale}: must be a finite number >= 0 '
                '(0: unconditional, 1: conditional, above 1: guided).'
            )
        size = self.condition_size
        if condition is None:
            if size == 0:
                return None
            return torch.zeros(count, size + 1)
        if size == 0:
            raise InvalidInputError(
                'condition: this model was trained without conditions '
                "(LatentDiffusion condition='none'). Sample without a condition, or "
                'train a model with condition=class_fraction, class_presence or '
                'change_fraction.'
            )
        values = torch.as_tensor(condition, dtype=torch.float32).cpu()
        if values.ndim == 1:
            values = values.expand(count, -1)
        if values.ndim != 2 or values.shape != (count, size):
            raise InvalidInputError(
                f'condition: shape {tuple(values.shape)} does not fit: this model takes '
                f'{size} condition values, as one vector [{size}] or one per sample '
                f'[{count}, {size}].'
            )
        if not bool(torch.isfinite(values).all()):
            raise InvalidInputError('condition: holds NaN or Inf values.')
        return flag_conditions(values)

    def _denoise(
        self,
        batch: Sequence[int],
        seed: int,
        steps: int,
        attempts: Sequence[int] | None = None,
        labels: Tensor | None = None,
        guidance_scale: float = 1.0,
        guide: Any = None,
        alignment_guidance: float = 0.0,
        guidance_start: float = 0.5,
    ) -> Tensor:
        tries = [0] * len(batch) if attempts is None else attempts
        generators = [
            torch.Generator(device='cpu').manual_seed(sample_seed(seed, index, attempt))
            for index, attempt in zip(batch, tries, strict=True)
        ]
        shape = (len(batch), *self.latent_shape)
        device = self.unet.device
        latent = randn_tensor(
            shape, generator=generators, device=device, dtype=self.unet.dtype
        )
        latent = latent * self.scheduler.init_noise_sigma
        if labels is not None:
            labels = labels.to(device, self.unet.dtype)
            if not bool(labels[:, -1].any()) or guidance_scale == 0:
                # Null condition or no guidance: the unconditional branch alone.
                labels, guidance_scale = null_conditions(labels), 1.0
        self.scheduler.set_timesteps(steps, device=device)
        timesteps = self.scheduler.timesteps
        guided = 0
        if guide is not None and alignment_guidance > 0:
            guided = guided_step_count(len(timesteps), guidance_start)
        for position, t in enumerate(timesteps):
            model_input = self.scheduler.scale_model_input(latent, t)
            model_output = self._predict(model_input, t, labels, guidance_scale)
            if position >= len(timesteps) - guided:
                model_output = guided_output(
                    model_output,
                    latent,
                    t,
                    self.scheduler,
                    self.vae.autoencoder,
                    guide,
                    alignment_guidance,
                )
            latent = self.scheduler.step(
                model_output, t, latent, generator=generators
            ).prev_sample
        return latent

    def _predict(
        self, sample: Tensor, t: Tensor, labels: Tensor | None, guidance_scale: float
    ) -> Tensor:
        """One U-Net prediction, with classifier-free guidance when asked.

        Args:
            sample: the scaled model input.
            t: the timestep.
            labels: flagged condition labels, or None for an unconditional U-Net.
            guidance_scale: the guidance scale (1: the given labels' branch only).

        Returns:
            the (guided) model output.
        """
        if labels is None:
            return self.unet(sample, t).sample
        if guidance_scale == 1:
            return self.unet(sample, t, class_labels=labels).sample
        both = self.unet(
            torch.cat([sample, sample]),
            t,
            class_labels=torch.cat([null_conditions(labels), labels]),
        ).sample
        uncond, cond = both.chunk(2)
        return uncond + guidance_scale * (cond - uncond)

    def decode(self, latent: Tensor) -> tuple[Tensor, Tensor]:
        """Decode scaled joint latents into images (native units) and labels.

        Args:
            latent: scaled joint latents.

        Returns:
            images and masks in the dataset's sample layout.
        """
        image, labels = self.vae.decode(latent.to(self.vae.dtype))
        if image.ndim == 5:
            labels = labels.unsqueeze(1)
        return image.float(), labels

    def _decode_refined(
        self,
        latent: Tensor,
        guide: Any,
        mode: RefineMode,
        confidence: float,
        ignore_index: int | None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Decode latents like :meth:`decode`, then refine the masks with the guide.

        Args:
            latent: scaled joint latents.
            guide: the downstream model.
            mode: 'ignore' or 'relabel'.
            confidence: the guide's smallest probability that changes a pixel.
            ignore_index: the label 'ignore' writes.

        Returns:
            images, refined masks and the share of each mask's pixels changed.
        """
        normalised, logits = self.vae.autoencoder.decode_joint(
            latent.to(self.vae.dtype)
        )
        dtype = next(guide.parameters()).dtype
        probabilities = class_probabilities(
            guide(guide_input(normalised, guide).to(dtype)).float()
        )
        labels, share = refine_mask(
            logits.argmax(dim=1), probabilities, mode, confidence, ignore_index
        )
        image = self.vae.denormalize(normalised)
        if image.ndim == 5:
            labels = labels.unsqueeze(1)
        return image.float(), labels, share
