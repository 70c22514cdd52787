"""Figures in the layout of Ganguli & Simoncelli (2010): prior, density, gain, tuning curves, thresholds.

Plus three checks the paper does not draw: the Fisher approximation error against N, the decoder's
MSE against the Cramer-Rao bound, and a comparison of the objectives for the same prior.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never open a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from alignlab.popcode.analysis import Analysis  # noqa: E402
from alignlab.popcode.optimal import Objective, closed_form  # noqa: E402

MAX_CURVES = 30


def _save(fig: plt.Figure, out: Path, name: str) -> Path:
    path = out / name
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _prior(ax: plt.Axes, a: Analysis) -> None:
    ax.plot(a.prior.s, a.prior.p, color="k")
    ax.set(title=f"prior p(s) ({a.prior.name})", xlabel="s", ylabel="p(s)")


def _density(ax: plt.Axes, a: Analysis) -> None:
    step = max(1, a.prior.s.size // 40)
    ax.plot(a.prior.s, a.allocation.d, color="C0", label="closed form")
    ax.plot(
        a.prior.s[::step], a.numeric.allocation.d[::step], "o", ms=3, color="C3", label="numeric optimiser"
    )
    ax.set(
        title=f"cell density d(s) ∝ p^{a.objective.density_exponent:.3g}",
        xlabel="s",
        ylabel="cells per unit s",
    )
    ax.legend(fontsize=8)


def _gain(ax: plt.Axes, a: Analysis) -> None:
    step = max(1, a.prior.s.size // 40)
    ax.plot(a.prior.s, a.allocation.g, color="C1", label="closed form")
    ax.plot(
        a.prior.s[::step], a.numeric.allocation.g[::step], "o", ms=3, color="C3", label="numeric optimiser"
    )
    ax.set(title=f"gain g(s) ∝ p^{a.objective.gain_exponent:.3g}", xlabel="s", ylabel="spikes / unit time")
    ax.legend(fontsize=8)


def _tuning(ax: plt.Axes, a: Analysis) -> None:
    pop = a.population
    every = max(1, int(np.ceil(pop.n_neurons / MAX_CURVES)))
    chosen = np.arange(0, pop.n_neurons, every)
    rates = pop.rates(a.prior.s)[:, chosen]
    ax.plot(a.prior.s, rates, lw=0.8)
    shown = "all" if every == 1 else f"every {every}th of"
    ax.set(title=f"tuning curves ({shown} {pop.n_neurons})", xlabel="s", ylabel="rate (spikes / unit time)")


def _thresholds(ax: plt.Axes, a: Analysis) -> None:
    ax.plot(a.prior.s, a.thresholds, color="C2", label="1/√I_F (exact)")
    approx = 1 / np.sqrt(a.fisher_approx)
    ax.plot(a.prior.s, approx, "--", color="k", lw=0.8, label="1/√(d²g I_conv)")
    ax.set(title="discrimination threshold δ(s)", xlabel="s", ylabel="δ(s)", yscale="log")
    ax.legend(fontsize=8)


def _power_law(ax: plt.Axes, a: Analysis) -> None:
    m = a.fit_mask
    ax.loglog(a.prior.p[m], a.thresholds[m], ".", ms=2, color="C2", label="population (central 98%)")
    p = np.geomspace(a.prior.p[m].min(), a.prior.p[m].max(), 50)
    ax.loglog(
        p,
        a.fit(p),
        color="k",
        lw=0.8,
        label=f"fit: exponent {a.fit.exponent:.3f} (theory {a.objective.threshold_exponent:.3f})",
    )
    ax.set(title="threshold against prior", xlabel="p(s)", ylabel="δ(s)")
    ax.legend(fontsize=8)


def _fisher_error(ax: plt.Axes, a: Analysis) -> None:
    n = [e.neurons for e in a.error_sweep]
    ax.loglog(n, [e.mean_rel for e in a.error_sweep], "o-", label="prior-weighted mean")
    ax.loglog(n, [max(e.central_max_rel, 1e-16) for e in a.error_sweep], "s--", label="max, central 98%")
    ax.set(title="Fisher approximation error", xlabel="neurons N", ylabel="|I_exact − I_approx| / I_exact")
    ax.legend(fontsize=8)


def _decoder(ax: plt.Axes, a: Analysis) -> None:
    r = a.decoder
    ax.errorbar(
        r.stimuli, r.mse, yerr=2 * r.mse_se, fmt="o", ms=4, label=f"ML decoder MSE ({r.trials} trials)"
    )
    ax.plot(r.stimuli, r.crb, "k_", ms=14, mew=2, label="Cramér–Rao bound 1/I_F")
    ax.plot(
        r.stimuli,
        r.crb * r.finite_spike,
        "_",
        color="C3",
        ms=14,
        mew=1.5,
        label="bound × finite-spike factor",
    )
    ax.set(
        title=f"decoder vs bound (mean MSE/CRB {r.mean_ratio:.3f})", xlabel="s", ylabel="MSE", yscale="log"
    )
    ax.legend(fontsize=8)


def _comparison(axes: np.ndarray, a: Analysis) -> None:
    """Density, gain and threshold shape for several objectives, each normalised at the prior's mode."""
    objectives = [Objective("infomax"), Objective("discrimination", 0.5), Objective("discrimination", 1.0)]
    if a.objective not in objectives:
        objectives.append(a.objective)
    mode = int(np.argmax(a.prior.p))
    for obj in objectives:
        alloc = closed_form(a.prior, a.neurons, a.spikes, obj)
        delta = 1 / np.sqrt(alloc.d**2 * alloc.g)
        for ax, y in zip(axes, (alloc.d, alloc.g, delta), strict=True):
            ax.plot(a.prior.s, y / y[mode], label=obj.label)
    for ax, what in zip(axes, ("density d(s)", "gain g(s)", "threshold δ(s)"), strict=True):
        ax.set(title=f"{what}, relative to the mode", xlabel="s", yscale="log")
    axes[0].legend(fontsize=8)


def make_figures(a: Analysis, out: Path) -> list[Path]:
    """Write every figure as PNG into out; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    singles = {
        "prior.png": _prior,
        "density.png": _density,
        "gain.png": _gain,
        "tuning_curves.png": _tuning,
        "fisher_error.png": _fisher_error,
        "decoder.png": _decoder,
    }
    for name, draw in singles.items():
        fig, ax = plt.subplots(figsize=(5, 3.6))
        draw(ax, a)
        paths.append(_save(fig, out, name))

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    _thresholds(axes[0], a)
    _power_law(axes[1], a)
    paths.append(_save(fig, out, "thresholds.png"))

    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5))
    for ax, draw in zip(
        axes.ravel(), (_prior, _density, _gain, _tuning, _thresholds, _power_law), strict=True
    ):
        draw(ax, a)
    fig.suptitle(
        f"Optimal population for {a.prior.name} prior, {a.objective.label}, N={a.neurons}, R={a.spikes:g}"
    )
    paths.append(_save(fig, out, "summary.png"))

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    _comparison(axes, a)
    paths.append(_save(fig, out, "objectives.png"))
    return paths
