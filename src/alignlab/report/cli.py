"""`alignlab index` and `alignlab report`."""

from __future__ import annotations

import sys
from pathlib import Path

from alignlab import option_types as ot
from alignlab.atomic import replacing, write_text_atomic
from alignlab.errors import AlignlabError

FORMATS = ("table", "csv", "parquet", "json")


def register(sub) -> None:
    p = sub.add_parser("index", help="every run's metrics as one long table")
    p.add_argument(
        "root",
        type=ot.existing_folder,
        nargs="?",
        default=Path("runs"),
        help="folder of run folders (default: runs)",
    )
    p.add_argument("--format", choices=FORMATS, default="table", help="table (printed), csv, parquet or json")
    p.add_argument(
        "-o",
        "--output",
        type=ot.output_file,
        default=None,
        help="file to write (default: stdout; parquet needs one)",
    )
    p.add_argument("--all-groups", action="store_true", help="table format: per-category rows too")
    p.set_defaults(func=_run_index)

    r = sub.add_parser("report", help="one offline HTML report of every run")
    r.add_argument(
        "root",
        type=ot.existing_folder,
        nargs="?",
        default=Path("runs"),
        help="folder of run folders (default: runs)",
    )
    r.add_argument(
        "-o",
        "--output",
        type=ot.output_file,
        default=Path("report.html"),
        help="HTML file (default: report.html)",
    )
    r.add_argument(
        "--samples-per-run",
        type=ot.whole_number(0),
        default=200,
        help="samples in each run's drill-down (0: none)",
    )
    r.add_argument(
        "--detail-runs",
        type=ot.whole_number(0),
        default=30,
        help="runs with their own figures and drill-down, newest first",
    )
    r.add_argument("--title", default="alignlab report")
    r.add_argument(
        "--axis",
        default="parameters",
        metavar="NAME",
        help="the scaling figures' x axis: parameters (default), or an axis the model specs declare as "
        "@NAME=VALUE (e.g. rlhf_steps)",
    )
    r.set_defaults(func=_run_report)


def warn_problems(runset) -> None:
    """A warning line per folder that could not be read or checked, then one line naming those left out."""
    for problem in runset.problems:
        print(f"warning: {problem}", file=sys.stderr)
    summary = runset.summary()
    if summary:
        print(f"note: {summary}", file=sys.stderr)


def _run_index(args) -> int:
    from alignlab.report import build_index, find_runs

    runset = find_runs(args.root)
    warn_problems(runset)
    index = build_index(runset.runs)
    incomplete = sum(not r.complete for r in runset.runs)
    if incomplete:
        print(
            f"note: {incomplete} run(s) without metrics.json (not finished) are not in the index",
            file=sys.stderr,
        )
    if args.format == "table":
        _print_table(index if args.all_groups else index[index["group"] == "overall"])
        return 0
    if args.format == "parquet" and args.output is None:
        raise AlignlabError("--format parquet needs -o FILE")
    try:
        if args.format == "csv":
            text = index.to_csv(index=False)
        elif args.format == "json":
            text = index.to_json(orient="records", indent=1) + "\n"
        else:
            try:
                with replacing(args.output) as tmp:
                    index.to_parquet(tmp, index=False)
            except ImportError as exc:
                raise AlignlabError(f"--format parquet needs pyarrow ({exc})") from exc
            print(f"{len(index)} rows written to {args.output}", file=sys.stderr)
            return 0
        if args.output is None:
            sys.stdout.write(text)
        else:
            write_text_atomic(args.output, text)
            print(f"{len(index)} rows written to {args.output}", file=sys.stderr)
    except OSError as exc:
        raise AlignlabError(f"cannot write {args.output}: {exc.strerror or exc}") from exc
    return 0


def _print_table(index) -> None:
    import pandas as pd
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{index['run'].nunique()} runs · {len(index)} numbers", title_justify="left")
    for column in (
        "run",
        "experiment",
        "model",
        "parameters",
        "condition",
        "group",
        "metric",
        "value",
        "ci",
        "n",
    ):
        table.add_column(column, justify="right" if column in ("parameters", "value", "n") else "left")
    for rec in index.itertuples(index=False):
        ci = "" if pd.isna(rec.ci_low) else f"[{rec.ci_low:.3f}, {rec.ci_high:.3f}]"
        table.add_row(  # names come from run folders: escaped, so "[/x]" is text, not rich markup
            *map(escape, (rec.run, rec.experiment, rec.model)),
            "" if pd.isna(rec.parameters) else f"{int(rec.parameters):,}",
            *map(escape, (rec.condition, rec.group, rec.metric)),
            "" if pd.isna(rec.value) else f"{rec.value:.4g}",
            ci,
            "" if pd.isna(rec.n) else str(int(rec.n)),
        )
    Console().print(table)


def _run_report(args) -> int:
    from alignlab.report import ReportOptions, write_report

    axis = args.axis.strip().lower() or "parameters"
    runset = write_report(
        args.root,
        args.output,
        ReportOptions(
            samples_per_run=args.samples_per_run,
            detail_runs=args.detail_runs,
            title=args.title,
            axis=axis,
        ),
    )
    warn_problems(runset)
    if axis != "parameters" and not any(axis in run.axes for run in runset.runs):
        # else the page just lacks the figures, and a typo in --axis passes for missing data
        print(f"note: no run declares axis {axis!r} (@{axis}=VALUE in its model spec)", file=sys.stderr)
    print(f"report of {len(runset.runs)} run{'s' if len(runset.runs) != 1 else ''} written to {args.output}")
    return 0
