"""The index of all runs and the offline HTML report built from it."""

from __future__ import annotations

from pathlib import Path

from alignlab.atomic import write_text_atomic
from alignlab.errors import AlignlabError
from alignlab.report.html import ReportOptions, render_report
from alignlab.report.index import INDEX_COLUMNS, build_index
from alignlab.report.runs import Run, RunSet, find_runs

__all__ = ["INDEX_COLUMNS", "ReportOptions", "Run", "RunSet", "build_index", "find_runs", "write_report"]


def write_report(root: Path | str, out: Path | str, options: ReportOptions | None = None) -> RunSet:
    """Read every run under root and write the report to out (atomically: never half a file)."""
    runset = find_runs(root)
    index = build_index(runset.runs)
    page = render_report(runset, index, str(root), options or ReportOptions())
    out = Path(out).expanduser()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AlignlabError(f"cannot write {out}: {exc.strerror or exc}") from exc
    write_text_atomic(out, page)
    return runset
