"""Trends of a proportion across ordered groups (model sizes), and a correction for testing many at once.

- Cochran-Armitage test for trend: groups i with n_i trials, k_i successes and scores x_i (here log10 of
  the parameter count). With p = sum k / sum n and S = sum n_i (x_i - xbar)^2 (xbar weighted by n_i):
  slope b = sum n_i (x_i - xbar)(p_i - p) / S (the least-squares slope of the proportions on the scores,
  weighted by n_i), SE(b) = sqrt(p (1 - p) / S) under no trend, z = b / SE, two-sided p from the normal.
  The 95% interval is b +- 1.96 SE.
- Benjamini-Hochberg adjusted p-values (false discovery rate), for flagging among many datasets.

Pure functions, tested against hand-computed cases.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Trend:
    slope: float  # change in the proportion per unit of score (per tenfold parameters)
    ci_low: float
    ci_high: float
    z: float
    p: float


def armitage_trend(trials, successes, scores) -> Trend:
    n = np.asarray(trials, dtype=float)
    k = np.asarray(successes, dtype=float)
    x = np.asarray(scores, dtype=float)
    if not (n.shape == k.shape == x.shape) or n.ndim != 1:
        raise ValueError("trend: trials, successes and scores must be equal-length lists")
    nan = float("nan")
    total = n.sum()
    if total == 0 or len(np.unique(x[n > 0])) < 2:
        return Trend(nan, nan, nan, nan, nan)
    p = k.sum() / total
    xbar = (n * x).sum() / total
    spread = (n * (x - xbar) ** 2).sum()
    rates = np.divide(k, n, out=np.zeros_like(k), where=n > 0)
    slope = float((n * (x - xbar) * (rates - p)).sum() / spread)
    se = math.sqrt(p * (1 - p) / spread)
    if se == 0:
        return Trend(slope, nan, nan, nan, nan)
    z = slope / se
    pvalue = math.erfc(abs(z) / math.sqrt(2))
    return Trend(slope, slope - 1.959964 * se, slope + 1.959964 * se, z, pvalue)


def benjamini_hochberg(pvalues) -> list[float]:
    """Adjusted p-values: p_(i) m / i made monotone from the largest down, capped at 1; NaN stays NaN
    and does not count towards m."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = len(finite)
    if not m:
        return out.tolist()
    order = finite[np.argsort(p[finite], kind="stable")]
    ranked = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    out[order] = np.minimum(adjusted, 1.0)
    return out.tolist()
