"""The names of a run folder's own files, and how to tell a run folder from any folder with a config.json:
low in the layers, so that option parsing can refuse to write over a run's records."""

from __future__ import annotations

import json
from pathlib import Path

CONFIG = "config.json"
SAMPLES = "samples.jsonl"
METRICS = "metrics.json"
# with --no-cache, the run's own answers so far: a resume then asks again only the batch the kill cut short
# (the engine reruns a block's done tasks to batch as a whole run would); gone once the run is whole
JOURNAL = "responses.sqlite"
JOURNAL_FILES = (JOURNAL, f"{JOURNAL}-wal", f"{JOURNAL}-shm")  # SQLite's database and its side files
OPENED = (CONFIG, SAMPLES, "run.log", *JOURNAL_FILES)  # what opening a run makes, before any result
RECORDS = (*OPENED, METRICS)  # what a run writes and reads back


def is_run(folder: Path) -> bool:
    """Whether `folder` holds an alignlab run (its config.json has an identity), not some other config.json."""
    try:
        config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "identity" in config and "config_hash" in config
