"""Generation: SpecDMPipeline, the denoise-and-decode loop, requests and conditions."""

from .loop import DrawnPair, draw_pairs, sample_blocks
from .pipeline import (
    DEFAULT_STEPS,
    SAMPLERS,
    Sampler,
    SpecDMPipeline,
    SpecDMPipelineOutput,
    make_scheduler,
    sample_seed,
)
from .request import OnMiss, SamplePlan, make_plan

__all__ = (
    'DEFAULT_STEPS',
    'SAMPLERS',
    'DrawnPair',
    'OnMiss',
    'SamplePlan',
    'Sampler',
    'SpecDMPipeline',
    'SpecDMPipelineOutput',
    'draw_pairs',
    'make_plan',
    'make_scheduler',
    'sample_blocks',
    'sample_seed',
)
