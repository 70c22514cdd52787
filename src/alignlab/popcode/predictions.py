"""Perceptual predictions: discrimination thresholds and their power law in the prior.

A threshold at discriminability d' is delta(s) = d' / sqrt(I_F(s)) (Cramer-Rao: the smallest change an
unbiased observer detects at d'). With I_F ~ p^(2/(3 alpha + 1)), delta ~ p^(-1/(3 alpha + 1)); the fit
below measures the exponent on the finite population's exact Fisher information.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def thresholds(fisher: np.ndarray, dprime: float = 1.0) -> np.ndarray:
    """delta(s) = d' / sqrt(I_F(s))."""
    return dprime / np.sqrt(np.asarray(fisher, dtype=float))


@dataclass(frozen=True)
class PowerLawFit:
    """log y = exponent * log x + log(prefactor), least squares; r2 of the log-log fit."""

    exponent: float
    prefactor: float
    r2: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.prefactor * np.asarray(x, dtype=float) ** self.exponent


def fit_power_law(x: np.ndarray, y: np.ndarray) -> PowerLawFit:
    lx, ly = np.log(np.asarray(x, dtype=float)), np.log(np.asarray(y, dtype=float))
    if lx.size < 2 or np.ptp(lx) == 0:
        raise ValueError("power-law fit needs at least two distinct x values")
    slope, intercept = np.polyfit(lx, ly, 1)
    resid = ly - (slope * lx + intercept)
    total = float(np.sum((ly - ly.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / total if total > 0 else 1.0
    return PowerLawFit(float(slope), float(np.exp(intercept)), r2)
