"""Calibration of probabilities against outcomes: binned calibration errors, Brier score, reliability
points, temperature scaling, and AUROC (how well the probabilities separate right from wrong).

Definitions (Kadavath et al. 2022, arXiv:2207.05221 §1.1 and App. A.1; paper-methods.md §2 [V]), with
b a bin, n_b its count, N the total, conf_b the mean probability and acc_b the fraction correct in it:

    ECE    = sum_b (n_b / N) |acc_b - conf_b|
    RMS-CE = sqrt(sum_b (n_b / N) (acc_b - conf_b)^2)
    Brier  = (1 / N) sum_i (p_i - y_i)^2

The paper always uses 10 bins "with an equal number of predictions in each" (equal-mass); equal-width bins
([0, 0.1), ..., [0.9, 1]) are the other common choice. Equal-mass bins take the probabilities in sorted
order (ties in the order given) and give bin b the positions [b N / B, (b + 1) N / B).

The error functions work on the last axis, so a bootstrap can pass a (resamples, items) array and get one
value per resample. Pure functions: no I/O, no global random state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BINNINGS = ("equal-mass", "equal-width")


def _bin_index(p: np.ndarray, n_bins: int, binning: str) -> np.ndarray:
    """Each probability's bin (same shape as p), binned along the last axis."""
    if n_bins < 1:
        raise ValueError(f"calibration: n_bins must be at least 1, got {n_bins}")
    if binning == "equal-width":
        return np.minimum((p * n_bins).astype(np.int64), n_bins - 1).clip(min=0)
    if binning == "equal-mass":
        n = p.shape[-1]
        order = np.argsort(p, axis=-1, kind="stable")
        rank_bin = (np.arange(n) * n_bins) // max(n, 1)  # sorted position -> bin
        bins = np.empty_like(order)
        np.put_along_axis(bins, order, np.broadcast_to(rank_bin, order.shape), axis=-1)
        return bins
    raise ValueError(f"calibration: unknown binning {binning!r}: choose {' or '.join(BINNINGS)}")


def _bin_sums(p: np.ndarray, y: np.ndarray, n_bins: int, binning: str) -> tuple[np.ndarray, np.ndarray]:
    """Per bin along the last axis: the count, and the sum of (y - p). Shapes (..., n_bins)."""
    p = np.asarray(p, dtype=float)
    y = np.asarray(y, dtype=float)
    bins = _bin_index(p, n_bins, binning)
    lead = p.shape[:-1]
    flat = bins.reshape(-1, p.shape[-1]) + n_bins * np.arange(int(np.prod(lead, dtype=np.int64)))[:, None]
    size = flat.shape[0] * n_bins
    counts = np.bincount(flat.ravel(), minlength=size).reshape(*lead, n_bins)
    gaps = np.bincount(flat.ravel(), weights=(y - p).ravel(), minlength=size).reshape(*lead, n_bins)
    return counts, gaps


def expected_calibration_error(p, y, n_bins: int = 10, binning: str = "equal-mass") -> np.ndarray | float:
    """sum_b (n_b / N) |acc_b - conf_b| = (1 / N) sum_b |sum_{i in b} (y_i - p_i)|, along the last axis."""
    p = np.asarray(p, dtype=float)
    counts, gaps = _bin_sums(p, y, n_bins, binning)
    return _scalar(np.abs(gaps).sum(-1) / p.shape[-1])


def rms_calibration_error(p, y, n_bins: int = 10, binning: str = "equal-mass") -> np.ndarray | float:
    """sqrt(sum_b (n_b / N) (acc_b - conf_b)^2) = sqrt(sum_b (sum_{i in b} (y_i - p_i))^2 / (n_b N))."""
    p = np.asarray(p, dtype=float)
    counts, gaps = _bin_sums(p, y, n_bins, binning)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(counts > 0, gaps**2 / np.maximum(counts, 1), 0.0)
    return _scalar(np.sqrt(terms.sum(-1) / p.shape[-1]))


def multiclass_brier(probs, answer: int) -> float:
    """The multi-class Brier score of one question: sum over its options of (p_k - 1[k is right])^2, in [0, 2]."""
    p = np.asarray(probs, dtype=float)
    truth = np.zeros_like(p)
    truth[answer] = 1.0
    return float(((p - truth) ** 2).sum())


def brier_score(p, y) -> np.ndarray | float:
    """(1 / N) sum_i (p_i - y_i)^2 along the last axis."""
    p = np.asarray(p, dtype=float)
    return _scalar(((p - np.asarray(y, dtype=float)) ** 2).mean(-1))


@dataclass(frozen=True)
class ReliabilityBin:
    count: int
    mean_probability: float
    fraction_true: float


def reliability_bins(p, y, n_bins: int = 10, binning: str = "equal-mass") -> list[ReliabilityBin]:
    """The points of a reliability diagram: each non-empty bin's mean probability and fraction true."""
    p = np.asarray(p, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if p.size == 0:
        return []
    bins = _bin_index(p, n_bins, binning)
    out = []
    for b in range(n_bins):
        members = bins == b
        if members.any():
            out.append(ReliabilityBin(int(members.sum()), float(p[members].mean()), float(y[members].mean())))
    return out


# --- temperature scaling --------------------------------------------------------------------------
def softmax_rows(scores: Sequence[Sequence[float]], temperature: float = 1.0) -> list[np.ndarray]:
    """softmax(scores / T) of each row; rows may differ in length (questions with more options)."""
    out = []
    for row in scores:
        z = np.asarray(row, dtype=float) / temperature
        z = np.exp(z - z.max())
        out.append(z / z.sum())
    return out


def negative_log_likelihood(
    scores: Sequence[Sequence[float]], labels: Sequence[int], temperature: float
) -> float:
    """Mean -log softmax(scores / T)[label] over rows."""
    if not len(scores):
        return float("nan")
    total = 0.0
    for row, label in zip(scores, labels, strict=True):
        z = np.asarray(row, dtype=float) / temperature
        top = z.max()
        total -= z[label] - top - np.log(np.exp(z - top).sum())
    return total / len(scores)


TEMPERATURE_BOUNDS = (0.05, 20.0)


def fit_temperature(
    scores: Sequence[Sequence[float]], labels: Sequence[int], bounds: tuple[float, float] = TEMPERATURE_BOUNDS
) -> float:
    """The T > 0 that minimises the NLL of softmax(scores / T) on these rows (Guo et al. 2017's temperature
    scaling: one parameter, so accuracy is unchanged), searched on log T within `bounds`."""
    from scipy.optimize import minimize_scalar

    if not len(scores):
        raise ValueError("calibration: no rows to fit a temperature on")
    low, high = np.log(bounds[0]), np.log(bounds[1])
    found = minimize_scalar(
        lambda log_t: negative_log_likelihood(scores, labels, float(np.exp(log_t))),
        bounds=(low, high),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(np.exp(found.x))


def _scalar(value: np.ndarray) -> np.ndarray | float:
    return float(value) if np.ndim(value) == 0 else value


# --- discrimination ------------------------------------------------------------------------------------
def auroc(scores, labels) -> np.ndarray | float:
    """Area under the ROC curve of `scores` separating labels 1 from 0, along the last axis: the chance that
    a random positive scores above a random negative (ties count half), from average ranks (Mann-Whitney U).
    NaN where one class is absent."""
    from scipy.stats import rankdata

    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels, dtype=float)
    ranks = rankdata(scores, axis=-1)
    positives = labels.sum(-1)
    negatives = labels.shape[-1] - positives
    with np.errstate(divide="ignore", invalid="ignore"):
        area = ((ranks * labels).sum(-1) - positives * (positives + 1) / 2) / (positives * negatives)
    return _scalar(np.where((positives > 0) & (negatives > 0), area, np.nan))
