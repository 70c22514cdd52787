"""Progress as plain lines, for a stderr that is not a terminal (CI, nohup, a notebook, a file).

rich draws its bar only on a terminal; elsewhere it prints once, at the end, so a long run redirected to a
file looked dead. This prints one line when a task starts, then one every `interval` seconds from a timer
(also while one long batch is in flight, when nothing advances), and one when it ends:

    samples: 120/1000 (12%), 6.31/s, 19s elapsed, eta 2m19s

It offers the part of rich's Progress the engine uses: a context manager, add_task and advance.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from typing import TextIO

DEFAULT_INTERVAL = 10.0  # seconds between lines; ALIGNLAB_PROGRESS_INTERVAL overrides


def interval_from_env() -> float:
    try:
        value = float(os.environ.get("ALIGNLAB_PROGRESS_INTERVAL", DEFAULT_INTERVAL))
    except ValueError:
        return DEFAULT_INTERVAL
    return value if 0 < value < float("inf") else DEFAULT_INTERVAL


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class PlainProgress:
    def __init__(self, stream: TextIO | None = None, interval: float | None = None) -> None:
        self.stream = stream or sys.stderr
        self.interval = interval or interval_from_env()
        self.tasks: dict[int, dict] = {}
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.timer: threading.Thread | None = None

    def __enter__(self) -> PlainProgress:
        self.timer = threading.Thread(target=self._tick, name="alignlab-progress", daemon=True)
        self.timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        if self.timer is not None:
            self.timer.join()
        with self.lock:
            for task in self.tasks.values():
                self._line(task, final=True)

    def add_task(self, description: str, total: int, **fields) -> int:
        with self.lock:
            key = len(self.tasks)
            self.tasks[key] = {
                "description": description,
                "total": total,
                "done": 0,
                "start": time.monotonic(),
                "fields": dict(fields),
            }
            self._line(self.tasks[key])
        return key

    def advance(self, key: int, amount: int = 1) -> None:
        with self.lock:
            self.tasks[key]["done"] += amount

    def update(self, key: int, **fields) -> None:
        with self.lock:
            self.tasks[key]["fields"].update(fields)

    def _tick(self) -> None:
        while not self.stopped.wait(self.interval):
            with self.lock:
                for task in self.tasks.values():
                    self._line(task)

    def _line(self, task: dict, final: bool = False) -> None:
        done, total = task["done"], task["total"]
        elapsed = time.monotonic() - task["start"]
        parts = [f"{task['description']}: {done}/{total}"]
        if total:
            parts[0] += f" ({100 * done / total:.0f}%)"
        rate = done / elapsed if elapsed > 0 and done else 0.0
        parts.append(f"{rate:.2f}/s" if rate else "-/s")
        if task["fields"].get("requests"):  # moves while samples wait for the rest of their block's batches
            parts.append(f"{task['fields']['requests']} requests answered")
        parts.append(f"{_duration(elapsed)} elapsed")
        if not final and rate and total:
            parts.append(f"eta {_duration((total - done) / rate)}")
        with contextlib.suppress(OSError, ValueError):  # a closed or full stream costs the line, not the run
            print(", ".join(parts), file=self.stream, flush=True)
