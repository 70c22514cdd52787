"""Efficient population coding: optimal neural populations for a prior.

Implements Ganguli & Simoncelli (NIPS 2010), "Implicit encoding of prior probabilities in optimal neural
populations": a warped convolutional population of Poisson neurons, its Fisher information, the
optimal cell density and gain for infomax and discrimination objectives (closed form, checked by a
numeric optimiser), threshold predictions, and ML decoding against the Cramer-Rao bound.
"""

import importlib

# Names resolve on first use, so `alignlab --help` and other commands do not pay for scipy.stats.
_WHERE = {
    "fisher": ("approx_fisher", "approximation_error", "exact_fisher"),
    "optimal": ("Allocation", "Objective", "allocation_error", "closed_form", "numeric_optimum", "parse_objective"),
    "population": ("GaussianTuning", "Population"),
    "predictions": ("fit_power_law", "thresholds"),
    "prior": (
        "Prior", "from_function", "from_samples", "from_table", "gaussian", "load_prior_file", "lognormal",
        "resolve_prior",
    ),
    "simulate": ("draw_counts", "ml_decode", "mse_vs_crb"),
}  # fmt: skip
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'alignlab.popcode' has no attribute {name!r}")
    return getattr(importlib.import_module(f"alignlab.popcode.{_MODULE_OF[name]}"), name)


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
