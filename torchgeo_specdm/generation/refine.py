"""Pixel-level refinement: mark or relabel mask pixels that a confident guide disputes."""

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from ..datasets.validation import InvalidInputError

RefineMode = Literal['ignore', 'relabel']

#: Class names taken for the unlabelled class when a guide names no ignore index.
UNLABELLED_NAMES = ('unlabelled', 'unlabeled')


def refine_mask(
    mask: Tensor,
    guide_probabilities: Tensor,
    mode: RefineMode,
    confidence: float,
    ignore_index: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Change the mask pixels where a confident guide predicts another class.

    A pixel is disputed when the guide's highest class probability is at least
    ``confidence`` and its class differs from the mask's. 'ignore' sets disputed
    pixels to ``ignore_index``; 'relabel' sets them to the guide's class.

    Args:
        mask: class indices, [N, H, W].
        guide_probabilities: the guide's class probabilities, [N, K, H, W].
        mode: 'ignore' or 'relabel'.
        confidence: smallest guide probability that disputes a pixel.
        ignore_index: label of ignored pixels ('ignore' only).

    Returns:
        the refined mask and, per sample, the share of its pixels that changed.

    Raises:
        InvalidInputError: for 'ignore' without an ignore index, or an unknown mode.
    """
    if mode not in ('ignore', 'relabel'):
        raise InvalidInputError(f'--refine {mode}: choose ignore or relabel.')
    top, label = guide_probabilities.max(dim=1)
    disputed = (top >= confidence) & (label != mask)
    if mode == 'relabel':
        value = label.to(mask.dtype)
    elif ignore_index is None:
        raise InvalidInputError(
            '--refine ignore: these masks have no ignore index. Use --refine relabel.'
        )
    else:
        value = torch.full_like(mask, ignore_index)
    refined = torch.where(disputed, value, mask)
    share = (refined != mask).flatten(1).float().mean(dim=1)
    return refined, share


def refine_ignore_index(
    guide_hparams: Mapping[str, Any], class_names: Sequence[str]
) -> int | None:
    """The label that ``--refine ignore`` writes for a segmentation model.

    Args:
        guide_hparams: the guide's hyperparameters.
        class_names: the diffusion model's class names.

    Returns:
        the guide's ``ignore_index`` (the datamodule's unlabelled class it was
        trained to ignore) or else the class named 'Unlabelled'; None if neither.
    """
    index = guide_hparams.get('ignore_index')
    if index is not None and 0 <= int(index) < len(class_names):
        return int(index)
    for position, name in enumerate(class_names):
        if name.strip().lower() in UNLABELLED_NAMES:
            return position
    return None


def check_refine(
    refine: str | None, confidence: float, has_guide: bool, ignore_index: int | None
) -> None:
    """Check the refinement settings.

    Args:
        refine: 'ignore', 'relabel' or None (no refinement).
        confidence: the guide's smallest probability that changes a pixel.
        has_guide: whether a guide is given.
        ignore_index: the label 'ignore' writes, or None if the masks have none.

    Raises:
        InvalidInputError: for an unknown mode, a confidence outside [0, 1],
            refinement without a guide, or 'ignore' without an ignore index.
    """
    if refine is None:
        return
    if refine not in ('ignore', 'relabel'):
        raise InvalidInputError(f'--refine {refine}: choose ignore or relabel.')
    if not 0 <= confidence <= 1:
        raise InvalidInputError(
            f'--refine-confidence {confidence}: must lie in [0, 1], the smallest '
            'guide probability that changes a pixel (default 0.9).'
        )
    if not has_guide:
        raise InvalidInputError(
            f'--refine {refine} needs a guide: pass --guide CKPT (a '
            'SemanticSegmentation or ChangeDetection checkpoint trained on the real '
            'data), or leave out --refine.'
        )
    if refine == 'ignore' and ignore_index is None:
        raise InvalidInputError(
            '--refine ignore: these masks have no ignore label (change masks are '
            '0/1; segmentation needs a guide trained with an ignore_index or a class '
            "named 'Unlabelled'). Use --refine relabel."
        )
