"""Condition vectors computed from masks, and the U-Net layer that embeds them."""

from typing import Literal

import torch
from torch import Tensor, nn

from ..datasets.validation import InvalidInputError

#: What a conditional LatentDiffusion model is told about each mask.
ConditionKind = Literal['none', 'class_fraction', 'class_presence', 'change_fraction']
CONDITION_KINDS: tuple[str, ...] = (
    'none',
    'class_fraction',
    'class_presence',
    'change_fraction',
)


def condition_size(kind: ConditionKind, num_classes: int) -> int:
    """Number of condition values (without the 'is conditioned' flag).

    Args:
        kind: the condition kind.
        num_classes: classes of the masks.

    Returns:
        ``num_classes`` for class fractions or presence, 1 for the changed-pixel
        fraction, 0 for 'none'.

    Raises:
        InvalidInputError: for an unknown kind.
    """
    if kind == 'none':
        return 0
    if kind in ('class_fraction', 'class_presence'):
        return num_classes
    if kind == 'change_fraction':
        return 1
    raise InvalidInputError(
        f'condition={kind!r} is unknown: choose one of {", ".join(CONDITION_KINDS)}.'
    )


def class_fractions(mask: Tensor, num_classes: int) -> Tensor:
    """Share of each class in each mask.

    Labels outside ``[0, num_classes)`` (ignore values) are not counted; a mask
    with no valid pixel gets all-zero fractions.

    Args:
        mask: integer masks, [B, H, W] or [B, 1, H, W] (any trailing shape).
        num_classes: number of classes.

    Returns:
        float32 fractions, [B, num_classes]; each row sums to 1 (or 0).
    """
    labels = mask.reshape(mask.shape[0], -1).long()
    valid = (labels >= 0) & (labels < num_classes)
    one_hot = torch.zeros(
        labels.shape[0], num_classes + 1, dtype=torch.float32, device=mask.device
    )
    one_hot.scatter_add_(
        1,
        torch.where(valid, labels, num_classes),
        torch.ones_like(labels, dtype=torch.float32),
    )
    counts = one_hot[:, :num_classes]
    return counts / counts.sum(dim=1, keepdim=True).clamp(min=1)


def conditions_from_fractions(fractions: Tensor, kind: ConditionKind) -> Tensor:
    """Condition values from per-mask class fractions.

    Args:
        fractions: [B, K] class fractions (see :func:`class_fractions`).
        kind: 'class_fraction' (the fractions), 'class_presence' (1 where a class
            has any pixel, else 0) or 'change_fraction' (the share of class 1,
            changed pixels; needs K = 2).

    Returns:
        [B, D] float32 condition values, D from :func:`condition_size`.

    Raises:
        InvalidInputError: for 'none', an unknown kind, or 'change_fraction' with
            masks that are not binary change masks.
    """
    if kind == 'class_fraction':
        return fractions.float()
    if kind == 'class_presence':
        return (fractions > 0).float()
    if kind == 'change_fraction':
        if fractions.shape[1] != 2:
            raise InvalidInputError(
                f"condition='change_fraction' needs binary change masks (2 classes), "
                f'got {fractions.shape[1]} classes. Use class_fraction or '
                'class_presence for segmentation data.'
            )
        return fractions[:, 1:].float()
    raise InvalidInputError(
        f'condition={kind!r}: no condition values to compute. Choose one of '
        'class_fraction, class_presence or change_fraction.'
    )


def mask_conditions(mask: Tensor, kind: ConditionKind, num_classes: int) -> Tensor:
    """Condition values of a batch of masks.

    Args:
        mask: integer masks, [B, H, W] or [B, 1, H, W].
        kind: 'class_fraction', 'class_presence' or 'change_fraction'.
        num_classes: number of classes.

    Returns:
        [B, D] float32 condition values.
    """
    return conditions_from_fractions(class_fractions(mask, num_classes), kind)


def flag_conditions(values: Tensor) -> Tensor:
    """Append the 'is conditioned' flag (1) to condition values.

    The null condition is all zeros, flag included, so it differs from a real
    condition whose values are all zero (e.g. no changed pixel).

    Args:
        values: [B, D] condition values.

    Returns:
        [B, D + 1] U-Net class labels.
    """
    return torch.cat([values, torch.ones_like(values[:, :1])], dim=1)


def null_conditions(like: Tensor) -> Tensor:
    """The null (unconditional) labels for a batch of flagged conditions.

    Args:
        like: [B, D + 1] flagged conditions.

    Returns:
        zeros of the same shape.
    """
    return torch.zeros_like(like)


def drop_conditions(
    labels: Tensor, probability: float, generator: torch.Generator | None = None
) -> Tensor:
    """Replace each flagged condition by the null one with a given probability.

    Args:
        labels: [B, D + 1] flagged conditions.
        probability: chance of dropping each row.
        generator: random generator (default: the global one).

    Returns:
        the labels with dropped rows zeroed.
    """
    if probability <= 0:
        return labels
    keep = torch.rand(labels.shape[0], generator=generator) >= probability
    return labels * keep.to(labels.device, labels.dtype)[:, None]


class ConditionEmbedding(nn.Module):
    """Embed flagged condition vectors into the U-Net's time-embedding space.

    Installed as the ``class_embedding`` of a diffusers ``UNet2DModel`` built with
    ``class_embed_type='identity'``: the U-Net adds its output to the timestep
    embedding. The output layer starts at zero, so a fresh embedding leaves the
    U-Net's prediction unchanged.

    .. versionadded:: 0.1
    """

    def __init__(self, num_values: int, embedding_dim: int) -> None:
        """Initialize a new ConditionEmbedding instance.

        Args:
            num_values: condition values D (the input has D + 1 entries with the
                flag).
            embedding_dim: the U-Net's time-embedding width.
        """
        super().__init__()
        self.num_values = num_values
        self.linear_1 = nn.Linear(num_values + 1, embedding_dim)
        self.act = nn.SiLU()
        self.linear_2 = nn.Linear(embedding_dim, embedding_dim)
        nn.init.zeros_(self.linear_2.weight)
        nn.init.zeros_(self.linear_2.bias)

    def forward(self, labels: Tensor) -> Tensor:
        """Embed flagged conditions.

        Args:
            labels: [B, D + 1] flagged conditions.

        Returns:
            [B, embedding_dim] embeddings.
        """
        hidden = self.linear_1(labels.to(self.linear_1.weight.dtype))
        return self.linear_2(self.act(hidden))
