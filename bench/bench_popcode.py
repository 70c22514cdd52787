"""Benchmark alignlab.popcode: optimiser, exact Fisher information and ML decoding at N=1000, 2000-point grid.

Run:  .venv/bin/python bench/bench_popcode.py            (prints a markdown table)
      .venv/bin/python bench/bench_popcode.py --quick    (fewer repeats and trials)

Each time is the best of several repeats (wall clock, time.perf_counter). Baselines are measured in the
same run, so the speed-up ratios do not depend on the machine's absolute speed.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from collections.abc import Callable

import numpy as np

from alignlab.popcode.fisher import exact_fisher
from alignlab.popcode.optimal import Objective, allocation_error, closed_form, numeric_optimum
from alignlab.popcode.population import Population
from alignlab.popcode.prior import gaussian
from alignlab.popcode.simulate import draw_counts, ml_decode

N, GRID, SPIKES = 1000, 2000, 20.0


def best_of(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    best, out = math.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def fisher_per_neuron_loop(pop: Population, x: np.ndarray) -> np.ndarray:
    """Baseline: one neuron at a time (numpy over stimuli), f'^2 / f as written."""
    cum, dens = pop.warp(x)
    total = np.zeros(x.size)
    for n in range(pop.n_neurons):
        off = cum - pop.centres[n]
        f = pop.gains[n] * pop.tuning.h(off)
        fp = pop.gains[n] * pop.tuning.dh(off) * dens
        ok = f > 0
        total[ok] += fp[ok] ** 2 / f[ok]
    return pop.time_window * total


def fisher_scalar_loop(pop: Population, x: np.ndarray) -> np.ndarray:
    """Baseline: plain Python double loop over stimuli and neurons."""
    cum, dens = pop.warp(x)
    w = pop.tuning.width
    norm = 1 / (w * math.sqrt(2 * math.pi))
    out = []
    for c, dd in zip(cum.tolist(), dens.tolist(), strict=True):
        acc = 0.0
        for u, g in zip(pop.centres.tolist(), pop.gains.tolist(), strict=True):
            z = c - u
            f = g * norm * math.exp(-0.5 * (z / w) ** 2)
            if f > 0:
                fp = -f * z / w**2 * dd
                acc += fp * fp / f
        out.append(acc)
    return pop.time_window * np.array(out)


def decode_dense_loop(pop: Population, counts: np.ndarray) -> np.ndarray:
    """Baseline: per trial, the full Poisson log likelihood on the grid (no sparse counts, no refinement)."""
    log_lam = np.log(pop.time_window) + pop.log_rates(pop.s)  # analytic log: np.log(rates) underflows to -inf
    lam = np.exp(log_lam)
    return np.array([pop.s[np.argmax(log_lam @ c - lam.sum(axis=1))] for c in counts])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    repeats = 2 if args.quick else 5
    trials = 200 if args.quick else 1000

    prior = gaussian(points=GRID)
    rows: list[tuple[str, str, str]] = []

    # 1. Optimum: closed form against the numeric optimiser (L-BFGS-B over 2 x 2000 variables).
    for obj in (Objective("infomax"), Objective("discrimination", 0.5), Objective("discrimination", 1.0)):
        t_cf, cf = best_of(lambda obj=obj: closed_form(prior, N, SPIKES, obj), repeats * 20)
        t_num, num = best_of(lambda obj=obj: numeric_optimum(prior, N, SPIKES, obj), repeats)
        err = allocation_error(num.allocation, cf, mass=0.99)
        rows.append(
            (
                f"optimum, {obj.label}: closed form vs numeric (L-BFGS-B, {num.iterations} iterations)",
                f"{t_cf * 1e3:.3f} ms vs {t_num * 1e3:.0f} ms",
                f"closed form {t_num / t_cf:.0f}x faster; max rel. diff {max(err.values()):.1e}",
            )
        )

    # 2. Exact Fisher information, N = 1000 on 2000 points.
    alloc = closed_form(prior, N, SPIKES, Objective("discrimination", 1.0))
    pop = Population(prior.s, alloc.d, alloc.g)
    t_win, fisher_win = best_of(lambda: exact_fisher(pop), repeats)
    t_vec, fisher = best_of(lambda: exact_fisher(pop, method="dense"), repeats)
    t_loop, fisher_loop = best_of(lambda: fisher_per_neuron_loop(pop, prior.s), max(1, repeats // 2))
    sub = prior.s[:: GRID // 100]  # the scalar loop is timed on 100 stimuli and scaled to 2000
    t_scalar_sub, fisher_scalar = best_of(lambda: fisher_scalar_loop(pop, sub), 1)
    t_scalar = t_scalar_sub * GRID / sub.size
    assert np.allclose(fisher, fisher_loop, rtol=1e-10)
    assert np.allclose(fisher, fisher_win, rtol=1e-12)
    assert np.allclose(fisher[:: GRID // 100], fisher_scalar, rtol=1e-10)
    # Ratios against the per-neuron loop (the baseline, 1x); above 1 is faster.
    fisher_rows = [
        ("exact Fisher, scalar double loop (timed on 100 stimuli, x20)", t_scalar),
        ("exact Fisher, per-neuron loop (baseline)", t_loop),
        ("exact Fisher, vectorised dense (stimuli x all neurons, blocks)", t_vec),
        ("exact Fisher, vectorised window (neurons within 12 widths; default)", t_win),
    ]
    for what, t in fisher_rows:
        rows.append((what, f"{t * 1e3:.2f} ms", f"{t_loop / t:.2f}x"))

    # 3. ML decoding of `trials` responses at the prior's median.
    rng = np.random.default_rng(0)
    counts = draw_counts(pop, np.full(trials, 0.0), rng)
    t_dec, est = best_of(lambda: ml_decode(pop, counts), repeats)
    n_base = max(20, trials // 10)
    t_base, est_base = best_of(lambda: decode_dense_loop(pop, counts[:n_base]), 1)
    per_trial, per_trial_base = t_dec / trials, t_base / n_base
    # The baseline stops at the grid; the vectorised decoder refines within one grid step of the same point.
    assert np.all(np.abs(est[:n_base] - est_base) <= prior.step * 1.0001)
    rows.append(
        (
            f"ML decode, dense per-trial loop, grid only ({n_base} trials; baseline)",
            f"{per_trial_base * 1e6:.0f} us/trial",
            "1x",
        )
    )
    rows.append(
        (
            f"ML decode, vectorised (sparse counts, grid + Fisher scoring; {trials} trials)",
            f"{per_trial * 1e6:.0f} us/trial",
            f"{per_trial_base / per_trial:.1f}x",
        )
    )
    crb = 1 / exact_fisher(pop, np.array([0.0]))[0]
    mse = float(np.mean(est**2))

    cpu = platform.processor() or platform.machine()
    print(f"# popcode benchmark: N={N} neurons, {GRID}-point grid, R={SPIKES:g}, Gaussian prior")
    print(f"# python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs ({cpu})")
    print(f"# best of {repeats} repeats; decoder MSE/CRB at s=0 over {trials} trials: {mse / crb:.3f}")
    print()
    print("| measurement | time | speed vs baseline |")
    print("|---|---|---|")
    for what, t, ratio in rows:
        print(f"| {what} | {t} | {ratio} |")


if __name__ == "__main__":
    main()
