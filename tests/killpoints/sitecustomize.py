"""Test-only fault injection for a CLI run in a subprocess whose PYTHONPATH starts with this folder (see
tests/test_kill_anywhere.py and tests/test_disk_full.py); alignlab itself never imports it.

ALIGNLAB_TEST_STUB=1          the model spec `stub` loads tests/stub_backend.py's StubBackend (no real model)
ALIGNLAB_TEST_STUB_BATCHY=1   ... whose scores move in their last digits with their batch, as a local model's
ALIGNLAB_TEST_KILL=POINT:K    the process SIGKILLs itself the K-th time it passes POINT, half-way through:
  samples       appending a line to samples.jsonl: half the line is written
  atomic:GLOB   an atomic write (alignlab.atomic.replacing) whose target name matches GLOB (metrics.json,
                *.png, report.html, model): its temporary is cut to half, before the rename
  checkpoint    a trainer checkpoint: after the weights and optimizer, before the trainer's state
  load          loading the model
  batch         a batch of requests the stub model answers: after it answered, before its samples are kept
ALIGNLAB_TEST_FULL=POINT:K    the same points (samples, atomic:GLOB) meet a full disk instead: half written,
                              then OSError(ENOSPC)
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import os
import signal
from pathlib import Path

_full = "ALIGNLAB_TEST_FULL" in os.environ
_point, _, _nth = os.environ.get("ALIGNLAB_TEST_FULL" if _full else "ALIGNLAB_TEST_KILL", "").rpartition(":")
_passes: dict[str, int] = {}


def _hit(point: str) -> bool:
    """True on the K-th pass of the chosen point."""
    if point != _point:
        return False
    _passes[point] = _passes.get(point, 0) + 1
    return _passes[point] == int(_nth)


def _die(path) -> None:
    """SIGKILL, or (ALIGNLAB_TEST_FULL) the error a full disk gives."""
    if _full:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    os.kill(os.getpid(), signal.SIGKILL)


def _tear(path: Path) -> None:
    """Cut a file (or a folder's largest file) to half its size: a write the kill interrupted."""
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file()]
        if not files:
            return
        path = max(files, key=lambda p: p.stat().st_size)
    os.truncate(path, path.stat().st_size // 2)


def _patch_atomic() -> None:
    from alignlab import atomic

    original = atomic.replacing
    pattern = _point.partition(":")[2]

    @contextlib.contextmanager
    def replacing(target, keep_existing=False):
        with original(target, keep_existing) as tmp:
            yield tmp
            if fnmatch.fnmatch(Path(target).name, pattern) and _hit(_point):
                _tear(tmp)
                _die(tmp)

    atomic.replacing = replacing


def _patch_samples() -> None:
    from alignlab.engine import samples

    original = samples._write_all

    def write_all(handle, data):
        if _hit("samples"):
            handle.write(data[: len(data) // 2])
            _die(handle.name)
        original(handle, data)

    samples._write_all = write_all


def _patch_checkpoint() -> None:
    from transformers import Trainer

    original = Trainer._save_rng_state

    def save_rng_state(self, output_dir):
        if _hit("checkpoint"):
            _die(output_dir)
        original(self, output_dir)

    Trainer._save_rng_state = save_rng_state


def _killable(backend):
    """The `batch` point: the backend answers a batch, then the process dies before anyone sees the answers."""
    for kind in ("score", "generate"):
        answer = getattr(backend, kind)

        def answer_then_maybe_die(requests, answer=answer):
            results = answer(requests)
            if _hit("batch"):
                _die("batch")
            return results

        setattr(backend, kind, answer_then_maybe_die)
    return backend


def _patch_models() -> None:
    """`stub` as a model spec, and the `load` point: patched before alignlab.evaluate imports load_model."""
    from alignlab import models

    original = models.load_model

    def load_model(spec, **options):
        if _hit("load"):
            _die(spec)
        if spec == "stub" and os.environ.get("ALIGNLAB_TEST_STUB"):
            from stub_backend import StubBackend

            return _killable(StubBackend(batch_sensitive=bool(os.environ.get("ALIGNLAB_TEST_STUB_BATCHY"))))
        return original(spec, **options)

    models.load_model = load_model
    real_check = models.check_spec
    models.check_spec = lambda spec: (
        None if spec == "stub" and os.environ.get("ALIGNLAB_TEST_STUB") else real_check(spec)
    )


if _point.startswith("atomic:"):
    _patch_atomic()
elif _point == "samples":
    _patch_samples()
elif _point == "checkpoint":
    _patch_checkpoint()
if _point == "load" or os.environ.get("ALIGNLAB_TEST_STUB"):
    _patch_models()
