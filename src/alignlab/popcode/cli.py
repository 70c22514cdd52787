"""`alignlab popcode`: optimal population for a prior, with figures and results.json.

The main CLI calls register(subparsers); `python -m alignlab.popcode.cli ...` runs it standalone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from alignlab import option_types as ot
from alignlab.errors import AlignlabError

DESCRIPTION = (
    "Optimal neural population for a stimulus prior (Ganguli & Simoncelli, NIPS 2010): cell density and "
    "gain in closed form, checked by a numeric optimiser; Fisher information and its approximation; "
    "discrimination thresholds and their power law in the prior; ML decoding against the Cramer-Rao bound."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `popcode` subcommand."""
    parser = subparsers.add_parser(
        "popcode", help="optimal neural populations for a prior", description=DESCRIPTION
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prior",
        default="gaussian",
        help="gaussian | lognormal | FILE (CSV with two columns s,p, or one column of samples for a kernel density)",
    )
    parser.add_argument(
        "--neurons", type=ot.whole_number(1), default=100, help="number of neurons N (default 100)"
    )
    parser.add_argument(
        "--spikes",
        type=ot.positive_number("a spike rate"),
        default=20.0,
        help="expected total spike rate R of the population; R*T spikes per trial (default 20)",
    )
    parser.add_argument(
        "--objective", default="infomax", help="infomax | discrimination:ALPHA, ALPHA > 0 (default infomax)"
    )
    parser.add_argument(
        "--out",
        required=True,
        type=ot.output_folder,
        help="output directory for the PNG figures and results.json",
    )
    parser.add_argument(
        "--time-window",
        type=ot.positive_number("a time window"),
        default=1.0,
        help="counting window T (default 1)",
    )
    parser.add_argument(
        "--tuning-width",
        type=ot.positive_number("a tuning width"),
        default=1.0,
        help="tuning s.d. in neuron spacings on the warped axis (default 1)",
    )
    parser.add_argument(
        "--grid", type=ot.whole_number(50), default=2000, help="stimulus grid points (default 2000)"
    )
    parser.add_argument(
        "--trials",
        type=ot.whole_number(2),
        default=1000,
        help="decoder trials per test stimulus (default 1000)",
    )
    parser.add_argument(
        "--bandwidth",
        type=ot.positive_number("a bandwidth factor"),
        default=None,
        help="KDE bandwidth factor for sample files",
    )
    parser.add_argument(
        "--seed", type=ot.seed, default=0, help="random seed for the spike simulation (default 0)"
    )


def run(args: argparse.Namespace) -> int:
    """Do the analysis, write figures and results.json into args.out; return the exit code."""
    # Imported here so that `alignlab --help` does not pay for scipy and matplotlib.
    from alignlab.popcode.analysis import analyse
    from alignlab.popcode.figures import make_figures
    from alignlab.popcode.optimal import parse_objective
    from alignlab.popcode.prior import resolve_prior

    objective = parse_objective(args.objective)
    prior = resolve_prior(args.prior, points=args.grid, bandwidth=args.bandwidth)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise AlignlabError(f"--out {out}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AlignlabError(f"--out {out}: cannot create ({exc.strerror or exc})") from exc

    analysis = analyse(
        prior,
        args.neurons,
        args.spikes,
        objective,
        time_window=args.time_window,
        tuning_width=args.tuning_width,
        trials=args.trials,
        seed=args.seed,
    )
    figures = make_figures(analysis, out)
    results = analysis.results()
    results["figures"] = [p.name for p in figures]
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")

    err = analysis.approx_error
    opt = analysis.optimiser_error
    print(f"prior {prior.name}, {objective.label}, N={analysis.population.n_neurons}, R={args.spikes:g}")
    print(
        f"numeric optimiser vs closed form: max rel. error density {opt['max_rel_density']:.1e}, "
        f"gain {opt['max_rel_gain']:.1e}"
    )
    print(f"Fisher approximation error: mean {err.mean_rel:.2e}, central max {err.central_max_rel:.2e}")
    print(
        f"threshold ~ p^{analysis.fit.exponent:.4f} (theory {objective.threshold_exponent:.4f}, r2 {analysis.fit.r2:.5f})"
    )
    print(f"decoder MSE / Cramer-Rao bound: {analysis.decoder.mean_ratio:.3f}")
    print(f"wrote {len(figures)} figures and results.json to {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m alignlab.popcode.cli", description=DESCRIPTION)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except AlignlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
