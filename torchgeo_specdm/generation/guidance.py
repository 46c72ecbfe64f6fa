"""Alignment guidance: steer sampled latents so the decoded mask agrees with a guide."""

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..datasets.validation import InvalidInputError
from .refine import RefineMode

#: Latent RMS that one guided step with scale 1 moves each sample's predicted
#: clean latent by.
STEP_SIZE = 0.1


@dataclass
class GuideSettings:
    """A guide model and how sampling uses it (the guide arguments of the pipeline).

    .. versionadded:: 0.2
    """

    #: the downstream model: frozen, in eval mode, on the sampling device.
    guide: Any
    #: alignment-guidance scale S (0: off).
    alignment_guidance: float = 0.0
    #: guided share of the last denoising steps.
    guidance_start: float = 0.5
    #: refinement of the decoded masks: 'ignore', 'relabel' or None.
    refine: RefineMode | None = None
    #: the guide's smallest probability that changes a pixel.
    refine_confidence: float = 0.9
    #: the label 'ignore' writes.
    ignore_index: int | None = None
    #: change guides: the change probability read as even odds (None: 0.5, as
    #: trained); recorded in the manifest, applied by :class:`ThresholdedChangeGuide`.
    guide_threshold: float | None = None

    def pipeline_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :class:`SpecDMPipeline` these settings set.

        Returns:
            guide, alignment_guidance, guidance_start, refine, refine_confidence
            and ignore_index.
        """
        return {
            'guide': self.guide,
            'alignment_guidance': self.alignment_guidance,
            'guidance_start': self.guidance_start,
            'refine': self.refine,
            'refine_confidence': self.refine_confidence,
            'ignore_index': self.ignore_index,
        }


class ThresholdedChangeGuide(nn.Module):
    """A binary change guide whose decision threshold reads as even odds.

    A change detector calibrated on validation data often takes a threshold far
    from 0.5 (a rare class: 0.05, say). Guidance and refinement read its sigmoid as
    the probability of change, so such a guide disputes every generated change
    pixel. This wrapper shifts the change logit by ``-logit(threshold)``: the
    guide's probability ``threshold`` becomes 0.5, and its decisions at that
    threshold become the argmax that guidance and refinement use.

    .. versionadded:: 0.2
    """

    def __init__(self, guide: nn.Module, threshold: float) -> None:
        """Initialize a new ThresholdedChangeGuide instance.

        Args:
            guide: a binary change detector, [B, 1, H, W] logits.
            threshold: its change probability that is to read as even odds.

        Raises:
            InvalidInputError: for a threshold outside (0, 1).
        """
        super().__init__()
        if not 0 < threshold < 1:
            raise InvalidInputError(
                f'--guide-threshold {threshold}: must lie strictly between 0 and 1 '
                "(the guide's change probability that is to count as even odds)."
            )
        self.guide = guide
        self.threshold = threshold
        self.offset = math.log(threshold / (1 - threshold))
        # guide_input reads the detector's hyperparameters (early fusion or siamese).
        self.hparams = getattr(guide, 'hparams', {})

    def forward(self, x: Tensor) -> Tensor:
        """The guide's change logits, shifted by ``-logit(threshold)``.

        Args:
            x: the guide's input.

        Returns:
            [B, 1, H, W] logits whose sigmoid is 0.5 where the guide's is
            ``threshold``.
        """
        logits: Tensor = self.guide(x)
        return logits - self.offset


def guide_input(image: Tensor, task: Any = None) -> Tensor:
    """The input a downstream model takes.

    Early-fusion change detectors (TorchGeo's ``'unet'``) take the two dates of a
    pair stacked along the bands; siamese ones (``'fcsiamdiff'``, ``'fcsiamconc'``)
    take the dates apart.

    Args:
        image: normalised images, [B, C, H, W] or [B, 2, C, H, W].
        task: the downstream task; its ``model`` hyperparameter says which input
            it takes (default: early fusion).

    Returns:
        [B, C, H, W], [B, 2C, H, W] or, for a siamese detector, the pairs as given.
    """
    if image.ndim != 5 or is_siamese(task):
        return image
    return rearrange(image, 'b t c h w -> b (t c) h w')


def is_siamese(task: Any) -> bool:
    """Whether a downstream task's model encodes the two dates of a pair apart."""
    hparams = getattr(task, 'hparams', {})
    return str(hparams.get('model', '')).startswith('fcsiam')


def class_probabilities(logits: Tensor) -> Tensor:
    """Class probabilities of a downstream model's logits.

    Args:
        logits: [B, K, H, W] segmentation logits, or [B, 1, H, W] change logits.

    Returns:
        [B, K, H, W] probabilities; for change, the two classes
        [1 - p, p] with p the sigmoid of the change logit.
    """
    if logits.shape[1] == 1:
        change = logits.sigmoid()
        return torch.cat([1 - change, change], dim=1)
    return logits.softmax(dim=1)


def consistency_loss(guide_logits: Tensor, mask_logits: Tensor) -> Tensor:
    """Cross-entropy of the decoded mask against the guide's class distribution.

    ``-(q * log_softmax(mask_logits)).sum(1).mean()`` with q the guide's class
    probabilities (see :func:`class_probabilities`); both inputs stay
    differentiable.

    Args:
        guide_logits: the guide's logits on the decoded image, [B, K, H, W] or
            [B, 1, H, W] (change).
        mask_logits: the decoded mask logits, [B, K, H, W].

    Returns:
        the mean loss over samples and pixels.
    """
    target = class_probabilities(guide_logits)
    return -(target * F.log_softmax(mask_logits, dim=1)).sum(1).mean()


def guided_step_count(steps: int, start: float) -> int:
    """How many of the last denoising steps alignment guidance acts on.

    Args:
        steps: denoising steps of the run.
        start: guided share of the steps, in [0, 1].

    Returns:
        ``ceil(start * steps)``: the last steps, the least noisy ones, are guided.
    """
    return math.ceil(round(start * steps, 9))


def check_guidance(
    alignment_guidance: float, guidance_start: float, has_guide: bool
) -> None:
    """Check the alignment-guidance settings.

    Args:
        alignment_guidance: the guidance scale.
        guidance_start: guided share of the steps.
        has_guide: whether a guide is given.

    Raises:
        InvalidInputError: for a negative or non-finite scale, a share outside
            [0, 1], or a positive scale without a guide.
    """
    if not math.isfinite(alignment_guidance) or alignment_guidance < 0:
        raise InvalidInputError(
            f'--alignment-guidance {alignment_guidance}: must be a finite number >= 0 '
            '(0: off; 1 moves each predicted clean latent by 0.1 of its RMS per '
            'guided step).'
        )
    if not 0 <= guidance_start <= 1:
        raise InvalidInputError(
            f'--guidance-start {guidance_start}: must lie in [0, 1], the share of the '
            'last denoising steps that are guided (default 0.5).'
        )
    if alignment_guidance > 0 and not has_guide:
        raise InvalidInputError(
            f'--alignment-guidance {alignment_guidance} needs a guide: pass --guide '
            'CKPT (a SemanticSegmentation or ChangeDetection checkpoint trained on '
            'the real data), or set --alignment-guidance 0.'
        )


def _coefficients(scheduler: Any, t: Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
    """sqrt(abar_t) and sqrt(1 - abar_t) of the scheduler at timestep t."""
    alpha_bar = scheduler.alphas_cumprod[int(t)].to(like.device, torch.float64)
    return alpha_bar.sqrt().float(), (1 - alpha_bar).sqrt().float()


def predicted_clean(
    model_output: Tensor, sample: Tensor, t: Tensor, scheduler: Any
) -> Tensor:
    """The clean latent x0 a model output predicts from the noisy latent x_t.

    Args:
        model_output: the U-Net's (guided) prediction.
        sample: x_t.
        t: the timestep.
        scheduler: the scheduler (its ``alphas_cumprod`` and ``prediction_type``).

    Returns:
        x0, in float32.

    Raises:
        InvalidInputError: for a prediction type other than 'epsilon' and
            'v_prediction'.
    """
    a, s = _coefficients(scheduler, t, sample)
    output, x_t = model_output.float(), sample.float()
    kind = scheduler.config['prediction_type']
    if kind == 'v_prediction':
        return a * x_t - s * output
    if kind == 'epsilon':
        return (x_t - s * output) / a
    raise InvalidInputError(
        f'prediction_type={kind!r}: alignment guidance needs an epsilon or '
        'v_prediction model.'
    )


def model_output_from_clean(
    clean: Tensor, sample: Tensor, t: Tensor, scheduler: Any
) -> Tensor:
    """The model output of the scheduler's prediction type that predicts x0 from x_t.

    Args:
        clean: the clean latent x0.
        sample: x_t.
        t: the timestep.
        scheduler: the scheduler.

    Returns:
        eps = (x_t - sqrt(abar) x0) / sqrt(1 - abar), or for v-prediction
        v = sqrt(abar) eps - sqrt(1 - abar) x0.
    """
    a, s = _coefficients(scheduler, t, sample)
    noise = (sample.float() - a * clean) / s
    if scheduler.config['prediction_type'] == 'v_prediction':
        return a * noise - s * clean
    return noise


def alignment_gradient(clean: Tensor, autoencoder: Any, guide: Any) -> Tensor:
    """Gradient of the consistency loss with respect to the clean latent.

    The latent is decoded with ``autoencoder.decode_joint``; the guide sees the
    decoded (normalised) image. The gradient reaches the image latent through the
    guide and the image decoder, and the mask latent through the mask decoder.

    Args:
        clean: predicted clean joint latents x0, [B, Cz, h, w].
        autoencoder: the VAE's joint autoencoder.
        guide: the downstream model (frozen, in eval mode).

    Returns:
        d loss / d x0, [B, Cz, h, w].
    """
    # Lightning predicts under inference mode: leave it for the gradient.
    with torch.inference_mode(False), torch.enable_grad():
        latent = clean.detach().clone().requires_grad_(True)
        dtype = next(autoencoder.parameters()).dtype
        image, mask_logits = autoencoder.decode_joint(latent.to(dtype))
        guide_logits = guide(guide_input(image, guide))
        loss = consistency_loss(guide_logits.float(), mask_logits.float())
        (gradient,) = torch.autograd.grad(loss, latent)
    return gradient.detach()


def guided_output(
    model_output: Tensor,
    sample: Tensor,
    t: Tensor,
    scheduler: Any,
    autoencoder: Any,
    guide: Any,
    scale: float,
) -> Tensor:
    """One alignment-guided model output, to give to ``scheduler.step``.

    The clean latent x0 predicted by ``model_output`` takes a normalised gradient
    step on the consistency loss, ``x0' = x0 - scale * 0.1 * g / rms(g)`` with
    the RMS per sample (so scale 1 moves each sample's x0 by 0.1 latent RMS), and
    x0' is turned back into a model output of the scheduler's prediction type for
    the same x_t. The U-Net is not differentiated.

    Args:
        model_output: the U-Net's (classifier-free guided) prediction.
        sample: the noisy latent x_t.
        t: the timestep.
        scheduler: the scheduler.
        autoencoder: the VAE's joint autoencoder.
        guide: the downstream model.
        scale: the alignment-guidance scale S.

    Returns:
        the guided model output, in the dtype of ``model_output``.
    """
    clean = predicted_clean(model_output, sample, t, scheduler)
    gradient = alignment_gradient(clean, autoencoder, guide).float()
    rms = gradient.pow(2).mean(dim=tuple(range(1, gradient.ndim)), keepdim=True)
    step = gradient / rms.sqrt().clamp_min(1e-12)
    clean = clean - scale * STEP_SIZE * step
    return model_output_from_clean(clean, sample, t, scheduler).to(model_output.dtype)
