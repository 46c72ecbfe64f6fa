"""Generation: SpecDMPipeline, the denoise-and-decode loop, requests and conditions."""

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
    'OnMiss',
    'SamplePlan',
    'Sampler',
    'SpecDMPipeline',
    'SpecDMPipelineOutput',
    'make_plan',
    'make_scheduler',
    'sample_seed',
)
