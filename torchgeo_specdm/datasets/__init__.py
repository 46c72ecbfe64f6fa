"""Datasets of torchgeo-specdm: real loaders, the scene simulator and generated data."""

from .segmunich import SegMunich
from .simulated import SimulatedChange, SimulatedSegmentation
from .synthetic import SyntheticDataset
from .validation import InvalidInputError

__all__ = (
    'InvalidInputError',
    'SegMunich',
    'SimulatedChange',
    'SimulatedSegmentation',
    'SyntheticDataset',
)
