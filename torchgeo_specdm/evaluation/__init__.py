"""Evaluation: the fidelity report and the judges (real-trained downstream models)."""

from .judges import load_downstream, score_downstream, train_downstream
from .report import evaluate_synthetic, summary_lines

__all__ = (
    'evaluate_synthetic',
    'load_downstream',
    'score_downstream',
    'summary_lines',
    'train_downstream',
)
