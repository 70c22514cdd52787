"""Fisher information of the population: exact, and the paper's approximation d(s)^2 g(s) I_conv.

For independent Poisson counts with means T f_n(s), I_F(s) = T sum_n f_n'(s)^2 / f_n(s).
With f_n(s) = g_n h(D(s) - u_n) this is exactly T d(s)^2 sum_n g_n h'(x_n)^2 / h(x_n), x_n = D(s) - u_n.
The approximation replaces each g_n by g(s) and the sum by its phase average I_conv; the remaining
error comes from the gain changing across the neurons that cover s, and from the truncated tiling at
the ends of the grid. Both shrink as N grows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alignlab.popcode.population import Population
from alignlab.popcode.prior import Prior

# Rows per block when evaluating (stimuli x neurons) matrices, to bound memory at ~32 MB.
_BLOCK_ELEMENTS = 4_000_000


def block_rows(n_cols: int) -> int:
    """How many rows of an (rows x n_cols) float matrix fit in one block."""
    return max(1, _BLOCK_ELEMENTS // max(1, n_cols))


def exact_fisher(pop: Population, x: np.ndarray | None = None, method: str = "window") -> np.ndarray:
    """T * sum_n f_n'(x)^2 / f_n(x) at stimuli x (default: the population's grid).

    method="window" sums over the neurons within `tuning.reach` spacings of each stimulus (the rest
    contribute below 1e-30 of the peak, under float64 rounding), O(len(x) * reach).
    method="dense" sums over every neuron, in blocks of (stimuli x neurons), O(len(x) * N).
    """
    x = pop.s if x is None else np.atleast_1d(np.asarray(x, dtype=float))
    if method == "window":
        _, dens, _, fisher_sum = pop.local_sums(x)
        return pop.time_window * dens**2 * fisher_sum
    if method != "dense":
        raise ValueError(f"unknown method {method!r}")
    out = np.empty(x.size)
    step = block_rows(pop.n_neurons)
    for start in range(0, x.size, step):
        off, dens = pop.offsets(x[start : start + step])
        out[start : start + step] = dens**2 * (pop.tuning.fisher_density(off) @ pop.gains)
    return pop.time_window * out


def approx_fisher(pop: Population, x: np.ndarray | None = None) -> np.ndarray:
    """The paper's approximation: T * d(x)^2 * g(x) * I_conv."""
    x = pop.s if x is None else np.atleast_1d(np.asarray(x, dtype=float))
    return pop.time_window * pop.density_at(x) ** 2 * pop.gain_at(x) * pop.tuning.conv_fisher()


@dataclass(frozen=True)
class ApproximationError:
    """Relative error |I_exact - I_approx| / I_exact of the Fisher approximation.

    mean_rel: averaged over the prior (whole grid, edge effects included).
    central_max_rel: the largest value inside the central `central_mass` of the prior.
    """

    neurons: int
    mean_rel: float
    central_max_rel: float
    central_mass: float

    def as_dict(self) -> dict[str, float]:
        return {
            "neurons": self.neurons,
            "mean_rel": self.mean_rel,
            "central_max_rel": self.central_max_rel,
            "central_mass": self.central_mass,
        }


def approximation_error(pop: Population, prior: Prior, central_mass: float = 0.98) -> ApproximationError:
    exact = exact_fisher(pop, prior.s)
    rel = np.abs(exact - approx_fisher(pop, prior.s)) / exact
    mask = prior.central_mask(central_mass)
    return ApproximationError(
        neurons=pop.n_neurons,
        mean_rel=float(np.sum(prior.weights * prior.p * rel)),
        central_max_rel=float(rel[mask].max()),
        central_mass=central_mass,
    )
