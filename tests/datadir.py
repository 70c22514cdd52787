"""Where the tests find the shared datasets: $ALIGNLAB_DATA_DIR, else ../shared/datasets beside the checkout.
A test that needs them is marked `@needs("bbq", ...)` (or takes the `data_dir` fixture) and skips cleanly,
naming what is missing, where they are not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ALIGNLAB_DATA_DIR") or ROOT.parent / "shared" / "datasets").expanduser().resolve()


def missing(*datasets: str) -> list[str]:
    """The dataset folders (or the data directory itself) that are not there."""
    if not DATA.is_dir():
        return [str(DATA)]
    return [name for name in datasets if not (DATA / name).exists()]


def needs(*datasets: str):
    """Skip unless the data directory holds these datasets (none named: the directory itself)."""
    gone = missing(*datasets)
    return pytest.mark.skipif(bool(gone), reason=f"shared datasets not found: {', '.join(gone)}")
