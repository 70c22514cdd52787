"""Optimal cell density d(s) and gain g(s) for a prior (Ganguli & Simoncelli 2010, sec. 3).

Problem, with the Fisher approximation I_F(s) ~ d(s)^2 g(s) I_conv:

    maximise  integral p(s) f(d(s)^2 g(s)) ds
    subject to  integral d(s) ds = N          (cells)
                integral p(s) g(s) ds = R     (expected spike rate)

    infomax:            f(x) = log x       ->  d = N p,                  g = R
    discrimination(a):  f(x) = -x^(-a)     ->  d = N p^((a+1)/(3a+1))/Z,  g = R p^(-2a/(3a+1))/Z,
                                               Z = integral p^((a+1)/(3a+1))

Infomax is the a -> 0 limit of the discrimination family, so one exponent formula covers both.
`numeric_optimum` solves the discretised problem with L-BFGS-B and never uses these formulas; it is
the check on them (and on the derivation in the project notes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy.special import logsumexp

from alignlab.errors import AlignlabError
from alignlab.popcode.prior import Prior


@dataclass(frozen=True)
class Objective:
    """f in E_p[f(I_F)]: 'infomax' (f = log) or 'discrimination' with exponent alpha (f = -x^-alpha)."""

    kind: str
    alpha: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("infomax", "discrimination"):
            raise ValueError(f"unknown objective kind {self.kind!r}")
        if self.kind == "discrimination" and not self.alpha > 0:
            raise ValueError("discrimination objective needs alpha > 0")
        if self.kind == "infomax" and self.alpha != 0.0:
            raise ValueError("infomax has no alpha")

    @property
    def label(self) -> str:
        return "infomax" if self.kind == "infomax" else f"discrimination:{self.alpha:g}"

    # Exponents of the power laws in p (infomax is alpha = 0).
    @property
    def density_exponent(self) -> float:
        a = self.alpha
        return (a + 1) / (3 * a + 1)

    @property
    def gain_exponent(self) -> float:
        a = self.alpha
        return -2 * a / (3 * a + 1)

    @property
    def fisher_exponent(self) -> float:
        return 2 / (3 * self.alpha + 1)

    @property
    def threshold_exponent(self) -> float:
        """delta(s) proportional to p(s)^this, since delta ~ I_F^(-1/2)."""
        return -1 / (3 * self.alpha + 1)

    def f(self, x: np.ndarray) -> np.ndarray:
        return np.log(x) if self.kind == "infomax" else -(x ** (-self.alpha))

    def f_exp(self, y: np.ndarray) -> np.ndarray:
        """F(y) = f(exp(y)), computed without forming exp(y) (no overflow in the tails)."""
        return y if self.kind == "infomax" else -np.exp(-self.alpha * y)

    def f_exp_slope(self, y: np.ndarray) -> np.ndarray:
        """Derivative of F(y) = f(exp(y)) (that is x f'(x)), the form the optimiser needs."""
        return np.ones_like(y) if self.kind == "infomax" else self.alpha * np.exp(-self.alpha * y)


def parse_objective(text: str) -> Objective:
    """'infomax' or 'discrimination:ALPHA' (ALPHA > 0)."""
    spec = text.strip().lower()
    if spec == "infomax":
        return Objective("infomax")
    head, sep, tail = spec.partition(":")
    if head == "discrimination" and sep:
        try:
            alpha = float(tail)
        except ValueError:
            alpha = float("nan")
        if np.isfinite(alpha) and alpha > 0:
            return Objective("discrimination", alpha)
        raise AlignlabError(
            f"--objective {text!r}: ALPHA must be a positive number (alpha -> 0 is 'infomax')"
        )
    raise AlignlabError(
        f"--objective {text!r}: expected 'infomax' or 'discrimination:ALPHA' (e.g. discrimination:1)"
    )


@dataclass(frozen=True)
class Allocation:
    """Density d and gain g on the prior's grid, with the resources they were given."""

    prior: Prior
    objective: Objective
    neurons: float
    spikes: float
    d: np.ndarray
    g: np.ndarray

    @property
    def s(self) -> np.ndarray:
        return self.prior.s

    def used_neurons(self) -> float:
        return float(np.sum(self.prior.weights * self.d))

    def used_spikes(self) -> float:
        return float(np.sum(self.prior.weights * self.prior.p * self.g))

    def value(self) -> float:
        """The objective E_p[f(d^2 g)] (the constant I_conv and time window are left out)."""
        return objective_value(self.prior, self.objective, self.d, self.g)


def objective_value(prior: Prior, objective: Objective, d: np.ndarray, g: np.ndarray) -> float:
    return float(np.sum(prior.weights * prior.p * objective.f(d**2 * g)))


def _check_resources(neurons: float, spikes: float) -> None:
    if not neurons > 0:
        raise AlignlabError(f"number of neurons must be positive, got {neurons}")
    if not spikes > 0:
        raise AlignlabError(f"expected spike count must be positive, got {spikes}")


def closed_form(prior: Prior, neurons: float, spikes: float, objective: Objective) -> Allocation:
    """The paper's optimum: density and gain as power laws of the prior."""
    _check_resources(neurons, spikes)
    w, p = prior.weights, prior.p
    pd = p**objective.density_exponent
    z = float(np.sum(w * pd))
    d = neurons * pd / z
    pg = p**objective.gain_exponent
    g = (
        spikes * pg / float(np.sum(w * p * pg))
    )  # equals spikes * pg / z; normalising directly is exact on the grid
    return Allocation(prior, objective, float(neurons), float(spikes), d, g)


@dataclass(frozen=True)
class NumericResult:
    allocation: Allocation
    iterations: int
    evaluations: int
    seconds: float
    converged: bool
    message: str


def numeric_optimum(
    prior: Prior,
    neurons: float,
    spikes: float,
    objective: Objective,
    gtol: float = 1e-12,
    maxiter: int = 20000,
) -> NumericResult:
    """Maximise the discretised objective over all positive d, g on the grid (L-BFGS-B, analytic gradient).

    Parametrisation: d = N e^a / sum(w e^a), g = R e^b / sum(w p e^b), so both constraints hold for any
    unconstrained (a, b). The objective is concave in (a, b) (f(exp(.)) is concave and non-decreasing,
    its argument 2a + b minus log-sum-exp terms is concave), so the stationary point L-BFGS finds is the
    global optimum. Preconditioning: the Hessian diagonal in a scales as each point's share of the cell
    budget, w / sum(w) at the uniform start and about w p near the optimum; the optimiser's variables are
    z = a * (w p / max)^(1/4), halfway between the two in log scale (it uses the prior, never the
    closed form). Resources are normalised to N = R = 1, which changes f only by a constant factor
    (power) or offset (log); the objective is divided by its slope at the start.
    """
    _check_resources(neurons, spikes)
    w, p = prior.weights, prior.p
    wp = w * p
    log_w, log_wp = np.log(w), np.log(wp)
    m = p.size
    scale = (wp / wp.max()) ** -0.25

    def unpack(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # log d and log g (for N = R = 1), in the log domain so that no tail underflows.
        a, b = z[:m] * scale, z[m:] * scale
        return a - logsumexp(log_w + a), b - logsumexp(log_wp + b)

    def value_and_grad(z: np.ndarray, norm: float) -> tuple[float, np.ndarray]:
        log_d, log_g = unpack(z)
        y = 2 * log_d + log_g  # log of d^2 g
        value = float(np.sum(wp * objective.f_exp(y)))
        gy = wp * objective.f_exp_slope(y)  # dJ/dy_i
        total = float(np.sum(gy))
        # Each point's share of the cell and spike budgets enters through the normalisers.
        grad_a = 2 * (gy - total * np.exp(log_w + log_d))
        grad_b = gy - total * np.exp(log_wp + log_g)
        grad = np.concatenate([grad_a * scale, grad_b * scale])
        return -value / norm, -grad / norm

    z0 = np.zeros(2 * m)
    start = time.perf_counter()
    # Scale by the objective's sensitivity at the start, sum_i w_i p_i F'(y_i) > 0 (1 for infomax).
    y0 = 2 * unpack(z0)[0] + unpack(z0)[1]
    norm = float(np.sum(wp * objective.f_exp_slope(y0)))
    res = optimize.minimize(
        value_and_grad,
        z0,
        args=(norm,),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": maxiter, "maxfun": 2 * maxiter, "gtol": gtol, "ftol": 1e-15, "maxcor": 30},
    )
    seconds = time.perf_counter() - start
    log_d, log_g = unpack(res.x)
    alloc = Allocation(
        prior, objective, float(neurons), float(spikes), neurons * np.exp(log_d), spikes * np.exp(log_g)
    )
    return NumericResult(alloc, int(res.nit), int(res.nfev), seconds, bool(res.success), str(res.message))


def allocation_error(a: Allocation, b: Allocation, mass: float = 0.99) -> dict[str, float]:
    """How far two allocations are apart.

    max_rel_*: largest relative difference over the central `mass` of the prior.
    mean_rel_*: relative difference averaged with the weight each point has in its constraint
    (d by cell share, g by spike share), which covers the whole grid.
    """
    mask = a.prior.central_mask(mass)
    w, p = a.prior.weights, a.prior.p
    rel_d = np.abs(a.d - b.d) / np.abs(b.d)
    rel_g = np.abs(a.g - b.g) / np.abs(b.g)
    return {
        "max_rel_density": float(rel_d[mask].max()),
        "max_rel_gain": float(rel_g[mask].max()),
        "mean_rel_density": float(np.sum(w * b.d * rel_d) / np.sum(w * b.d)),
        "mean_rel_gain": float(np.sum(w * p * b.g * rel_g) / np.sum(w * p * b.g)),
    }
