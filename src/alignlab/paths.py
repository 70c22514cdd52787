"""Where alignlab keeps what it makes once and reuses: assembled models, converted models, responses."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """`ALIGNLAB_CACHE_DIR`, else `$XDG_CACHE_HOME/alignlab`, else `~/.cache/alignlab`."""
    if env := os.environ.get("ALIGNLAB_CACHE_DIR"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "alignlab"
