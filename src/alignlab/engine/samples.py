"""The run's samples.jsonl: one line per finished sample, appended as soon as it finishes.

A `kill -9` can leave a half-written last line; opening the log drops it, so the sample is redone once.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from alignlab.atomic import write_error
from alignlab.data.jsonl import json_problem
from alignlab.errors import AlignlabError


def read_jsonl(path: Path, required: tuple[str, ...] = ()) -> Iterator[dict]:
    """Each line of a JSONL file, parsed; blank lines skipped; a line that is not UTF-8, not a JSON object
    or lacks a `required` key raises one line naming file, line (and column)."""
    for _, row in read_located_jsonl(path, required):
        yield row


def read_located_jsonl(path: Path, required: tuple[str, ...] = ()) -> Iterator[tuple[str, dict]]:
    """("file:line", row) for each line, as read_jsonl: for a caller's own checks to name the line."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - bytes: a bad byte must name its line, not end the read
    except OSError as exc:
        raise AlignlabError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with handle:
        for number, raw in enumerate(handle, 1):
            where = f"{path}:{number}"
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise AlignlabError(f"{where}: not UTF-8 text (column {exc.start + 1})") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise AlignlabError(f"{where}: not valid JSON ({json_problem(exc)})") from None
            except RecursionError:
                raise AlignlabError(f"{where}: not valid JSON (nested too deeply)") from None
            if not isinstance(row, dict):
                raise AlignlabError(f"{where}: expected a JSON object, got {type(row).__name__}")
            missing = [key for key in required if key not in row]
            if missing:
                raise AlignlabError(f"{where}: a sample without {' or '.join(map(repr, missing))}")
            yield where, row


SAMPLE_KEYS = ("id", "condition")  # what sample_key reads


def sample_key(sample: dict) -> tuple[str, str]:
    return str(sample["id"]), str(sample["condition"])


class SampleLog:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._repair()
        self._handle = None

    def _repair(self) -> None:
        """Cut a trailing partial line left by a crash mid-write."""
        if not self.path.is_file():
            return
        with open(self.path, "rb+") as handle:
            end = handle.seek(0, os.SEEK_END)
            if end == 0 or _ends_with_newline(handle, end):
                return
            handle.truncate(_after_last_newline(handle, end))

    def read(self) -> Iterator[dict]:
        if self.path.is_file():
            yield from read_jsonl(self.path, SAMPLE_KEYS)

    def done(self) -> set[tuple[str, str]]:
        return {sample_key(s) for s in self.read()}

    def append(self, sample: dict) -> None:
        line = (json.dumps(sample, ensure_ascii=False) + "\n").encode("utf-8")
        try:
            if self._handle is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # unbuffered: a failed write (a full disk) leaves nothing queued to fail again at close
                self._handle = open(self.path, "ab", buffering=0)  # noqa: SIM115 - kept open for the run
            end = self._handle.seek(0, os.SEEK_END)
            try:
                _write_all(self._handle, line)  # in the OS's hands on return: survives kill -9
            except OSError:
                with contextlib.suppress(OSError):  # no torn line left behind, should anyone append again
                    self._handle.truncate(end)
                raise
        except OSError as exc:
            raise write_error(self.path, exc) from exc

    def sync(self) -> None:
        if self._handle is not None:
            try:
                os.fsync(self._handle.fileno())
            except OSError as exc:
                raise write_error(self.path, exc) from exc

    def close(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            try:
                os.fsync(handle.fileno())
            except OSError as exc:
                raise write_error(self.path, exc) from exc
            finally:
                handle.close()


def _ends_with_newline(handle, end: int) -> bool:
    handle.seek(end - 1)
    return handle.read(1) == b"\n"


def _after_last_newline(handle, end: int, block: int = 1 << 16) -> int:
    """The offset just past the file's last newline (0 if none), reading back from `end` a block at a time:
    a long log is not read whole to mend its tail."""
    while end > 0:
        start = max(0, end - block)
        handle.seek(start)
        found = handle.read(end - start).rfind(b"\n")
        if found >= 0:
            return start + found + 1
        end = start
    return 0


def _write_all(handle, data: bytes) -> None:
    """A raw write may take only part of `data` (a signal, a nearly full disk): write the rest, or raise."""
    view = memoryview(data)
    while view:
        written = handle.write(view)
        view = view[written:]
