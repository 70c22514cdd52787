"""One full analysis for a prior: optimum, Fisher check, thresholds, decoder. The CLI and figures use it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alignlab.popcode.fisher import ApproximationError, approx_fisher, approximation_error, exact_fisher
from alignlab.popcode.optimal import (
    Allocation,
    NumericResult,
    Objective,
    allocation_error,
    closed_form,
    numeric_optimum,
)
from alignlab.popcode.population import GaussianTuning, Population
from alignlab.popcode.predictions import PowerLawFit, fit_power_law, thresholds
from alignlab.popcode.prior import Prior
from alignlab.popcode.simulate import DecoderReport, mse_vs_crb

# Population sizes for the "approximation error against N" sweep (the requested N is added).
SWEEP_NEURONS = (10, 30, 100, 300, 1000, 3000)
# Fits and worst-case errors use the central part of the prior, away from the truncated tails.
CENTRAL_MASS = 0.98
DECODER_QUANTILES = np.linspace(0.1, 0.9, 9)


@dataclass(frozen=True)
class Analysis:
    prior: Prior
    objective: Objective
    neurons: int
    spikes: float
    time_window: float
    tuning: GaussianTuning
    allocation: Allocation
    numeric: NumericResult
    optimiser_error: dict[str, float]
    population: Population
    fisher_exact: np.ndarray
    fisher_approx: np.ndarray
    approx_error: ApproximationError
    error_sweep: list[ApproximationError]
    thresholds: np.ndarray
    fit: PowerLawFit
    fit_mask: np.ndarray
    decoder: DecoderReport
    seed: int

    def results(self) -> dict[str, object]:
        """Everything results.json records."""
        obj = self.objective
        return {
            "source": "Ganguli & Simoncelli 2010, Implicit encoding of prior probabilities in optimal neural populations (NIPS 23)",
            "parameters": {
                "prior": self.prior.name,
                "prior_domain": [float(self.prior.s[0]), float(self.prior.s[-1])],
                "grid_points": int(self.prior.s.size),
                "neurons": self.neurons,
                "spikes": self.spikes,
                "time_window": self.time_window,
                "tuning_width": self.tuning.width,
                "objective": obj.label,
                "alpha": obj.alpha,
                "seed": self.seed,
            },
            "predicted_exponents": {
                "density": obj.density_exponent,
                "gain": obj.gain_exponent,
                "fisher": obj.fisher_exponent,
                "threshold": obj.threshold_exponent,
            },
            "optimiser_check": {
                **self.optimiser_error,
                "iterations": self.numeric.iterations,
                "seconds": self.numeric.seconds,
                "converged": self.numeric.converged,
                "objective_closed_form": self.allocation.value(),
                "objective_numeric": self.numeric.allocation.value(),
            },
            "fisher_approximation": {
                "conv_fisher": self.tuning.conv_fisher(),
                "at_neurons": self.approx_error.as_dict(),
                "vs_neurons": [e.as_dict() for e in self.error_sweep],
            },
            "threshold_power_law": {
                "fitted_exponent": self.fit.exponent,
                "predicted_exponent": obj.threshold_exponent,
                "prefactor": self.fit.prefactor,
                "r2": self.fit.r2,
                "central_mass": CENTRAL_MASS,
                "threshold_definition": "1/sqrt(exact Fisher information), d'=1",
            },
            "decoder": self.decoder.as_dict(),
        }


def analyse(
    prior: Prior,
    neurons: int,
    spikes: float,
    objective: Objective,
    time_window: float = 1.0,
    tuning_width: float = 1.0,
    trials: int = 1000,
    seed: int = 0,
) -> Analysis:
    tuning = GaussianTuning(tuning_width)
    alloc = closed_form(prior, neurons, spikes, objective)
    numeric = numeric_optimum(prior, neurons, spikes, objective)
    pop = Population(prior.s, alloc.d, alloc.g, tuning, time_window)
    exact = exact_fisher(pop)
    approx = approx_fisher(pop)
    sweep = []
    for n in sorted({*SWEEP_NEURONS, neurons}):
        a = closed_form(prior, n, spikes, objective)
        sweep.append(
            approximation_error(Population(prior.s, a.d, a.g, tuning, time_window), prior, CENTRAL_MASS)
        )
    delta = thresholds(exact)
    mask = prior.central_mask(CENTRAL_MASS)
    fit = fit_power_law(prior.p[mask], delta[mask])
    rng = np.random.default_rng(seed)
    decoder = mse_vs_crb(pop, prior.quantile(DECODER_QUANTILES), trials, rng)
    return Analysis(
        prior=prior,
        objective=objective,
        neurons=neurons,
        spikes=spikes,
        time_window=time_window,
        tuning=tuning,
        allocation=alloc,
        numeric=numeric,
        optimiser_error=allocation_error(numeric.allocation, alloc),
        population=pop,
        fisher_exact=exact,
        fisher_approx=approx,
        approx_error=approximation_error(pop, prior, CENTRAL_MASS),
        error_sweep=sweep,
        thresholds=delta,
        fit=fit,
        fit_mask=mask,
        decoder=decoder,
        seed=seed,
    )
