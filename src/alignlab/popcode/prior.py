"""Stimulus priors p(s) on a uniform grid.

Every prior, however it was given (a function, a table, samples, a file), ends up as the same thing:
density values on a uniform grid, strictly positive and normalised with the trapezoid rule. All
integrals in the package use the same trapezoid weights, so constraints hold exactly on the grid.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from alignlab.errors import AlignlabError

DEFAULT_POINTS = 2000
# Zeros inside the support are raised to this fraction of the peak: the discrimination optimum has
# gain proportional to a negative power of p, which must stay finite.
FLOOR_FRACTION = 1e-12


def trapezoid_weights(s: np.ndarray) -> np.ndarray:
    """Weights w with sum(w * f) equal to the trapezoid integral of f over the grid s."""
    w = np.zeros_like(s, dtype=float)
    ds = np.diff(s)
    w[:-1] += 0.5 * ds
    w[1:] += 0.5 * ds
    return w


@dataclass(frozen=True)
class Prior:
    """A normalised, strictly positive density p on an increasing uniform grid s."""

    s: np.ndarray
    p: np.ndarray
    name: str = "prior"

    def __post_init__(self) -> None:
        if self.s.ndim != 1 or self.s.shape != self.p.shape or self.s.size < 3:
            raise ValueError("s and p must be 1-D arrays of the same length (at least 3)")
        if not np.all(np.diff(self.s) > 0):
            raise ValueError("grid s must be strictly increasing")
        if not np.all(self.p > 0) or not np.all(np.isfinite(self.p)):
            raise ValueError("p must be finite and strictly positive on the grid")

    @property
    def weights(self) -> np.ndarray:
        return trapezoid_weights(self.s)

    @property
    def step(self) -> float:
        return float(self.s[1] - self.s[0])

    def cdf(self) -> np.ndarray:
        """Cumulative distribution at the grid points (trapezoid rule, 0 at s[0], 1 at s[-1])."""
        inc = 0.5 * (self.p[1:] + self.p[:-1]) * np.diff(self.s)
        return np.concatenate([[0.0], np.cumsum(inc)])

    def quantile(self, q: float | np.ndarray) -> np.ndarray:
        """Inverse of the (piecewise linear interpolated) cdf."""
        return np.interp(q, self.cdf(), self.s)

    def central_mask(self, mass: float = 0.98) -> np.ndarray:
        """Grid points inside the central interval that holds `mass` of the probability."""
        lo, hi = self.quantile([(1 - mass) / 2, (1 + mass) / 2])
        return (self.s >= lo) & (self.s <= hi)

    def mean(self) -> float:
        return float(np.sum(self.weights * self.p * self.s))

    def sample(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """Draws by inverse-cdf sampling on the grid."""
        return self.quantile(rng.random(size))


def _uniform_grid(lo: float, hi: float, points: int) -> np.ndarray:
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise AlignlabError(f"prior domain must be finite with lo < hi, got [{lo}, {hi}]")
    if points < 3:
        raise AlignlabError(f"prior grid needs at least 3 points, got {points}")
    return np.linspace(lo, hi, points)


def _finish(s: np.ndarray, p: np.ndarray, name: str) -> Prior:
    """Floor interior zeros, normalise, and wrap."""
    p = np.asarray(p, dtype=float)
    peak = float(np.max(p))
    if not peak > 0:
        raise AlignlabError(f"prior '{name}' is zero everywhere on its grid")
    p = np.maximum(p, FLOOR_FRACTION * peak)
    p = p / np.sum(trapezoid_weights(s) * p)
    return Prior(s=s, p=p, name=name)


def from_function(
    fn: Callable[[np.ndarray], np.ndarray],
    lo: float,
    hi: float,
    points: int = DEFAULT_POINTS,
    name: str = "function",
) -> Prior:
    """Prior from a vectorised (not necessarily normalised) density function on [lo, hi]."""
    s = _uniform_grid(lo, hi, points)
    p = np.asarray(fn(s), dtype=float)
    if p.shape != s.shape or not np.all(np.isfinite(p)) or np.any(p < 0):
        raise AlignlabError(f"prior '{name}': the function must return finite, non-negative values")
    return _finish(s, p, name)


def from_table(
    s_values: np.ndarray,
    p_values: np.ndarray,
    points: int = DEFAULT_POINTS,
    name: str = "table",
) -> Prior:
    """Prior from a table (s increasing, p >= 0), resampled by linear interpolation onto a uniform grid.

    Zero-valued rows at either end are trimmed, so the grid covers the support only.
    """
    s_values = np.asarray(s_values, dtype=float)
    p_values = np.asarray(p_values, dtype=float)
    if s_values.shape != p_values.shape or s_values.ndim != 1:
        raise AlignlabError(f"prior '{name}': s and p must be 1-D and the same length")
    if not np.all(np.diff(s_values) > 0):
        raise AlignlabError(f"prior '{name}': s must be strictly increasing")
    if np.any(p_values < 0) or not np.all(np.isfinite(p_values)):
        raise AlignlabError(f"prior '{name}': p must be finite and non-negative")
    positive = np.flatnonzero(p_values > 0)
    if positive.size == 0:
        raise AlignlabError(f"prior '{name}': p is zero everywhere")
    first, last = positive[0], positive[-1]
    if last - first < 1:
        raise AlignlabError(f"prior '{name}': needs at least two rows with p > 0")
    s_values, p_values = s_values[first : last + 1], p_values[first : last + 1]
    s = _uniform_grid(float(s_values[0]), float(s_values[-1]), points)
    return _finish(s, np.interp(s, s_values, p_values), name)


def from_samples(
    samples: np.ndarray,
    points: int = DEFAULT_POINTS,
    bandwidth: float | str | None = None,
    name: str = "samples",
) -> Prior:
    """Prior from samples by a Gaussian kernel density estimate (scipy.stats.gaussian_kde).

    The grid extends four kernel widths beyond the extreme samples.
    """
    x = np.asarray(samples, dtype=float).ravel()
    if x.size < 2 or not np.all(np.isfinite(x)) or np.ptp(x) == 0:
        raise AlignlabError(f"prior '{name}': need at least two distinct finite samples")
    kde = stats.gaussian_kde(x, bw_method=bandwidth)
    kernel_sd = float(np.sqrt(kde.covariance[0, 0]))
    s = _uniform_grid(float(x.min()) - 4 * kernel_sd, float(x.max()) + 4 * kernel_sd, points)
    return _finish(s, kde(s), name)


def gaussian(mean: float = 0.0, sd: float = 1.0, points: int = DEFAULT_POINTS, tail: float = 1e-4) -> Prior:
    """Gaussian prior truncated to its central 1 - 2*tail mass."""
    dist = stats.norm(loc=mean, scale=sd)
    return from_function(dist.pdf, dist.ppf(tail), dist.ppf(1 - tail), points, name="gaussian")


def lognormal(mu: float = 0.0, sigma: float = 0.5, points: int = DEFAULT_POINTS, tail: float = 1e-4) -> Prior:
    """Log-normal prior (log s ~ N(mu, sigma^2)) truncated to its central 1 - 2*tail mass."""
    dist = stats.lognorm(s=sigma, scale=math.exp(mu))
    return from_function(dist.pdf, dist.ppf(tail), dist.ppf(1 - tail), points, name="lognormal")


def _split(line: str) -> list[str]:
    for sep in (",", ";", "\t"):
        if sep in line:
            parts = [part.strip() for part in line.split(sep)]
            while parts and not parts[-1]:  # tolerate a trailing separator
                parts.pop()
            return parts
    return line.split()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_prior_file(path: str | Path, points: int = DEFAULT_POINTS, bandwidth: float | None = None) -> Prior:
    """Read a prior from a text file.

    Two columns (s,p per line) is a table; one column is a list of samples (kernel density).
    Separators: comma, semicolon, tab or whitespace. Blank lines and lines starting with '#' are
    skipped; the first remaining line may be a header. Errors name the file and line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AlignlabError(f"prior file {path}: cannot read ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise AlignlabError(f"prior file {path}: not UTF-8 text") from exc
    rows: list[list[float]] = []
    lines: list[int] = []
    ncols: int | None = None
    header_allowed = True
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = _split(line)
        try:
            values = [float(v) for v in parts]
        except ValueError:
            # Only the first row may be a header, and only if none of its fields is a number.
            if header_allowed and not any(_is_number(v) for v in parts):
                header_allowed = False
                continue
            raise AlignlabError(f"prior file {path}, line {lineno}: not numbers: {line!r}") from None
        header_allowed = False
        if ncols is None:
            if len(values) not in (1, 2):
                raise AlignlabError(
                    f"prior file {path}, line {lineno}: expected 2 columns (s,p) or 1 column (samples), "
                    f"got {len(values)}"
                )
            ncols = len(values)
        elif len(values) != ncols:
            raise AlignlabError(
                f"prior file {path}, line {lineno}: expected {ncols} column(s) like the first row, got {len(values)}"
            )
        if not all(math.isfinite(v) for v in values):
            raise AlignlabError(f"prior file {path}, line {lineno}: values must be finite: {line!r}")
        if ncols == 2:
            if values[1] < 0:
                raise AlignlabError(f"prior file {path}, line {lineno}: p must be >= 0, got {values[1]}")
            if rows and values[0] <= rows[-1][0]:
                raise AlignlabError(
                    f"prior file {path}, line {lineno}: s={values[0]} is not greater than the previous "
                    f"s={rows[-1][0]} (line {lines[-1]}); s must be strictly increasing"
                )
        rows.append(values)
        lines.append(lineno)
    if ncols is None:
        raise AlignlabError(f"prior file {path}: no data rows")
    data = np.asarray(rows, dtype=float)
    name = path.stem
    if ncols == 1:
        if data.shape[0] < 2 or np.ptp(data[:, 0]) == 0:
            raise AlignlabError(f"prior file {path}: samples need at least two distinct values")
        return from_samples(data[:, 0], points=points, bandwidth=bandwidth, name=name)
    if data.shape[0] < 3:
        raise AlignlabError(f"prior file {path}: a table needs at least 3 rows, got {data.shape[0]}")
    if np.count_nonzero(data[:, 1] > 0) < 2:
        raise AlignlabError(f"prior file {path}: a table needs at least two rows with p > 0")
    return from_table(data[:, 0], data[:, 1], points=points, name=name)


BUILTIN = ("gaussian", "lognormal")


def resolve_prior(spec: str, points: int = DEFAULT_POINTS, bandwidth: float | None = None) -> Prior:
    """'gaussian' or 'lognormal' (built in, standard parameters), or a path to a prior file."""
    if spec in BUILTIN:
        return gaussian(points=points) if spec == "gaussian" else lognormal(points=points)
    path = Path(spec)
    if not path.exists():
        raise AlignlabError(f"--prior {spec!r}: not one of {', '.join(BUILTIN)} and no such file")
    return load_prior_file(path, points=points, bandwidth=bandwidth)
