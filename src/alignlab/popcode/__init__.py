"""Efficient population coding: optimal neural populations for a prior.

Implements Ganguli & Simoncelli (NIPS 2010), "Implicit encoding of prior probabilities in optimal neural
populations": a warped convolutional population of Poisson neurons, its Fisher information, the
optimal cell density and gain for infomax and discrimination objectives (closed form, checked by a
numeric optimiser), threshold predictions, and ML decoding against the Cramer-Rao bound.
"""

from alignlab.popcode.fisher import approx_fisher, approximation_error, exact_fisher
from alignlab.popcode.optimal import (
    Allocation,
    Objective,
    allocation_error,
    closed_form,
    numeric_optimum,
    parse_objective,
)
from alignlab.popcode.population import GaussianTuning, Population
from alignlab.popcode.predictions import fit_power_law, thresholds
from alignlab.popcode.prior import (
    Prior,
    from_function,
    from_samples,
    from_table,
    gaussian,
    load_prior_file,
    lognormal,
    resolve_prior,
)
from alignlab.popcode.simulate import draw_counts, ml_decode, mse_vs_crb

__all__ = [
    "Allocation",
    "GaussianTuning",
    "Objective",
    "Population",
    "Prior",
    "allocation_error",
    "approx_fisher",
    "approximation_error",
    "closed_form",
    "draw_counts",
    "exact_fisher",
    "fit_power_law",
    "from_function",
    "from_samples",
    "from_table",
    "gaussian",
    "load_prior_file",
    "lognormal",
    "ml_decode",
    "mse_vs_crb",
    "numeric_optimum",
    "parse_objective",
    "resolve_prior",
    "thresholds",
]
