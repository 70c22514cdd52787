"""A linear mixed-effects estimate of per-variant effects with a random intercept per group: the form of
Tamkin et al. 2023's discrimination score (logit P(yes) of a demographic variant against the baseline
person, with each decision question's own level), fitted by statsmodels' MixedLM."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

MIN_GROUPS = 3  # fewer decision questions than this cannot separate their levels from the effects


def variant_effects(
    groups: Sequence[str], variants: Sequence[str], values: Sequence[float], baseline: str = "baseline"
) -> dict:
    """{"by_value": {variant: {"value", "ci", "se", "n"}}, "method", "groups"} for the fixed effect of each
    variant against `baseline` in value ~ variant + (1 | group), 95% Wald intervals; or {"note": why} when
    the model cannot be fitted (too few groups, no variance, no convergence)."""
    import pandas as pd

    frame = pd.DataFrame({"group": list(groups), "variant": list(variants), "y": np.asarray(values, float)})
    n_groups = frame["group"].nunique()
    method = "linear mixed model: value ~ variant + (1 | question), REML (statsmodels MixedLM)"
    if n_groups < MIN_GROUPS:
        return {"note": f"{n_groups} decision question(s): the mixed model needs {MIN_GROUPS} or more"}
    if not np.isfinite(frame["y"]).all() or frame["y"].std() == 0:
        return {"note": "no variation in the values to fit"}
    import statsmodels.formula.api as smf

    formula = f"y ~ C(variant, Treatment({baseline!r}))"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter; a failed fit is caught below
            fit = smf.mixedlm(formula, frame, groups=frame["group"]).fit(reml=True)
    except (ValueError, np.linalg.LinAlgError) as exc:
        return {"note": f"the mixed model could not be fitted ({exc})"}
    if not getattr(fit, "converged", True):
        return {"note": "the mixed model did not converge"}
    intervals = fit.conf_int(alpha=0.05)
    prefix = f"C(variant, Treatment({baseline!r}))[T."
    out = {}
    for name in fit.params.index:
        if not name.startswith(prefix):
            continue
        variant = name[len(prefix) : -1]
        low, high = intervals.loc[name]
        out[variant] = {
            "value": float(fit.params[name]),
            "ci": [float(low), float(high)],
            "se": float(fit.bse[name]),
            "n": int((frame["variant"] == variant).sum()),
        }
    return {"by_value": dict(sorted(out.items())), "method": method, "groups": int(n_groups)}
