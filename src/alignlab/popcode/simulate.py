"""Spike counts, maximum-likelihood decoding, and the decoder's error against the Cramer-Rao bound.

Decoding is two-stage: the log likelihood sum_n r_n log(T f_n(s)) - T f_n(s) is evaluated on a grid for
all trials at once (one matrix product), and the best grid point is then refined by Fisher scoring
within one grid step, so the estimate is not limited by the grid spacing (for large N the posterior
width 1/sqrt(I_F) is far below it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse, stats

from alignlab.popcode.fisher import block_rows, exact_fisher
from alignlab.popcode.population import Population


def draw_counts(pop: Population, stimuli: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Poisson spike counts, shape (len(stimuli), N), with means T f_n(s)."""
    stimuli = np.atleast_1d(np.asarray(stimuli, dtype=float))
    out = np.empty((stimuli.size, pop.n_neurons), dtype=np.int64)
    step = block_rows(pop.n_neurons)
    for start in range(0, stimuli.size, step):
        out[start : start + step] = rng.poisson(pop.time_window * pop.rates(stimuli[start : start + step]))
    return out


def _grid_argmax(pop: Population, counts: sparse.csr_matrix, grid: np.ndarray) -> np.ndarray:
    """Index of the grid point with the largest log likelihood, for every trial."""
    best = np.full(counts.shape[0], -np.inf)
    best_idx = np.zeros(counts.shape[0], dtype=np.int64)
    step = block_rows(pop.n_neurons)
    for start in range(0, grid.size, step):
        part = grid[start : start + step]
        log_rates = pop.log_rates(part)  # (b, N)
        expected = pop.time_window * np.exp(log_rates).sum(axis=1)
        # Counts are sparse (about R*T spikes per trial), so this product costs trials * spikes * b.
        # log(T) * sum_n r_n is the same for every s and is left out.
        ll = np.asarray(counts @ log_rates.T) - expected[None, :]
        idx = np.argmax(ll, axis=1)
        val = ll[np.arange(ll.shape[0]), idx]
        better = val > best
        best[better] = val[better]
        best_idx[better] = idx[better] + start
    return best_idx


def ml_decode(
    pop: Population,
    counts: np.ndarray,
    grid: np.ndarray | None = None,
    max_refine: int = 60,
    tol: float = 1e-9,
) -> np.ndarray:
    """Maximum-likelihood estimates of s for each row of counts (trials x neurons).

    Refinement stops when every Fisher-scoring step is below `tol` posterior standard deviations.
    """
    grid = pop.s if grid is None else np.asarray(grid, dtype=float)
    counts = sparse.csr_matrix(np.atleast_2d(counts), dtype=float)
    lo, hi = pop.domain
    spacing = float(np.max(np.diff(grid))) if grid.size > 1 else hi - lo
    est = np.empty(counts.shape[0])
    step = block_rows(grid.size)
    for start in range(0, counts.shape[0], step):
        r = counts[start : start + step].tocoo()
        s_hat = grid[_grid_argmax(pop, r.tocsr(), grid)]
        left, right = np.maximum(s_hat - spacing, lo), np.minimum(s_hat + spacing, hi)
        for _ in range(max_refine):
            cum, dens, rate_dlog, fisher_sum = pop.local_sums(s_hat)
            # score = d(s) * [sum_n r_n dlog h(x_n) - T sum_n f_n dlog h(x_n)]; spikes enter sparsely.
            spike_term = np.bincount(
                r.row,
                weights=r.data * pop.tuning.dlog_h(cum[r.row] - pop.centres[r.col]),
                minlength=s_hat.size,
            )
            score = dens * (spike_term - pop.time_window * rate_dlog)
            info = pop.time_window * dens**2 * fisher_sum
            move = score / info
            s_hat = np.clip(s_hat + move, left, right)
            if np.max(np.abs(move) * np.sqrt(info)) < tol:
                break
        est[start : start + step] = s_hat
    return est


def finite_spike_factor(expected_spikes: np.ndarray) -> np.ndarray:
    """lambda * E[1/K | K >= 1] for K ~ Poisson(lambda): the MSE / CRB a dense population should show.

    Why: with unit-area Gaussian tuning the tiling sum is constant, so near s the log likelihood in the
    warped coordinate u = D(s) is -sum_n r_n (u - u_n)^2 / (2 w^2) + const, and the ML estimate is the
    mean of the K spiking neurons' centres: variance w^2 / K, against the bound w^2 / lambda. The ML
    decoder reaches the bound only as the expected spike count lambda grows (factor ~ 1 + 1/lambda),
    not as N grows at fixed spikes. Exact for constant gain and N large; approximate otherwise.
    """
    lam = np.atleast_1d(np.asarray(expected_spikes, dtype=float))
    out = np.empty(lam.size)
    for i, m in enumerate(lam):
        k = np.arange(1, int(m + 20 * np.sqrt(m) + 50))
        pk = stats.poisson.pmf(k, m)
        out[i] = m * np.sum(pk / k) / np.sum(pk)
    return out


@dataclass(frozen=True)
class DecoderReport:
    """Per test stimulus: decoder MSE, bias, the Cramer-Rao bound 1/I_F, and MSE / CRB.

    finite_spike: the MSE / CRB ratio expected from the finite spike count (see finite_spike_factor).
    """

    stimuli: np.ndarray
    mse: np.ndarray
    mse_se: np.ndarray
    bias: np.ndarray
    crb: np.ndarray
    expected_spikes: np.ndarray
    trials: int

    @property
    def finite_spike(self) -> np.ndarray:
        return finite_spike_factor(self.expected_spikes)

    @property
    def ratio(self) -> np.ndarray:
        return self.mse / self.crb

    @property
    def mean_ratio(self) -> float:
        return float(np.mean(self.ratio))

    def as_dict(self) -> dict[str, object]:
        return {
            "trials_per_stimulus": self.trials,
            "mean_mse_over_crb": self.mean_ratio,
            "mean_finite_spike_prediction": float(np.mean(self.finite_spike)),
            "per_stimulus": [
                {
                    "s": float(s),
                    "mse": float(m),
                    "mse_standard_error": float(se),
                    "bias": float(b),
                    "crb": float(c),
                    "mse_over_crb": float(m / c),
                    "expected_spikes": float(lam),
                    "finite_spike_prediction": float(fs),
                }
                for s, m, se, b, c, lam, fs in zip(
                    self.stimuli,
                    self.mse,
                    self.mse_se,
                    self.bias,
                    self.crb,
                    self.expected_spikes,
                    self.finite_spike,
                    strict=True,
                )
            ],
        }


def mse_vs_crb(
    pop: Population,
    stimuli: np.ndarray,
    trials: int,
    rng: np.random.Generator,
    grid: np.ndarray | None = None,
) -> DecoderReport:
    """Simulate `trials` responses at each stimulus, decode by ML, and compare the MSE with 1/I_F(s)."""
    stimuli = np.atleast_1d(np.asarray(stimuli, dtype=float))
    mse, se, bias = (np.empty(stimuli.size) for _ in range(3))
    for i, s in enumerate(stimuli):
        counts = draw_counts(pop, np.full(trials, s), rng)
        err = ml_decode(pop, counts, grid) - s
        mse[i] = np.mean(err**2)
        se[i] = np.std(err**2, ddof=1) / np.sqrt(trials)
        bias[i] = np.mean(err)
    crb = 1.0 / exact_fisher(pop, stimuli)
    spikes = pop.time_window * pop.total_rate(stimuli)
    return DecoderReport(stimuli, mse, se, bias, crb, spikes, trials)
