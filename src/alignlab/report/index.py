"""The index: every finished run's metrics as one long table, one row per number.

Columns (INDEX_COLUMNS): run, experiment, model, parameters, condition, group (``overall`` or a category),
metric (a dotted path such as ``bias_score.ambig``), value, ci_low, ci_high, n, date, config_hash,
model_fingerprint. Each experiment's report section decides how its metrics.json flattens (see sections.py).
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from alignlab.report.runs import Run
from alignlab.report.sections import section_for

INDEX_COLUMNS = [
    "run",
    "experiment",
    "model",
    "parameters",
    "condition",
    "group",
    "metric",
    "value",
    "ci_low",
    "ci_high",
    "n",
    "date",
    "config_hash",
    "model_fingerprint",
]


def build_index(runs: Iterable[Run]) -> pd.DataFrame:
    """The long table of every finished run's metrics (incomplete runs have no numbers yet)."""
    columns: dict[str, list] = {c: [] for c in INDEX_COLUMNS}
    for run in runs:
        if run.metrics is None:
            continue
        fixed = (run.name, run.experiment, run.model, run.parameters)
        tail = (run.date, run.config_hash, run.fingerprint)
        # Column lists, not a list of dicts: 1,000 runs make ~10^5 rows and this is the hot loop.
        for m in section_for(run.experiment).metric_rows(run.metrics):
            for key, value in zip(("run", "experiment", "model", "parameters"), fixed, strict=True):
                columns[key].append(value)
            columns["condition"].append(m.condition)
            columns["group"].append(m.group)
            columns["metric"].append(m.metric)
            columns["value"].append(m.value)
            columns["ci_low"].append(m.ci_low)
            columns["ci_high"].append(m.ci_high)
            columns["n"].append(m.n)
            for key, value in zip(("date", "config_hash", "model_fingerprint"), tail, strict=True):
                columns[key].append(value)
    frame = pd.DataFrame(columns)
    frame["parameters"] = pd.array(frame["parameters"], dtype="Int64")
    frame["n"] = pd.array(frame["n"], dtype="Int64")
    for key in ("value", "ci_low", "ci_high"):
        frame[key] = pd.to_numeric(frame[key], errors="coerce").astype("float64")
    return frame


def latest_per_model(index: pd.DataFrame) -> pd.DataFrame:
    """Where one model and experiment were run more than once, keep the newest run's rows."""
    if index.empty:
        return index
    newest = index.sort_values("date").groupby(["experiment", "model"])["run"].last()
    keep = set(zip(newest.index.get_level_values(0), newest.index.get_level_values(1), newest, strict=True))
    mask = [
        (e, m, r) in keep for e, m, r in zip(index["experiment"], index["model"], index["run"], strict=True)
    ]
    return index[mask]
