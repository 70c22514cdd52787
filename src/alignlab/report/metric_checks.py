"""Checks of a run's metrics.json as the index reads it, as data files are checked: each estimate
({"value", "ci", "n"}) must hold numbers, an interval that does not end below its start, a whole n of at least
0, and a value and interval inside its metric's range; a metric named in RANGES that is neither an estimate nor a
number; "experiment" and "model" that are not text; NaN or Infinity anywhere (alignlab writes metrics.json with
allow_nan=False: an undefined estimate is null, so these are hand edits). Each problem is one line naming the
key."""

from __future__ import annotations

import json
import math

from alignlab.runfolder import short_name

# The range of a metric named so (any component of its dotted name, the rightmost that is listed): a value or
# interval outside it is a corrupted or hand-edited metrics.json, and the run is left out of the index.
RANGES: dict[str, tuple[float, float]] = {
    **dict.fromkeys(
        (
            "accuracy",
            "kept_accuracy",
            "agreement",
            "auroc",
            "brier",
            "ece",
            "rms_calibration_error",
            "p_yes",
            "p_neutral",
            "p_true",
            "mean_p_true",
            "share_matching",
            "attack_success_rate",
            "refusal_rate",
            "mean_fraction",
            "mean_label_confidence",
        ),
        (0.0, 1.0),
    ),
    **dict.fromkeys(("rho", "bias_score", "discrimination", "discrimination_unnormalised"), (-1.0, 1.0)),
    "brier_multiclass": (0.0, 2.0),
    "mean_abs_logit_gap": (0.0, math.inf),
}


def metric_problems(metrics: dict, ranges: dict[str, tuple[float, float]] | None = None) -> list[str]:
    """What is wrong with metrics.json, a line per key; `ranges` adds to and overrides RANGES."""
    conditions = metrics.get("conditions")
    if conditions is not None and not isinstance(conditions, dict):
        return ["conditions: expected an object"]
    known = {**RANGES, **(ranges or {})}
    problems = [
        f"{key}: {short_name(metrics[key])} is not text"
        for key in ("experiment", "model")
        if not isinstance(metrics.get(key), str | None)
    ]
    _non_finite("", metrics, problems)
    for condition, body in (conditions or {}).items():
        if isinstance(body, dict):
            _check(f"conditions.{condition}", body, known, problems)
    return problems


def range_of(where: str, known: dict[str, tuple[float, float]]) -> tuple[float, float] | None:
    """The range of the metric at dotted path `where`: its rightmost listed component's."""
    for part in reversed(where.split(".")):
        if part in known:
            return known[part]
    return None


def _check(path: str, body: dict, known: dict, problems: list[str]) -> None:
    for key, value in body.items():
        where = f"{path}.{key}"
        if not isinstance(value, dict):
            if not _numeric(value) and range_of(where, known):  # a list, text, true: the index would drop it
                problems.append(f"{where}: {short_name(value)} is not a number or an estimate")
            continue
        if "value" not in value:
            _check(where, value, known, problems)
            continue
        number, ci, n = value.get("value"), value.get("ci"), value.get("n")
        if not _numeric(number):
            problems.append(f"{where}.value: {number!r} is not a number")
            continue
        if ci is not None and not (isinstance(ci, list) and len(ci) == 2 and all(map(_numeric, ci))):
            problems.append(f"{where}.ci: {ci!r} is not [low, high]")
            continue
        if n is not None and not (isinstance(n, int) and not isinstance(n, bool) and n >= 0):
            problems.append(f"{where}.n: {n!r} is not a whole number of at least 0")
            continue
        ends = [x for x in ci or () if _finite(x)]
        if len(ends) == 2 and ends[0] > ends[1]:
            problems.append(f"{where}.ci: {ci!r} ends below its start")
            continue
        bounds = range_of(where, known)
        shown = [x for x in (number, *ends) if _finite(x)]
        if bounds and any(not bounds[0] - 1e-9 <= x <= bounds[1] + 1e-9 for x in shown):
            low, high = bounds
            problems.append(
                f"{where}: value {number!r}, interval {ci!r} outside its range [{low:g}, {high:g}]"
            )


def _non_finite(path: str, value, problems: list[str]) -> None:
    """A line for each NaN or Infinity at or under `value` (dotted keys, [i] for list items)."""
    if isinstance(value, float) and not math.isfinite(value):
        problems.append(f"{path}: {json.dumps(value)} is not a finite number")
    elif isinstance(value, dict):
        for key, item in value.items():
            _non_finite(f"{path}.{key}" if path else str(key), item, problems)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _non_finite(f"{path}[{i}]", item, problems)


def _numeric(value) -> bool:
    """A JSON number or null (NaN and infinities pass here: _non_finite reports them, once)."""
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def _finite(value) -> bool:
    """A number that is not NaN or infinite (an int past float's range included: it compares exactly)."""
    return value is not None and (isinstance(value, int) or math.isfinite(value))
