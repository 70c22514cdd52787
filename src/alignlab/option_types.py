"""Parsers for experiment options (`Option.type`): argparse reports the ArgumentTypeError they raise as a
one-line usage error naming the option, before anything runs."""

from __future__ import annotations

import os
from argparse import ArgumentTypeError
from pathlib import Path

from alignlab.run_files import RECORDS, is_run


def number_in(low: float, high: float, what: str, open_ends: bool = False, ends: str = "[]"):
    """A float within [low, high], never NaN; `ends` "(]", "[)" or "()" leave out an end (as does
    `open_ends`: both)."""
    if open_ends:
        ends = "()"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        above = low < value if ends[0] == "(" else low <= value
        below = value < high if ends[1] == ")" else value <= high
        if not (above and below):
            raise ArgumentTypeError(f"expected {what} in {ends[0]}{low:g}, {high:g}{ends[1]}, got {text!r}")
        return value

    return parse


def integer(what: str):
    def parse(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise ArgumentTypeError(f"expected {what}, got {text!r}") from None

    return parse


def names_from(allowed: tuple[str, ...], what: str = "task"):
    """A comma-separated, non-empty list of names from `allowed`, as a tuple."""

    def parse(text: str) -> tuple[str, ...]:
        chosen = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
        unknown = [t for t in chosen if t not in allowed]
        if unknown or not chosen:
            raise ArgumentTypeError(
                f"unknown {what}(s) {', '.join(unknown) or '(none)'}: choose from {', '.join(allowed)}"
            )
        return chosen

    return parse


def whole_number(low: int, high: int | None = None, what: str = "a whole number"):
    """An int within [low, high] (no upper end without `high`): sizes, counts, resamples."""
    top = "" if high is None else f" and at most {high}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            raise ArgumentTypeError(f"expected {what} of at least {low}{top}, got {text!r}")
        return value

    return parse


# numpy's legacy RandomState (and so sklearn's random_state) takes seeds 0..2**32-1 only; the newer
# generators take any non-negative int. One range for every --seed keeps a seed usable everywhere.
SEED_MAX = 2**32 - 1
seed = whole_number(0, SEED_MAX, "a seed")
port = whole_number(0, 65535, "a TCP port (0: any free one)")
temperature = number_in(0, 10, "a temperature")
share = number_in(0, 1, "a share")
GEN_DTYPES = ("float32", "bfloat16", "float16")  # what transformers can generate text in
top_p = number_in(0, 1, "a nucleus top-p", ends="(]")


def url(text: str) -> str:
    """An http(s) URL with a host: a typo fails here, not at the first download."""
    from urllib.parse import urlsplit

    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ArgumentTypeError(f"expected an http:// or https:// URL, got {text!r}")
    return text.rstrip("/")


def positive_number(what: str = "a number"):
    """A finite float above 0."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not 0 < value < float("inf"):
            raise ArgumentTypeError(f"expected {what} above 0, got {text!r}")
        return value

    return parse


def _nearest_existing(path: Path) -> Path:
    """`path` itself or the closest of its parents that exists (what mkdir -p would start from)."""
    here = path.absolute()
    while not here.exists() and here != here.parent:
        here = here.parent
    return here


def _creatable(path: Path, text: str) -> None:
    """Refuse `path` when it cannot be created: a parent that is a file, or a folder not writable."""
    base = _nearest_existing(path.parent)
    if not base.is_dir():
        raise ArgumentTypeError(f"cannot create {text!r}: {base} is not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ArgumentTypeError(f"cannot create {text!r}: folder {base} is not writable")


def output_file(text: str) -> Path:
    """A file the command will write: not a folder, and its folder exists or can be made."""
    path = Path(text).expanduser()
    if not text.strip():
        raise ArgumentTypeError("expected a file path, got ''")
    if path.is_dir():
        raise ArgumentTypeError(f"{text!r} is a folder, not a file")
    if path.exists() and not os.access(path, os.W_OK):
        raise ArgumentTypeError(f"{text!r} is not writable")
    if path.name in RECORDS and is_run(path.parent):
        raise ArgumentTypeError(f"{text!r} is a record of the run in {str(path.parent)!r}: write elsewhere")
    _creatable(path, text)
    return path


def output_folder(text: str) -> Path:
    """A folder the command will write into: a folder already, or one that can be made."""
    path = Path(text).expanduser()
    if not text.strip():
        raise ArgumentTypeError("expected a folder path, got ''")
    if path.exists() and not path.is_dir():
        raise ArgumentTypeError(f"{text!r} exists and is not a folder")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise ArgumentTypeError(f"folder {text!r} is not writable")
        return path
    _creatable(path, text)
    return path


def existing_file(text: str) -> Path:
    """A file the command will read."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise ArgumentTypeError(f"{text!r} is a folder: name a file in it")
    if not path.is_file():
        raise ArgumentTypeError(f"no such file: {text!r}")
    return path


def existing_path(text: str) -> Path:
    """A file or folder the command will read."""
    path = Path(text).expanduser()
    if not path.exists():
        raise ArgumentTypeError(f"no such file or folder: {text!r}")
    return path


def existing_folder(text: str) -> Path:
    """A folder the command will read."""
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():  # "no such folder" would send the user looking for a typo
        raise ArgumentTypeError(f"{text!r} is a file, not a folder")
    if not path.is_dir():
        raise ArgumentTypeError(f"no such folder: {text!r}")
    return path
