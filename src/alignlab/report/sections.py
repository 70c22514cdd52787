"""The extension point: each experiment supplies one `Section` that tells the index and the report how to
read its runs (which numbers, which headline metrics, which figures, which sample fields).

    from alignlab.report.sections import Section, register

    class WinogenderSection(Section):
        experiment = "winogender"
        title = "Winogender"
        headline = ("pronoun_correlation",)
        def run_figures(self, run): ...

    register(WinogenderSection())

A run's section is found through the registry (`alignlab.registry.section`: its experiment's or pipeline's
`report_section()`, asked on first use, or one registered here directly); a run of a kind nobody registered
still gets the generic section: its numbers in the index and tables, no figures.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from alignlab import registry

if TYPE_CHECKING:
    from alignlab.report.runs import Run


class MetricRow(NamedTuple):
    condition: str
    group: str
    metric: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int | None


@dataclass
class Figure:
    title: str
    png: bytes
    caption: str = ""


@dataclass
class Table:
    """A table a Section computes across runs; the report escapes every cell."""

    title: str
    headers: tuple[str, ...]
    rows: list[tuple]
    caption: str = ""


class Section:
    experiment = "*"
    title = "Other experiments"
    description = ""
    # Overall-group metrics shown in the overview table and plotted against parameter count.
    headline: tuple[str, ...] = ()
    # Keys of metrics.json whose children are subgroups (e.g. categories) rather than metrics.
    group_keys: tuple[str, ...] = ("by_category", "by_group")
    # (sample field, column title) for the drill-down table; the detail fields open under each row.
    sample_columns: tuple[tuple[str, str], ...] = (("id", "id"), ("condition", "condition"))
    sample_details: tuple[str, ...] = ("prompt",)

    def metric_rows(self, metrics: dict) -> Iterator[MetricRow]:
        """Flatten metrics.json: {"conditions": {COND: {...}}}; an object with "value" is an estimate
        (with "ci" and "n"), a plain number is a metric of its own, group_keys hold subgroups."""
        conditions = metrics.get("conditions")
        if not isinstance(conditions, dict):
            conditions = {"": {k: v for k, v in metrics.items() if k not in ("experiment", "model")}}
        for condition, body in conditions.items():
            if isinstance(body, dict):
                yield from self._walk(str(condition), "overall", "", body)

    def _walk(self, condition: str, group: str, prefix: str, body: dict) -> Iterator[MetricRow]:
        for key, value in body.items():
            if key in self.group_keys and isinstance(value, dict):
                for name, sub in value.items():
                    if isinstance(sub, dict):
                        yield from self._walk(condition, str(name), "", sub)
            elif isinstance(value, dict) and "value" in value:
                ci = value.get("ci")
                low, high = (ci[0], ci[1]) if isinstance(ci, list | tuple) and len(ci) == 2 else (None, None)
                yield MetricRow(
                    condition,
                    group,
                    prefix + key,
                    _number(value.get("value")),
                    _number(low),
                    _number(high),
                    _count(value.get("n")),
                )
            elif isinstance(value, dict):
                yield from self._walk(condition, group, f"{prefix}{key}.", value)
            elif _number(value) is not None:
                yield MetricRow(condition, group, prefix + key, _number(value), None, None, None)

    # metric name (a component of the dotted name) -> (low, high), over metric_checks.RANGES; read_run checks
    # each of the experiment's metrics.json against them
    ranges: dict[str, tuple[float, float]] = {}

    def run_figures(self, run: Run) -> list[Figure]:
        """Figures of one finished run (the report places them in the experiment's section)."""
        return []

    def across_runs(self, runs: list[Run]) -> list[Figure | Table]:
        """Figures and tables computed from all of the experiment's finished runs together (e.g. a trend
        across model sizes); shown after the headline scaling figures."""
        return []

    def sample_value(self, sample: dict, key: str) -> Any:
        return sample.get(key)


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer past float's range, e.g. 10**400 in a hand-edited metrics.json
        return None
    return number if math.isfinite(number) else None


def _count(value) -> int | None:
    ok = (
        isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63
    )  # fits the Int64 column
    return int(value) if ok else None


_GENERIC = Section()


def register(section: Section) -> Section:
    """A Section for runs named `section.experiment` (a run kind without a runnable of its own, e.g. the
    analysis of published transcripts); an experiment's or pipeline's own comes from its report_section()."""
    return registry.register_section(section)


def section_for(experiment: str) -> Section:
    return registry.section(experiment) or _GENERIC
