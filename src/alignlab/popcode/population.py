"""A warped convolutional population of independent Poisson neurons (Ganguli & Simoncelli 2010, sec. 2).

Start from a homogeneous population h(u - u_n) with unit spacing on an axis u, then map stimulus s to
u = D(s), the cumulative cell density D(s) = integral of d from the grid start to s, and scale each
neuron by the gain at its preferred stimulus:

    f_n(s) = g(s_n) * h(D(s) - u_n),   u_n = n - 1/2,   s_n = D^{-1}(u_n),   n = 1..N

so tuning widths in s shrink as 1/d(s). d is linear between grid points and D is its exact integral
(piecewise quadratic), which keeps D' = d exactly and makes the "exact" Fisher information exact for
the simulated model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from alignlab.popcode.prior import trapezoid_weights


@dataclass(frozen=True)
class GaussianTuning:
    """Gaussian tuning shape on the warped axis, normalised to unit area.

    Unit area makes the tiling sum_n h(u - n) equal to 1 (to ~1e-8 for width >= 1, by Poisson
    summation), so g(s) is the total expected rate of the population at s, as the paper's spike
    constraint needs. `width` is the standard deviation in units of the neuron spacing.
    """

    width: float = 1.0

    def __post_init__(self) -> None:
        if not self.width > 0:
            raise ValueError("tuning width must be positive")

    @property
    def _log_norm(self) -> float:
        return -math.log(self.width * math.sqrt(2 * math.pi))

    def h(self, x: np.ndarray) -> np.ndarray:
        return np.exp(self.log_h(x))

    def log_h(self, x: np.ndarray) -> np.ndarray:
        return -0.5 * (x / self.width) ** 2 + self._log_norm

    def dlog_h(self, x: np.ndarray) -> np.ndarray:
        """d/du log h(u), analytic so that far-away neurons never produce 0/0."""
        return -x / self.width**2

    def dh(self, x: np.ndarray) -> np.ndarray:
        return self.dlog_h(x) * self.h(x)

    def fisher_density(self, x: np.ndarray) -> np.ndarray:
        """h'(u)^2 / h(u), written without the division."""
        return (x / self.width**2) ** 2 * self.h(x)

    @property
    def reach(self) -> int:
        """Neurons further than this (in spacings) contribute below 1e-30 of the peak: exp(-72)."""
        return int(math.ceil(12 * self.width))

    def conv_fisher(self, phases: int = 64) -> float:
        """I_conv = sum_n h'(u - n)^2 / h(u - n), averaged over the phase u in [0, 1).

        For a unit-area Gaussian this is 1/width^2 up to the (tiny) tiling ripple.
        """
        u = np.arange(phases) / phases
        n = np.arange(-self.reach - 1, self.reach + 2)
        return float(np.mean(np.sum(self.fisher_density(u[:, None] - n[None, :]), axis=1)))

    def tiling_sum(self, phases: int = 64) -> np.ndarray:
        """sum_n h(u - n) at several phases u (should be 1)."""
        u = np.arange(phases) / phases
        n = np.arange(-self.reach - 1, self.reach + 2)
        return np.sum(self.h(u[:, None] - n[None, :]), axis=1)


@dataclass
class Population:
    """N independent Poisson neurons built from a density d(s) and gain g(s) given on a grid.

    d is rescaled so that its integral is an integer N (the number of neurons). Rates are in spikes
    per unit time; counts are drawn over `time_window`.
    """

    s: np.ndarray
    d: np.ndarray
    g: np.ndarray
    tuning: GaussianTuning = field(default_factory=GaussianTuning)
    time_window: float = 1.0

    def __post_init__(self) -> None:
        self.s = np.asarray(self.s, dtype=float)
        d = np.asarray(self.d, dtype=float)
        self.g = np.asarray(self.g, dtype=float)
        if not (self.s.shape == d.shape == self.g.shape) or self.s.ndim != 1 or self.s.size < 2:
            raise ValueError("s, d and g must be 1-D arrays of the same length")
        if np.any(d <= 0) or np.any(self.g <= 0):
            raise ValueError("density and gain must be positive on the grid")
        if not self.time_window > 0:
            raise ValueError("time window must be positive")
        total = float(np.sum(trapezoid_weights(self.s) * d))
        self.n_neurons = max(1, int(round(total)))
        self.d = d * (self.n_neurons / total)
        self._ds = np.diff(self.s)
        self._slope = np.diff(self.d) / self._ds
        self._cum = np.concatenate([[0.0], np.cumsum(0.5 * (self.d[1:] + self.d[:-1]) * self._ds)])
        self.centres = np.arange(self.n_neurons) + 0.5
        self.preferred = self.inverse_warp(self.centres)
        self.gains = np.interp(self.preferred, self.s, self.g)

    @property
    def domain(self) -> tuple[float, float]:
        return float(self.s[0]), float(self.s[-1])

    def _cell(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.clip(np.asarray(x, dtype=float), self.s[0], self.s[-1])
        i = np.clip(np.searchsorted(self.s, x, side="right") - 1, 0, self.s.size - 2)
        return i, x - self.s[i]

    def warp(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(D(x), d(x)): cumulative density and density at stimuli x (clipped to the grid)."""
        i, t = self._cell(x)
        dens = self.d[i] + self._slope[i] * t
        cum = self._cum[i] + self.d[i] * t + 0.5 * self._slope[i] * t**2
        return cum, dens

    def density_at(self, x: np.ndarray) -> np.ndarray:
        return self.warp(x)[1]

    def gain_at(self, x: np.ndarray) -> np.ndarray:
        return np.interp(x, self.s, self.g)

    def inverse_warp(self, u: np.ndarray) -> np.ndarray:
        """D^{-1}(u): solve the quadratic in the grid cell that contains u."""
        u = np.clip(np.asarray(u, dtype=float), 0.0, self._cum[-1])
        i = np.clip(np.searchsorted(self._cum, u, side="right") - 1, 0, self.s.size - 2)
        c = u - self._cum[i]
        a, b = 0.5 * self._slope[i], self.d[i]
        # Root of a t^2 + b t - c = 0 in the stable form, valid for a = 0 too.
        t = 2 * c / (b + np.sqrt(np.maximum(b * b + 4 * a * c, 0.0)))
        return self.s[i] + t

    def offsets(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(D(x)[:, None] - u_n, d(x)): the warped distance of every stimulus to every neuron."""
        cum, dens = self.warp(x)
        return cum[:, None] - self.centres[None, :], dens

    def rates(self, x: np.ndarray) -> np.ndarray:
        """Mean rates f_n(x), shape (len(x), N)."""
        off, _ = self.offsets(np.atleast_1d(x))
        return self.gains[None, :] * self.tuning.h(off)

    def log_rates(self, x: np.ndarray) -> np.ndarray:
        off, _ = self.offsets(np.atleast_1d(x))
        return np.log(self.gains)[None, :] + self.tuning.log_h(off)

    def rate_derivatives(self, x: np.ndarray) -> np.ndarray:
        """f_n'(x) = g_n h'(D(x) - u_n) d(x), shape (len(x), N)."""
        off, dens = self.offsets(np.atleast_1d(x))
        return self.gains[None, :] * self.tuning.dh(off) * dens[:, None]

    def local_sums(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """For each stimulus, sums over the neurons within `tuning.reach` spacings of D(x):

        (D(x), d(x), sum_n f_n(x) dlog h(x_n), sum_n g_n h'(x_n)^2 / h(x_n)), x_n = D(x) - u_n.
        The window makes the decoder's refinement O(trials) instead of O(trials * N); what it leaves
        out is below 1e-30 of the peak.
        """
        cum, dens = self.warp(np.atleast_1d(x))
        reach = self.tuning.reach
        first = np.floor(cum - 0.5).astype(np.int64) - reach
        idx = first[:, None] + np.arange(2 * reach + 2)[None, :]
        valid = (idx >= 0) & (idx < self.n_neurons)
        idx = np.clip(idx, 0, self.n_neurons - 1)
        off = cum[:, None] - self.centres[idx]
        gh = np.where(valid, self.gains[idx] * self.tuning.h(off), 0.0)
        dlog = self.tuning.dlog_h(off)
        return cum, dens, np.sum(gh * dlog, axis=1), np.sum(gh * dlog**2, axis=1)

    def total_rate(self, x: np.ndarray) -> np.ndarray:
        """sum_n f_n(x)."""
        return self.rates(x).sum(axis=1)

    def expected_total_rate(self, p_weights: np.ndarray) -> float:
        """sum over the grid of w_i p_i sum_n f_n(s_i), i.e. E_p[total rate] (pass w * p)."""
        return float(np.sum(p_weights * self.total_rate(self.s)))
