"""Metrics: pure functions over numpy arrays (no I/O, no models)."""

from alignlab.metrics.bias import (
    CONTEXTS,
    accuracy,
    bbq_metrics,
    bias_counts,
    bias_score_ambig,
    bias_score_disambig,
)
from alignlab.metrics.bootstrap import Estimate, bootstrap_ci, bootstrap_estimate

__all__ = [
    "CONTEXTS",
    "Estimate",
    "accuracy",
    "bbq_metrics",
    "bias_counts",
    "bias_score_ambig",
    "bias_score_disambig",
    "bootstrap_ci",
    "bootstrap_estimate",
]
