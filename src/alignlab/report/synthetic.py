"""Synthetic run folders shaped like real BBQ runs, for the index benchmark and the report's tests.

The numbers are random (seeded); the layout and keys are those `alignlab eval bbq` writes.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

CATEGORIES = ("Age", "Disability_status", "Gender_identity", "Nationality", "Physical_appearance", "Religion")
CONDITIONS = ("q", "q+if", "q+if+cot")
SIZES = {"tiny-135m": 134_515_008, "small-360m": 361_821_120, "base-1.7b": 1_711_376_384}


def _estimate(rng: random.Random, n: int, low: float, high: float) -> dict:
    value = rng.uniform(low, high)
    half = rng.uniform(0.02, 0.2)
    return {"value": value, "ci": [max(low, value - half), min(high, value + half)], "n": n}  # as a bootstrap


def _block(rng: random.Random, n: int) -> dict:
    return {
        "n": n,
        "accuracy": {"ambig": _estimate(rng, n // 2, 0, 1), "disambig": _estimate(rng, n // 2, 0, 1)},
        "bias_score": {"ambig": _estimate(rng, n // 2, -1, 1), "disambig": _estimate(rng, n // 2, -1, 1)},
        "n_no_target": 0,
        "n_invalid": 0,
    }


def write_run(
    folder: Path, model: str, parameters: int, seed: int, samples: list[dict] | None = None
) -> Path:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "config_hash": f"{seed:016x}",
        "identity": {
            "experiment": "bbq",
            "model": model,
            "model_fingerprint": f"synthetic:{model}",
            "conditions": list(CONDITIONS),
            "seed": seed,
            "data": [{"path": f"bbq/data/{c}.jsonl", "checksum": "sha256:" + "0" * 64} for c in CATEGORIES],
        },
        "experiment": "bbq",
        "model": {"spec": model, "fingerprint": f"synthetic:{model}", "parameters": parameters},
        "n_items": 600,
        "versions": {"alignlab": "synthetic"},
        "command": ["alignlab", "eval", "bbq", "--model", model],
        "started": f"2026-11-{1 + seed % 28:02d}T12:00:00+00:00",
    }
    metrics = {
        "experiment": "bbq",
        "model": model,
        "conditions": {
            c: {**_block(rng, 600), "by_category": {cat: _block(rng, 100) for cat in CATEGORIES}}
            for c in CONDITIONS
        },
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    if samples is not None:
        with open(folder / "samples.jsonl", "w", encoding="utf-8") as handle:
            for sample in samples:
                handle.write(json.dumps(sample, ensure_ascii=False) + "\n")
    return folder


def write_runs(root: Path, count: int, seed: int = 0) -> list[Path]:
    """count run folders under root, cycling through three model sizes."""
    names = list(SIZES)
    return [
        write_run(root / f"run-{i:05d}", names[i % 3], SIZES[names[i % 3]], seed + i) for i in range(count)
    ]
