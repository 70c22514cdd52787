"""Figures the self-correction experiments draw into their run folders and report sections.

matplotlib loads inside the functions, so importing an experiment stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig, path: Path, dpi: int = 110) -> Path:
    """Write `fig` as a PNG at `path` whole or not at all: drawn in memory, then written aside and renamed,
    so a kill or a full disk never leaves half an image (and a full disk is a one-line error)."""
    import io

    from alignlab.atomic import write_bytes_atomic, write_error

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(path, exc) from exc
    write_bytes_atomic(path, buffer.getvalue())
    return path


def _estimate(entry: Any) -> tuple[float, float, float] | None:
    if not isinstance(entry, Mapping) or entry.get("value") is None:
        return None
    low, high = entry.get("ci") or (None, None)
    value = float(entry["value"])
    return value, value - (low if low is not None else value), (high if high is not None else value) - value


def value_bars(
    metrics_by_condition: Mapping[str, Mapping[str, Any]],
    group_key: str,
    metric: str,
    ylabel: str,
    title: str,
):
    """Horizontal bars: one row per group value (e.g. "race=Black"), one bar per condition, 95% intervals."""
    groups = sorted({g for m in metrics_by_condition.values() for g in (m.get(group_key) or {})})
    conditions = list(metrics_by_condition)
    fig = new_figure(7.0, 1.4 + 0.18 * max(len(groups), 1) * max(len(conditions), 1))
    ax = fig.subplots()
    height = 0.8 / max(len(conditions), 1)
    for i, condition in enumerate(conditions):
        for row, group in enumerate(groups):
            found = _estimate(
                ((metrics_by_condition[condition].get(group_key) or {}).get(group) or {}).get(metric)
            )
            if found is None:
                continue
            value, low, high = found
            y = row - 0.4 + height * (i + 0.5)
            ax.barh(y, value, height=height, color=f"C{i % 10}", label=condition if row == 0 else None)
            ax.errorbar(
                value, y, xerr=[[max(low, 0)], [max(high, 0)]], color="black", capsize=2, linewidth=0.8
            )
    ax.set_yticks(range(len(groups)), groups)
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.6)
    ax.set_xlabel(ylabel)
    ax.grid(axis="x", linewidth=0.4, alpha=0.5)
    if conditions:
        ax.legend(title="condition", fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def scatter_against(
    points_by_condition: Mapping[str, tuple[list[float], list[float]]],
    xlabel: str,
    ylabel: str,
    identity: set[str] = frozenset(),
    titles: Mapping[str, str] | None = None,
):
    """One panel per condition: y against x, with the identity line on the conditions named in `identity`."""
    conditions = list(points_by_condition)
    fig = new_figure(3.0 * max(len(conditions), 1), 3.2)
    axes = fig.subplots(1, max(len(conditions), 1), squeeze=False)[0]
    for ax, condition in zip(axes, conditions, strict=False):
        x, y = points_by_condition[condition]
        ax.scatter(x, y, s=12, alpha=0.8)
        if condition in identity:
            ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle="--", label="identity")
            ax.legend(fontsize=7)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title((titles or {}).get(condition, condition), fontsize=10)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.grid(linewidth=0.4, alpha=0.5)
    axes[0].set_ylabel(ylabel, fontsize=8)
    return fig


def run_figure(run, draw, title: str, caption: str) -> list:
    """A report Section's figure of one run drawn from its samples: `draw(samples, conditions)`; none when
    the run has no conditions or no samples."""
    from alignlab.report.figures import png_bytes
    from alignlab.report.sections import Figure

    conditions = list((run.metrics or {}).get("conditions") or {})
    samples = list(run.samples())
    if not conditions or not samples:
        return []
    fig = draw(samples, conditions)
    return [
        Figure(
            title=f"{run.model}: {title}", png=png_bytes(fig, dpi=90), caption=f"run {run.name}; {caption}"
        )
    ]
