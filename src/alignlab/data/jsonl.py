"""JSON Lines read with errors that name the file and line."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from alignlab.errors import AlignlabError


def read_jsonl(path: Path) -> list[tuple[str, dict]]:
    """("file:line", object) for every non-empty line; not UTF-8, not JSON, not an object, or no rows at all
    is an AlignlabError naming the file (and line)."""
    try:
        # split on "\n" only: str.splitlines also breaks at U+2028 and the like inside JSON strings
        if path.suffix == ".gz":  # e.g. hh-rlhf's harmless-base/test.jsonl.gz
            with gzip.open(path, "rt", encoding="utf-8-sig") as handle:
                lines = handle.read().split("\n")
        else:
            lines = path.read_text(encoding="utf-8-sig").split("\n")
    except UnicodeDecodeError as e:
        raise AlignlabError(f"{path}: not UTF-8 text ({e})") from None
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise AlignlabError(f"{where}: not valid JSON ({e.msg}, column {e.colno})") from None
        if not isinstance(row, dict):
            raise AlignlabError(f"{where}: expected a JSON object")
        rows.append((where, row))
    if not rows:
        raise AlignlabError(f"{path}: no rows")
    return rows
