"""Sample requests: which classes or change fraction each generated pair should hold."""

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from ..datasets.validation import InvalidInputError
from .conditions import ConditionKind, class_fractions

OnMiss = Literal['flag', 'redraw']


def _normalise_name(name: str) -> str:
    """Case-, space- and underscore-insensitive form of a class name.

    Args:
        name: a class name as typed or as stored.

    Returns:
        its lower-case form with runs of spaces, underscores and hyphens as one space.
    """
    return re.sub(r'[\s_-]+', ' ', name).strip().lower()


def parse_classes(text: str, class_names: Sequence[str]) -> list[int]:
    """Class indices from a comma-separated list of class names.

    Names match case-insensitively, with spaces, underscores and hyphens
    equivalent (``mine_dump`` matches 'Mine dump'); a name that is the start of
    exactly one class name also matches it (``wetland`` matches 'Wetlands').

    Args:
        text: e.g. ``'wetlands,surface_water'``.
        class_names: the model's class names, in label order.

    Returns:
        the class indices, in the order given, without repeats.

    Raises:
        InvalidInputError: for an empty list or a name that is not a class.
    """
    lookup = {_normalise_name(name): index for index, name in enumerate(class_names)}
    valid = ', '.join(name.replace(' ', '_') for name in class_names)
    names = [part for part in text.split(',') if part.strip()]
    if not names:
        raise InvalidInputError(
            f'--classes {text!r}: name at least one class. Valid names: {valid}.'
        )
    indices: list[int] = []
    for name in names:
        key = _normalise_name(name)
        index = lookup.get(key)
        if index is None and key:
            starts = [i for full, i in lookup.items() if full.startswith(key)]
            if len(starts) > 1:
                shown = ', '.join(class_names[i].replace(' ', '_') for i in starts)
                raise InvalidInputError(
                    f'--classes: {name.strip()!r} could be any of {shown}. Give more '
                    'of the name.'
                )
            index = starts[0] if starts else None
        if index is None:
            raise InvalidInputError(
                f'--classes: {name.strip()!r} is not a class of this model. Valid '
                f'names (case-insensitive, spaces or underscores): {valid}.'
            )
        if index not in indices:
            indices.append(index)
    return indices


def check_fraction(value: float, argument: str) -> float:
    """Check that a fraction lies in [0, 1].

    Args:
        value: the fraction.
        argument: the option it came from, for the message.

    Returns:
        the fraction.

    Raises:
        InvalidInputError: if it is outside [0, 1] or not a number.
    """
    if not 0 <= value <= 1:
        raise InvalidInputError(
            f'{argument} {value}: a fraction of pixels must lie in [0, 1] (e.g. 0.05 '
            'for 5 %).'
        )
    return float(value)


def parse_fraction_range(
    text: str, argument: str = '--change-fraction'
) -> tuple[float, float]:
    """Parse a ``LO:HI`` range of pixel fractions.

    Args:
        text: e.g. ``'0.1:0.2'``.
        argument: the option it came from, for the message.

    Returns:
        (lo, hi), with 0 <= lo <= hi <= 1.

    Raises:
        InvalidInputError: if the text is not two numbers separated by ':', a bound
            is outside [0, 1], or lo > hi.
    """
    parts = text.split(':')
    try:
        if len(parts) != 2:
            raise ValueError
        lo, hi = float(parts[0]), float(parts[1])
    except ValueError:
        raise InvalidInputError(
            f'{argument} {text!r}: give a range LO:HI of pixel fractions, e.g. '
            '0.1:0.2 for 10-20 %.'
        ) from None
    check_fraction(lo, argument)
    check_fraction(hi, argument)
    if lo > hi:
        raise InvalidInputError(
            f'{argument} {text!r}: the lower bound {lo} exceeds the upper bound {hi}. '
            'Give LO:HI with LO <= HI.'
        )
    return lo, hi


def rebalance_targets(
    counts: Sequence[float], num_samples: int, candidates: Sequence[int]
) -> list[int]:
    """Target class of each sample, evening out the per-class image counts.

    Water-filling: each sample in turn goes to the candidate class with the fewest
    images so far (real plus already assigned; ties go to the lower index), which
    brings real + synthetic counts as close to uniform as ``num_samples`` allows.

    Args:
        counts: [K] number of real training images that contain each class.
        num_samples: synthetic samples to assign.
        candidates: the classes that may be targeted.

    Returns:
        the target class of samples 0 .. num_samples - 1.
    """
    totals = {k: float(counts[k]) for k in candidates}
    targets = []
    for _ in range(num_samples):
        chosen = min(candidates, key=lambda k: (totals[k], k))
        totals[chosen] += 1
        targets.append(chosen)
    return targets


@dataclass
class SamplePlan:
    """What each sample of a conditional generation run is asked to hold.

    Built by :func:`make_plan`. Per sample it gives the target (classes or a
    change-fraction range), the condition vector of each attempt and whether a
    generated mask meets the target.

    .. versionadded:: 0.1
    """

    #: the model's condition kind.
    kind: ConditionKind
    #: the model's class names.
    class_names: tuple[str, ...]
    #: [N, K] class fractions of the training masks (may be empty).
    training_fractions: Tensor
    #: classes every sample must contain (unless ``rebalance`` sets them).
    classes: tuple[int, ...] = ()
    #: smallest share of each target class.
    min_fraction: float = 0.0
    #: (lo, hi) range of the changed-pixel fraction.
    change_fraction: tuple[float, float] | None = None
    #: per-sample target class chosen by rebalancing.
    rebalanced: tuple[int, ...] = ()
    #: what to do with a sample that misses its target.
    on_miss: OnMiss = 'flag'
    #: draws per sample at most (with 'redraw').
    max_attempts: int = 4
    #: the request as recorded in the manifest.
    record: dict[str, Any] = field(default_factory=dict)

    def targets(self, index: int) -> tuple[int, ...]:
        """The classes sample ``index`` must contain.

        Args:
            index: sample index.

        Returns:
            class indices (empty for change-fraction requests).
        """
        if self.rebalanced:
            return (self.rebalanced[index],)
        return self.classes

    def target_record(self, index: int) -> dict[str, Any]:
        """The target of sample ``index``, as stored in the manifest.

        Args:
            index: sample index.

        Returns:
            ``{'classes': [...], 'min_fraction': m}`` or
            ``{'change_fraction': [lo, hi]}``.
        """
        if self.change_fraction is not None:
            return {'change_fraction': list(self.change_fraction)}
        names = [self.class_names[k] for k in self.targets(index)]
        return {'classes': names, 'min_fraction': self.min_fraction}

    def condition(self, seed: int, index: int, attempt: int) -> Tensor:
        """Condition values for one attempt at one sample.

        Change fractions are drawn uniformly from the middle half of the requested
        range. For class targets, a training mask's condition is drawn among
        those that already meet the target (or, failing that, contain the
        classes), so the other classes keep a realistic mix; where no training
        mask qualifies, the target classes are raised to the target share and
        the others scaled down.

        Args:
            seed: the run seed.
            index: sample index.
            attempt: redraw number.

        Returns:
            [D] condition values.
        """
        rng = np.random.default_rng([seed, index, attempt, 0x5EC])
        if self.change_fraction is not None:
            lo, hi = self.change_fraction
            quarter = (hi - lo) / 4
            return torch.tensor([rng.uniform(lo + quarter, hi - quarter)])
        targets = list(self.targets(index))
        bank = self.training_fractions
        if not len(bank):
            bank = torch.full((1, len(self.class_names)), 1 / len(self.class_names))
        floor = max(self.min_fraction, 1e-12)
        rows = torch.ones(len(bank), dtype=torch.bool)
        for tier in ((bank[:, targets] >= floor).all(1), (bank[:, targets] > 0).all(1)):
            if bool(tier.any()):
                rows = tier
                break
        choices = torch.nonzero(rows).flatten()
        row = bank[int(choices[rng.integers(len(choices))])].clone().double()
        if self.kind == 'class_presence':
            row = (row > 0).double()
            row[targets] = 1
            return row.float()
        if bool((row[targets] >= floor).all()):
            return row.float()
        share = min(max(1.5 * self.min_fraction, 1 / len(row)), 0.9 / len(targets))
        raised = torch.clamp(row[targets], min=share)
        others = torch.ones(len(row), dtype=torch.bool)
        others[targets] = False
        rest = 1 - float(raised.sum())
        total = float(row[others].sum())
        if total > 0:
            row[others] = row[others] * rest / total
        else:
            row[others] = rest / max(int(others.sum()), 1)
        row[targets] = raised
        return row.float()

    def meets(self, mask: Tensor, index: int) -> bool:
        """Tell whether a generated mask meets sample ``index``'s target.

        Args:
            mask: the generated mask, [H, W] or [1, H, W].
            index: sample index.

        Returns:
            True when every target class covers at least ``min_fraction`` of the
            pixels (and at least one pixel), or the changed-pixel fraction lies in
            the requested range.
        """
        fractions = class_fractions(mask[None], len(self.class_names))[0]
        if self.change_fraction is not None:
            lo, hi = self.change_fraction
            return bool(lo <= float(fractions[1]) <= hi)
        return all(
            float(fractions[k]) > 0 and float(fractions[k]) >= self.min_fraction
            for k in self.targets(index)
        )


def make_plan(
    kind: ConditionKind,
    class_names: Sequence[str],
    training_fractions: Tensor | None,
    num_samples: int,
    guidance_scale: float,
    classes: str | None = None,
    min_fraction: float | None = None,
    change_fraction: str | None = None,
    rebalance: bool = False,
    on_miss: OnMiss = 'flag',
    max_attempts: int = 4,
) -> SamplePlan | None:
    """Check a sampling request against a model and plan the run.

    Args:
        kind: the model's condition kind.
        class_names: the model's class names.
        training_fractions: [N, K] class fractions of its training masks.
        num_samples: samples in the run.
        guidance_scale: classifier-free guidance scale.
        classes: ``--classes``: comma-separated class names every sample must
            contain (with ``rebalance``: the classes to rebalance).
        min_fraction: ``--min-fraction``: smallest share of each target class
            (default: any pixel).
        change_fraction: ``--change-fraction``: ``LO:HI`` range of changed pixels.
        rebalance: ``--rebalance``: one target class per sample, chosen so that
            real + synthetic image counts per class are as even as possible.
        on_miss: 'flag' (keep and mark a sample that misses) or 'redraw'.
        max_attempts: draws per sample at most with 'redraw'.

    Returns:
        the plan, or None for an unconditional run (no request).

    Raises:
        InvalidInputError: for a request that is malformed or that the model
            cannot honour.
    """
    if on_miss not in ('flag', 'redraw'):
        raise InvalidInputError(f'--on-miss {on_miss!r}: choose flag or redraw.')
    if max_attempts < 1:
        raise InvalidInputError(f'--max-attempts {max_attempts}: must be at least 1.')
    if not guidance_scale >= 0 or guidance_scale == float('inf'):
        raise InvalidInputError(
            f'--guidance-scale {guidance_scale}: must be a finite number >= 0 (0: '
            'unconditional, 1: conditional, above 1: guided).'
        )
    if min_fraction is not None:
        check_fraction(min_fraction, '--min-fraction')
    requested = classes is not None or rebalance
    if change_fraction is not None and requested:
        raise InvalidInputError(
            '--change-fraction cannot be combined with --classes or --rebalance: ask '
            'for a changed-pixel range or for classes, not both.'
        )
    if not requested and change_fraction is None:
        if min_fraction is not None:
            raise InvalidInputError(
                '--min-fraction needs --classes or --rebalance: name the classes it '
                'applies to.'
            )
        if guidance_scale != 1:
            raise InvalidInputError(
                f'--guidance-scale {guidance_scale} needs a request: add --classes, '
                '--change-fraction or --rebalance (without one, sampling is '
                'unconditional).'
            )
        return None
    if kind == 'none':
        raise InvalidInputError(
            'this checkpoint was trained without conditions (LatentDiffusion '
            "condition='none'), so it cannot honour --classes, --change-fraction or "
            '--rebalance. Train with --model.init_args.condition class_fraction, '
            'class_presence or change_fraction.'
        )
    names = tuple(class_names)
    fractions = (
        torch.zeros(0, len(names)) if training_fractions is None else training_fractions
    )
    record: dict[str, Any] = {
        'condition': kind,
        'classes': None,
        'min_fraction': min_fraction,
        'change_fraction': None,
        'rebalance': rebalance,
        'on_miss': on_miss,
        'max_attempts': max_attempts,
    }
    plan = SamplePlan(
        kind=kind,
        class_names=names,
        training_fractions=fractions.float().cpu(),
        on_miss=on_miss,
        max_attempts=max_attempts,
        record=record,
    )
    if change_fraction is not None:
        if kind != 'change_fraction':
            raise InvalidInputError(
                f'--change-fraction: this checkpoint is conditioned on {kind}, not on '
                'the changed-pixel fraction. Use --classes, or a model trained with '
                'condition=change_fraction.'
            )
        plan.change_fraction = parse_fraction_range(change_fraction)
        record['change_fraction'] = list(plan.change_fraction)
        return plan
    if kind == 'change_fraction':
        raise InvalidInputError(
            '--classes/--rebalance: this checkpoint is conditioned on the '
            'changed-pixel fraction. Use --change-fraction LO:HI instead.'
        )
    plan.min_fraction = 0.0 if min_fraction is None else float(min_fraction)
    record['min_fraction'] = plan.min_fraction
    chosen = (
        parse_classes(classes, names)
        if classes is not None
        else list(range(len(names)))
    )
    record['classes'] = [names[k] for k in chosen]
    if not rebalance:
        plan.classes = tuple(chosen)
        return plan
    if not len(fractions):
        raise InvalidInputError(
            '--rebalance: this checkpoint stores no training class histogram. Train '
            'the conditional model with this version of torchgeo_specdm.'
        )
    floor = max(plan.min_fraction, 1e-12)
    counts = ((fractions >= floor) & (fractions > 0)).sum(0).tolist()
    plan.rebalanced = tuple(rebalance_targets(counts, num_samples, chosen))
    record['num_samples'] = num_samples
    record['training_class_images'] = counts
    record['training_class_histogram'] = fractions.mean(0).tolist()
    return plan
