"""The denoise-and-decode loop: fixed sample batches, drawn pairs and redraws."""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .guidance import GuideSettings
from .pipeline import SpecDMPipeline, SpecDMPipelineOutput
from .request import SamplePlan


def sample_blocks(
    num_samples: int, batch_size: int, done: set[int] | frozenset[int] = frozenset()
) -> list[list[int]]:
    """The fixed batches of a run that still hold unfinished samples.

    Sample i is always denoised in batch ``i // batch_size``, with the same
    neighbours at the same positions, whichever process runs the batch and
    whichever of its samples an earlier run finished: with per-sample
    conditions, CPU results can depend on a sample's place in its batch.

    Args:
        num_samples: samples in the run.
        batch_size: pairs denoised at once.
        done: finished sample indices.

    Returns:
        the index blocks to generate.
    """
    blocks = [
        list(range(start, min(start + batch_size, num_samples)))
        for start in range(0, num_samples, batch_size)
    ]
    return [block for block in blocks if not set(block) <= done]


@dataclass
class DrawnPair:
    """One generated pair, with the attempt that produced it.

    .. versionadded:: 0.1
    """

    #: sample index.
    index: int
    #: its image(s), in native units.
    image: Tensor
    #: its mask.
    mask: Tensor
    #: the redraw number that produced it (0: the first draw).
    attempt: int = 0
    #: whether it meets its request (None without a request).
    meets: bool | None = None
    #: share of its mask's pixels that refinement changed (None without).
    refined_share: float | None = None


def draw_pairs(
    pipeline: SpecDMPipeline,
    indices: Sequence[int],
    seed: int,
    steps: int,
    batch_size: int,
    guidance_scale: float = 1.0,
    plan: SamplePlan | None = None,
    guidance: GuideSettings | None = None,
) -> list[DrawnPair]:
    """Generate the pairs of some sample indices, redrawing misses if the plan says so.

    Without a plan this is one unconditional pipeline call. With one, each sample
    is conditioned on its target and checked against it; with
    ``on_miss='redraw'`` a miss is sampled again from the seed of (seed, index,
    attempt), up to ``max_attempts`` draws, and the last draw is kept (flagged if
    it still misses). Every call pads its batches to ``batch_size``, so pair i is
    the same whatever the other indices.

    Args:
        pipeline: the sampling pipeline.
        indices: sample indices.
        seed: the run seed.
        steps: denoising steps.
        batch_size: pairs denoised at once.
        guidance_scale: classifier-free guidance scale (with a plan).
        plan: the request plan, or None for unconditional sampling.
        guidance: the guide, for alignment guidance and mask refinement (the
            request check sees the refined mask, the one that is written).

    Returns:
        one pair per index, in the order given.
    """
    attempts = {index: 0 for index in indices}
    drawn: dict[int, DrawnPair] = {}
    pending = list(indices)
    while pending:
        condition = None
        if plan is not None:
            condition = torch.stack(
                [plan.condition(seed, i, attempts[i]) for i in pending]
            )
        output = pipeline(
            indices=pending,
            attempts=[attempts[i] for i in pending],
            batch_size=batch_size,
            seed=seed,
            num_inference_steps=steps,
            pad_batches=True,
            condition=condition,
            guidance_scale=guidance_scale if plan is not None else 1.0,
            **(guidance.pipeline_kwargs() if guidance is not None else {}),
        )
        assert isinstance(output, SpecDMPipelineOutput)
        retry = []
        for position, index in enumerate(pending):
            mask = output.mask[position]
            meets = None if plan is None else plan.meets(mask, index)
            share = None
            if output.refined_share is not None:
                share = float(output.refined_share[position])
            drawn[index] = DrawnPair(
                index, output.image[position], mask, attempts[index], meets, share
            )
            if (
                plan is not None
                and not meets
                and plan.on_miss == 'redraw'
                and attempts[index] + 1 < plan.max_attempts
            ):
                attempts[index] += 1
                retry.append(index)
        pending = retry
    return [drawn[index] for index in indices]
