"""The run's samples.jsonl: one line per finished sample, appended as soon as it finishes.

A `kill -9` can leave a half-written last line; opening the log drops it, so the sample is redone once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from alignlab.errors import AlignlabError


def read_jsonl(path: Path) -> Iterator[dict]:
    """Each line of a JSONL file, parsed; blank lines skipped; a bad line raises naming file and line."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise AlignlabError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc


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
            data = handle.read()
            if data and not data.endswith(b"\n"):
                handle.truncate(data.rfind(b"\n") + 1)

    def read(self) -> Iterator[dict]:
        if self.path.is_file():
            yield from read_jsonl(self.path)

    def done(self) -> set[tuple[str, str]]:
        return {sample_key(s) for s in self.read()}

    def append(self, sample: dict) -> None:
        try:
            if self._handle is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run
            self._handle.write(json.dumps(sample, ensure_ascii=False) + "\n")
            self._handle.flush()  # in the OS's hands now: survives kill -9
        except OSError as exc:
            raise AlignlabError(f"cannot write samples to {self.path}: {exc.strerror or exc}") from exc

    def sync(self) -> None:
        if self._handle is not None:
            try:
                os.fsync(self._handle.fileno())
            except OSError as exc:
                raise AlignlabError(f"cannot write samples to {self.path}: {exc.strerror or exc}") from exc

    def close(self) -> None:
        if self._handle is not None:
            self.sync()
            self._handle.close()
            self._handle = None
