"""Elo scores and win rates from pairwise comparisons (Constitutional AI's evaluation).

A comparison says how likely model `a`'s reply beat model `b`'s: `p` in [0, 1] (a judge's order-averaged
probability, or 1/0 for a hard verdict). Scores are the Bradley-Terry fit of all comparisons at once,
P(a beats b) = 1 / (1 + 10^((E_b - E_a) / 400)), the standard Elo relation (paper-methods.md §5 [M]: the CAI
paper defers to Bai et al. 2022 for it), anchored so the `anchor` model scores 0 (the paper anchors its
curves at one snapshot). Intervals come from a bootstrap over the items compared (a prompt's comparisons are
resampled together, since they share the prompt).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ELO_SCALE = 400.0 / math.log(10.0)  # logit units -> Elo points
PRIOR_SD = 10.0  # logits; keeps a model that wins every comparison finite without moving ordinary fits


@dataclass(frozen=True)
class Comparison:
    item: str  # what was compared (a prompt): the bootstrap's unit
    a: str
    b: str
    p: float  # P(a's reply is better)


def fit_elo(comparisons: list[Comparison], anchor: str) -> dict[str, float]:
    """Elo scores of every model in `comparisons`, `anchor` at 0 (the maximum-likelihood Bradley-Terry fit of
    the soft outcomes)."""
    from scipy.optimize import minimize

    models = sorted({c.a for c in comparisons} | {c.b for c in comparisons})
    if anchor not in models:
        raise ValueError(f"anchor {anchor!r} is not among the compared models {models}")
    free = [m for m in models if m != anchor]
    index = {m: i for i, m in enumerate(free)}
    ia = np.array([index.get(c.a, -1) for c in comparisons])
    ib = np.array([index.get(c.b, -1) for c in comparisons])
    p = np.clip(np.array([c.p for c in comparisons], dtype=float), 0.0, 1.0)

    def strengths(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        padded = np.append(x, 0.0)  # index -1: the anchor
        return padded[ia], padded[ib]

    def loss(x: np.ndarray) -> tuple[float, np.ndarray]:
        sa, sb = strengths(x)
        d = sa - sb
        # -[p log σ(d) + (1-p) log σ(-d)], written stably
        nll = np.sum(np.logaddexp(0.0, -d) * p + np.logaddexp(0.0, d) * (1 - p))
        g_d = 1.0 / (1.0 + np.exp(-d)) - p
        grad = np.zeros_like(x)
        np.add.at(grad, ia[ia >= 0], g_d[ia >= 0])
        np.subtract.at(grad, ib[ib >= 0], g_d[ib >= 0])
        nll += 0.5 * np.sum(x**2) / PRIOR_SD**2
        grad += x / PRIOR_SD**2
        return float(nll), grad

    x = minimize(loss, np.zeros(len(free)), jac=True, method="L-BFGS-B").x if free else np.zeros(0)
    return {anchor: 0.0, **{m: float(x[index[m]] * ELO_SCALE) for m in free}}


def expected_win(elo_a: float, elo_b: float) -> float:
    return 1.0 / (1.0 + 10.0 ** ((elo_b - elo_a) / 400.0))


def _by_item(comparisons: list[Comparison]) -> dict[str, list[Comparison]]:
    groups: dict[str, list[Comparison]] = {}
    for c in comparisons:
        groups.setdefault(c.item, []).append(c)
    return groups


def elo_with_intervals(
    comparisons: list[Comparison], anchor: str, seed: int, n_resamples: int = 1000, level: float = 0.95
) -> dict[str, dict]:
    """{model: {"value", "ci": [low, high]}}: the fit and percentile intervals from resampling items."""
    point = fit_elo(comparisons, anchor)
    groups = list(_by_item(comparisons).values())
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {m: [] for m in point}
    for _ in range(n_resamples):
        picked = [c for i in rng.integers(len(groups), size=len(groups)) for c in groups[i]]
        if anchor not in {c.a for c in picked} | {c.b for c in picked}:
            continue
        fit = fit_elo(picked, anchor)
        for m in point:
            if m in fit:
                draws[m].append(fit[m])
    tail = (1 - level) / 2 * 100
    return {
        m: {
            "value": point[m],
            "ci": [float(np.percentile(draws[m], tail)), float(np.percentile(draws[m], 100 - tail))]
            if draws[m]
            else [None, None],
        }
        for m in point
    }


def win_rate(
    comparisons: list[Comparison], model: str, other: str, seed: int, n_resamples: int = 1000
) -> dict:
    """How often `model`'s reply beat `other`'s: the mean probability (soft wins) with a bootstrap interval
    over items, and the count of hard wins (p > 0.5), losses (p < 0.5) and ties."""
    ps = []
    items = []
    for c in comparisons:
        if (c.a, c.b) == (model, other):
            ps.append(c.p)
        elif (c.a, c.b) == (other, model):
            ps.append(1.0 - c.p)
        else:
            continue
        items.append(c.item)
    if not ps:
        return {"value": None, "ci": [None, None], "n": 0, "wins": 0, "losses": 0, "ties": 0}
    ps_arr = np.array(ps)
    groups: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(item, []).append(i)
    members = list(groups.values())
    rng = np.random.default_rng(seed)
    means = [
        float(
            np.mean(
                np.concatenate([ps_arr[members[i]] for i in rng.integers(len(members), size=len(members))])
            )
        )
        for _ in range(n_resamples)
    ]
    return {
        "value": float(ps_arr.mean()),
        "ci": [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))],
        "n": len(ps),
        "wins": int(np.sum(ps_arr > 0.5)),
        "losses": int(np.sum(ps_arr < 0.5)),
        "ties": int(np.sum(ps_arr == 0.5)),
    }
