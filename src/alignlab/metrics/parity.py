"""Paired differences, correlations and the helpers the self-correction experiments score with.

Pure functions over arrays; every estimate is an `Estimate` with a 95% percentile bootstrap interval over
the items (students, occupations, decision questions) unless said otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from alignlab.metrics.bootstrap import Estimate, bootstrap_estimate

_FLAT = 1e-24  # squared deviations per value below this are rounding noise
LOGIT_EPS = 1e-6  # probabilities are clipped to [eps, 1 - eps] before the logit, so 0 and 1 stay finite


def normalise(logprobs: Sequence[float]) -> list[float]:
    """Probabilities over the given continuations only (a softmax of their log-probabilities)."""
    values = np.asarray(logprobs, dtype=float)
    weights = np.exp(values - values.max())
    return (weights / weights.sum()).tolist()


def logit(p: np.ndarray | Sequence[float] | float, eps: float = LOGIT_EPS) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=float), eps, 1.0 - eps)
    return np.log(q) - np.log1p(-q)


def mean_estimate(values: Sequence[float] | np.ndarray, n_resamples: int = 1000, seed: int = 0) -> Estimate:
    """The mean, with a bootstrap interval over the values."""
    x = np.asarray(values, dtype=float)
    return bootstrap_estimate(lambda v: v.mean(axis=-1), x, n_resamples=n_resamples, seed=seed)


def paired_difference(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, n_resamples: int = 1000, seed: int = 0
) -> Estimate:
    """Mean of a - b over paired items (the same student as Black and as white), resampling the pairs."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired_difference: {a.shape} and {b.shape} are not paired")
    return mean_estimate(a - b, n_resamples=n_resamples, seed=seed)


def pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson's r along the last axis (NaN where either side is constant)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    dx = x - x.mean(axis=-1, keepdims=True)
    dy = y - y.mean(axis=-1, keepdims=True)
    sx, sy = (dx * dx).sum(axis=-1), (dy * dy).sum(axis=-1)
    # a side constant but for rounding (probabilities renormalised in floating point) has no correlation
    flat = (sx <= _FLAT * x.shape[-1]) | (sy <= _FLAT * y.shape[-1])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(flat, np.nan, (dx * dy).sum(axis=-1) / np.sqrt(sx * sy))


def correlation_estimate(
    x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, n_resamples: int = 1000, seed: int = 0
) -> Estimate:
    """Pearson's r with a bootstrap interval over the (x, y) pairs."""
    return bootstrap_estimate(
        pearson, (np.asarray(x, float), np.asarray(y, float)), n_resamples=n_resamples, seed=seed
    )


def fisher_interval(r: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Fisher z interval of a correlation r over n pairs: tanh(atanh r +- z / sqrt(n - 3))."""
    if n <= 3 or not math.isfinite(r):
        return float("nan"), float("nan")
    if abs(r) >= 1.0:
        return float(r), float(r)
    from scipy.stats import norm

    z = norm.ppf(0.5 + confidence / 2.0)
    centre, half = math.atanh(r), z / math.sqrt(n - 3)
    return math.tanh(centre - half), math.tanh(centre + half)
