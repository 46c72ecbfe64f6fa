"""Datasets of torchgeo-specdm: real loaders, the scene simulator and generated data."""

from .hyperspectral import HyperspectralScene
from .indian_pines import IndianPines
from .pavia import PaviaU
from .salinas import SalinasA
from .segmunich import SegMunich
from .simulated import SimulatedChange, SimulatedSegmentation
from .synthetic import SyntheticDataset
from .validation import InvalidInputError

__all__ = (
    'HyperspectralScene',
    'IndianPines',
    'InvalidInputError',
    'PaviaU',
    'SalinasA',
    'SegMunich',
    'SimulatedChange',
    'SimulatedSegmentation',
    'SyntheticDataset',
)
