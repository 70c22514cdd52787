"""`alignlab datasets [NAME ...] [--data-dir D] [--verify] [--download NAME]`.

Without NAME: one summary row per dataset. With NAME(s): one row per file of those datasets.
Exit status 1 when a checksum does not match, else 0.
"""

from __future__ import annotations

import argparse
from collections import Counter

from alignlab import option_types
from alignlab.data import registry
from alignlab.errors import AlignlabError


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "datasets",
        help="list the registered datasets, where their files are, and whether their checksums match",
        description=(
            "List registered datasets and their files: found in the data directory (--data-dir or "
            "ALIGNLAB_DATA_DIR) or in the download cache, with row counts and checksum state."
        ),
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="show these datasets file by file")
    p.add_argument("--data-dir", default=None, help="data directory laid out like ../shared/datasets")
    p.add_argument(
        "--verify", action="store_true", help="hash every file found (default: compare sizes only)"
    )
    p.add_argument(
        "--download",
        action="append",
        default=[],
        metavar="NAME",
        help="download this dataset's missing files into the cache (repeatable; 'all' for every one)",
    )
    p.add_argument(
        "--base-url",
        type=option_types.url,
        default=None,
        help="replace https://raw.githubusercontent.com in download URLs",
    )
    p.set_defaults(func=run)
    return p


def _style(state: str) -> str:
    return {"ok": "green", "mismatch": "bold red", "missing": "yellow", "unverified": "cyan"}.get(state, "")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    ddir = registry.data_dir(args.data_dir)
    names = list(args.names or [])
    for n in names:
        registry.get(n)

    downloads = list(getattr(args, "download", []) or [])
    if "all" in downloads:
        downloads = [n for n, s in registry.REGISTRY.items() if any(f.url for f in s.data_files)]
    for n in downloads:
        spec = registry.get(n)
        with console.status(f"downloading {n} ..."):
            located = registry.locate(spec, ddir, download=True, base_url=getattr(args, "base_url", None))
        for w in located.warnings:
            console.print(f"[yellow]warning:[/] {w}")
        console.print(f"{n}: {len(located)} of {len(spec.data_files)} data files available")

    rows = registry.dataset_status(ddir, verify_hashes=args.verify, names=names or None)
    where = f"data dir {ddir}" if ddir is not None else "no data dir"
    title = f"datasets ({where}; cache {registry.datasets_cache()})"

    if names:
        table = Table(title=title)
        for col in ("dataset", "file", "found", "rows", "checksum"):
            table.add_column(col, justify="right" if col == "rows" else "left", overflow="fold")
        for r in rows:
            state = f"[{_style(r.checksum)}]{r.checksum}[/]" if _style(r.checksum) else r.checksum
            if r.detail:
                state += f" ({r.detail})"
            table.add_row(r.dataset, r.file, r.where, "" if r.rows is None else f"{r.rows:,}", state)
    else:
        table = Table(title=title)
        for col in ("dataset", "license", "files found", "data rows", "checksum", "upstream"):
            table.add_column(
                col, justify="right" if col in ("files found", "data rows") else "left", overflow="fold"
            )
        by_name: dict[str, list[registry.StatusRow]] = {}
        for r in rows:
            by_name.setdefault(r.dataset, []).append(r)
        for name, spec_rows in by_name.items():
            spec = registry.get(name)
            data_paths = {f.path for f in spec.data_files}
            found = [r for r in spec_rows if r.where != "-"]
            data_rows = sum(r.rows or 0 for r in spec_rows if r.where != "-" and r.file in data_paths)
            states = Counter(r.checksum for r in spec_rows)
            summary = ", ".join(
                f"[{_style(s)}]{states[s]} {s}[/]"
                for s in ("ok", "unverified", "mismatch", "missing")
                if states[s]
            )
            table.add_row(
                name,
                spec.license,
                f"{len(found)}/{len(spec_rows)}",
                f"{data_rows:,}",
                summary,
                f"{spec.upstream}@{spec.commit[:7]}" if spec.commit else spec.upstream,
            )
    console.print(table)
    bad = [r for r in rows if r.checksum == "mismatch"]
    if bad:
        console.print(
            f"[bold red]{len(bad)} file(s) do not match their checksum[/]: " + ", ".join(r.file for r in bad)
        )
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry for trying the command before it is wired into alignlab.cli."""
    parser = argparse.ArgumentParser(prog="alignlab")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except AlignlabError as exc:
        print(f"error: {exc}")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
