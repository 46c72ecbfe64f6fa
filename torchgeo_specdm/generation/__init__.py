"""Generation: SpecDMPipeline, the denoise-and-decode loop, requests and conditions."""

from .guidance import GuideSettings, ThresholdedChangeGuide, consistency_loss
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
from .refine import RefineMode, refine_mask
from .request import OnMiss, SamplePlan, make_plan

__all__ = (
    'DEFAULT_STEPS',
    'SAMPLERS',
    'DrawnPair',
    'GuideSettings',
    'OnMiss',
    'RefineMode',
    'SamplePlan',
    'Sampler',
    'SpecDMPipeline',
    'SpecDMPipelineOutput',
    'ThresholdedChangeGuide',
    'consistency_loss',
    'draw_pairs',
    'make_plan',
    'make_scheduler',
    'refine_mask',
    'sample_blocks',
    'sample_seed',
)
