"""Percentile bootstrap confidence intervals over items.

Rows (items) are resampled with replacement; a resample whose statistic is undefined (NaN or inf, e.g. a
ratio with an empty denominator) is left out, and the interval comes from the finite ones. When fewer than
half of the resamples are finite the interval is reported as undefined (NaN, NaN).

The statistic is *vectorised* by default: it receives every input with a leading resample axis, shape
``(b, n, ...)``, and must return shape ``(b,)`` (reduce over ``axis=1``, or ``axis=-1`` for 1-D inputs).
Pass ``vectorized=False`` for a statistic that takes plain 1-D arrays and returns a scalar; it is then
called once per resample.

Pure functions: no I/O, no global random state.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["METHODS", "Estimate", "bootstrap_ci", "bootstrap_estimate", "interval_from_resamples"]

# "percentile": the resampled statistics' alpha/2 and 1 - alpha/2 quantiles. "bc": bias-corrected
# percentile (Efron 1987; BCa without the acceleration term): the quantile levels are moved by
# z0 = Phi^-1(share of resamples below the point estimate), for statistics whose resamples sit mostly on
# one side of the estimate (binned calibration errors are biased upward, more so when resampled). When the
# estimate lies outside the central 1 - alpha of its resamples, "bc" gives no interval (NaN, NaN): a
# corrected interval would then exclude the estimate.
METHODS = ("percentile", "bc")

# Upper bound on the number of index entries drawn at once (resamples x items); keeps memory near
# 32 MB of int64 indices per input however large the data set is.
_MAX_BLOCK_ELEMENTS = 4_000_000

Arrays = Mapping[str, np.ndarray] | Sequence[np.ndarray] | np.ndarray


def _json_float(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a confidence interval and the number of items it rests on.

    ``n`` is the number of items the bootstrap resampled (not the number of resamples).
    """

    value: float
    ci_low: float
    ci_high: float
    n: int

    def to_json(self) -> dict[str, Any]:
        """``{"value": v, "ci": [lo, hi], "n": n}`` with NaN/inf written as ``None`` (JSON null)."""
        return {
            "value": _json_float(self.value),
            "ci": [_json_float(self.ci_low), _json_float(self.ci_high)],
            "n": int(self.n),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Estimate:
        """Inverse of :meth:`to_json` (``None`` becomes NaN)."""

        def f(v: Any) -> float:
            return float("nan") if v is None else float(v)

        lo, hi = obj.get("ci") or (None, None)
        return cls(value=f(obj.get("value")), ci_low=f(lo), ci_high=f(hi), n=int(obj.get("n", 0)))


def _normalise(arrays: Arrays) -> tuple[list[np.ndarray], list[str] | None]:
    """Return the inputs as a list of arrays plus their names (None for positional inputs)."""
    if isinstance(arrays, np.ndarray):
        return [arrays], None
    if isinstance(arrays, Mapping):
        names = list(arrays.keys())
        return [np.asarray(arrays[k]) for k in names], names
    return [np.asarray(a) for a in arrays], None


def _call(statistic: Callable[..., Any], values: list[np.ndarray], names: list[str] | None) -> Any:
    with np.errstate(divide="ignore", invalid="ignore"):
        if names is None:
            return statistic(*values)
        return statistic(**dict(zip(names, values, strict=True)))


def _check_lengths(values: list[np.ndarray]) -> int:
    if not values:
        raise ValueError("bootstrap: no input arrays given")
    for v in values:
        if v.ndim == 0:
            raise ValueError("bootstrap: inputs must have at least one dimension (items along axis 0)")
    n = int(values[0].shape[0])
    lengths = [int(v.shape[0]) for v in values]
    if any(m != n for m in lengths):
        raise ValueError(f"bootstrap: inputs differ in length along axis 0: {lengths}")
    return n


def _index_blocks(n: int, n_resamples: int, rng: np.random.Generator, strata: np.ndarray | None) -> Any:
    """Yield (b, n) index matrices, b rows at a time, n_resamples rows in all.

    With ``strata`` each stratum is resampled within itself (its size is kept), so the indices of stratum
    s always fill the same columns.
    """
    block = max(1, min(n_resamples, _MAX_BLOCK_ELEMENTS // max(n, 1)))
    if strata is None:
        groups = None
    else:
        _, inverse = np.unique(strata, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        counts = np.bincount(inverse)
        groups = np.split(order, np.cumsum(counts)[:-1])
    done = 0
    while done < n_resamples:
        b = min(block, n_resamples - done)
        if groups is None:
            yield rng.integers(0, n, size=(b, n))
        else:
            yield np.concatenate([g[rng.integers(0, g.size, size=(b, g.size))] for g in groups], axis=1)
        done += b


def bootstrap_ci(
    statistic: Callable[..., Any],
    arrays: Arrays,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    strata: np.ndarray | Sequence[Any] | None = None,
    *,
    vectorized: bool = True,
    method: str = "percentile",
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over the rows of ``arrays``.

    Args:
        statistic: function of the (resampled) inputs. Vectorised (default): each input arrives with
            shape ``(b, n, ...)`` and the result must have shape ``(b,)``. Otherwise it gets the
            ``(n, ...)`` arrays of one resample and returns a scalar.
        arrays: ``{name: array}`` (passed as keyword arguments), a tuple/list of arrays (passed
            positionally) or a single array. All share their length along axis 0: that axis indexes
            items and is the one resampled, the same rows for every input.
        n_resamples: number of bootstrap resamples.
        confidence: two-sided coverage, e.g. 0.95 gives the 2.5th and 97.5th percentiles.
        seed: seed of the ``numpy.random.Generator`` that draws the indices; same seed, same interval.
        strata: optional per-item labels; items are then resampled within each stratum, so every
            stratum keeps its size (used for the pooled BBQ score, stratified by category).
        vectorized: see ``statistic``.
        method: "percentile" or "bc" (bias-corrected; see METHODS).

    Returns:
        ``(low, high)``; ``(nan, nan)`` when there are no items or fewer than half the resamples give a
        finite statistic.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"bootstrap: confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"bootstrap: n_resamples must be at least 1, got {n_resamples}")
    values, names = _normalise(arrays)
    n = _check_lengths(values)
    nan = float("nan")
    if n == 0:
        return nan, nan
    strata_arr = None
    if strata is not None:
        strata_arr = np.asarray(strata)
        if strata_arr.shape != (n,):
            raise ValueError(f"bootstrap: strata has shape {strata_arr.shape}, expected ({n},)")

    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples, dtype=float)
    pos = 0
    for idx in _index_blocks(n, n_resamples, rng, strata_arr):
        b = idx.shape[0]
        if vectorized:
            out = np.asarray(_call(statistic, [v[idx] for v in values], names), dtype=float).reshape(-1)
            if out.shape != (b,):
                raise ValueError(
                    f"bootstrap: vectorised statistic returned shape {out.shape}, expected ({b},); "
                    "reduce over axis 1 or pass vectorized=False"
                )
            stats[pos : pos + b] = out
        else:
            for j in range(b):
                stats[pos + j] = float(_call(statistic, [v[idx[j]] for v in values], names))
        pos += b

    point = _point(statistic, values, names, vectorized) if method == "bc" else nan
    return interval_from_resamples(stats, confidence, method, point)


def interval_from_resamples(
    stats: np.ndarray, confidence: float = 0.95, method: str = "percentile", point: float = float("nan")
) -> tuple[float, float]:
    """The interval from the resampled statistics (non-finite ones left out; (nan, nan) when fewer than
    half are finite). "bc" needs the point estimate and uses the levels Phi(2 z0 +- z_{1-alpha/2})."""
    if method not in METHODS:
        raise ValueError(f"bootstrap: unknown method {method!r}: choose from {', '.join(METHODS)}")
    stats = np.asarray(stats, dtype=float)
    finite = stats[np.isfinite(stats)]
    nan = float("nan")
    if 2 * finite.size < stats.size or finite.size == 0:
        return nan, nan
    alpha = 1.0 - confidence
    levels = [alpha / 2.0, 1.0 - alpha / 2.0]
    if method == "bc":
        if not math.isfinite(point):
            return nan, nan
        from scipy.stats import norm

        below = (np.sum(finite < point) + 0.5 * np.sum(finite == point)) / finite.size
        # Outside the central 1 - alpha of its resamples (|z0| > z_{1-alpha/2}) the corrected interval
        # would exclude the estimate itself (a binned error on a few items per bin, say): no interval.
        if not alpha / 2.0 <= below <= 1.0 - alpha / 2.0:
            return nan, nan
        z0 = norm.ppf(below)
        levels = [float(norm.cdf(2 * z0 + norm.ppf(level))) for level in levels]
    lo, hi = np.quantile(finite, levels)
    return float(lo), float(hi)


def _point(statistic, values: list[np.ndarray], names, vectorized: bool) -> float:
    """The statistic on the original rows (a leading axis of one for a vectorised statistic)."""
    if values[0].shape[0] == 0:
        return float("nan")
    if vectorized:
        return float(np.asarray(_call(statistic, [v[None, ...] for v in values], names)).reshape(-1)[0])
    return float(_call(statistic, values, names))


def bootstrap_estimate(
    statistic: Callable[..., Any],
    arrays: Arrays,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    strata: np.ndarray | Sequence[Any] | None = None,
    *,
    vectorized: bool = True,
    method: str = "percentile",
) -> Estimate:
    """Point estimate on the full data plus :func:`bootstrap_ci`, as an :class:`Estimate`.

    The point value is the statistic on the original rows (for a vectorised statistic, called with a
    leading axis of length 1). It is NaN when there are no items or the statistic is undefined; the
    interval is computed independently and may still be finite in rare cases.
    """
    values, names = _normalise(arrays)
    n = _check_lengths(values)
    value = _point(statistic, values, names, vectorized)
    lo, hi = bootstrap_ci(
        statistic,
        arrays,
        n_resamples=n_resamples,
        confidence=confidence,
        seed=seed,
        strata=strata,
        vectorized=vectorized,
        method=method,
    )
    return Estimate(value=value, ci_low=lo, ci_high=hi, n=n)
