"""Reading data files (JSON Lines, CSV/TSV, plain text, gzipped or not) with errors that name the file and line.

Every loader reads its bytes through `read_text`, so an unreadable file, a truncated gzip, bytes that are not
UTF-8 or a UTF-8 byte-order mark are handled once: the first three are an AlignlabError naming the file (and
the line and column of the bad byte), the BOM is dropped. Lines end at "\\n" ("\\r\\n" works too: JSON and
CSV both ignore the "\\r").
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from pathlib import Path

from alignlab.errors import AlignlabError


def read_text(path: Path) -> str:
    """The file's text: gunzipped when its name ends in .gz, a leading BOM dropped."""
    data = _read_bytes(Path(path))
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise AlignlabError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at column {column})"
        ) from None


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":  # e.g. hh-rlhf's harmless-base/test.jsonl.gz
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except EOFError:
        raise AlignlabError(
            f"{path}: truncated gzip file (it ends before its end-of-stream marker)"
        ) from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise AlignlabError(f"{path}: not a valid gzip file ({exc})") from None
    except OSError as exc:
        raise AlignlabError(f"{path}: cannot read ({exc.strerror or exc})") from None


def read_jsonl(path: Path) -> list[tuple[str, dict]]:
    """("file:line", object) for every non-empty line; not UTF-8, not JSON, not an object, or no rows at all
    is an AlignlabError naming the file (and line)."""
    # split on "\n" only: str.splitlines also breaks at U+2028 and the like inside JSON strings
    lines = read_text(path).split("\n")
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        rows.append((where, parse_object(line, where)))
    if not rows:
        raise AlignlabError(f"{path}: no rows")
    return rows


def parse_object(line: str, where: str) -> dict:
    """One line of JSON that must be an object; anything else is an AlignlabError at `where`."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise AlignlabError(f"{where}: not valid JSON ({json_problem(e)})") from None
    except RecursionError:  # "[[[[...": deeper than the parser goes
        raise AlignlabError(f"{where}: not valid JSON (nested too deeply)") from None
    if not isinstance(row, dict):
        raise AlignlabError(f"{where}: expected a JSON object, got {type(row).__name__}")
    return row


def json_problem(error: json.JSONDecodeError) -> str:
    """json's message with its column, for after "file:line": "Expecting value, column 3", and for the
    messages that end in "at" (their line was cut off), "Unterminated string starting at column 2"."""
    joint = " " if error.msg.endswith(" at") else ", "
    return f"{error.msg}{joint}column {error.colno}"


def read_json(path: Path):
    """A whole file of JSON (an array, an object); not JSON is an AlignlabError naming line and column."""
    return parse_json(read_text(path), path)


def parse_json(text: str, path: Path):
    """`text` (the content of `path`) as JSON; not JSON is an AlignlabError naming line and column."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise AlignlabError(f"{path}:{e.lineno}: not valid JSON ({json_problem(e)})") from None
    except RecursionError:
        raise AlignlabError(f"{path}: not valid JSON (nested too deeply)") from None


def read_csv(path: Path, columns: tuple[str, ...], delimiter: str = ",") -> Iterator[tuple[int, dict]]:
    """(line number, row) of a CSV/TSV file with a header that must name `columns`. A row with fewer fields
    than the header has None for the rest (as csv.DictReader). A field the csv module refuses (say, over
    its size limit) is an AlignlabError naming the line."""
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""), delimiter=delimiter)
    try:
        header = reader.fieldnames or ()
        missing = [c for c in columns if c not in header]
        if missing:
            raise AlignlabError(f"{path}:1: missing column(s) {', '.join(missing)}")
        for row in reader:
            yield reader.line_num, row
    except csv.Error as exc:
        raise AlignlabError(f"{path}:{reader.line_num}: not valid CSV ({exc})") from None


def line_of(where: str) -> str:
    """The line number of a "file:line" location."""
    return where.rpartition(":")[2]


class UniqueIds:
    """The location each item id was first read at: a second item with the same id would be taken for the
    first when a run resumes (its sample already done), so it is an error naming both places."""

    def __init__(self) -> None:
        self.first: dict[object, str] = {}

    def add(self, item_id, where: str) -> None:
        if item_id in self.first:
            raise AlignlabError(f"{where}: duplicate id {item_id!r} (first at {self.first[item_id]})")
        self.first[item_id] = where
