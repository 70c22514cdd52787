"""Figures shared by every experiment's section: PNG bytes from a matplotlib Figure, and the scaling plot
(a metric against parameter count, one line per condition)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

# matplotlib loads inside the functions: `alignlab index` reads sections (and this module) but draws nothing.
if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


def png_bytes(fig: Figure, dpi: int = 110) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def plot_scaling(
    rows: pd.DataFrame, metric: str, title: str, left_out: list[str] | tuple = (), axis: str = "parameters"
) -> bytes:
    """rows: index rows of one experiment and metric (group overall), one run per model; the x axis is the
    column `axis`: parameter count (log scale), or another axis a ladder declares (rlhf_steps: linear), one
    line per condition, 95% intervals as error bars. `left_out`: the runs that had the metric but could not
    be placed (no value on the axis), named under it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    conditions = list(dict.fromkeys(rows["condition"]))  # the runs' own order: q, q+if, q+if+cot
    ordered = rows.sort_values(axis)
    for i, condition in enumerate(conditions):
        part = ordered[ordered["condition"] == condition]
        x = part[axis].astype(float)
        y = part["value"]
        low = (y - part["ci_low"]).clip(lower=0).fillna(0)
        high = (part["ci_high"] - y).clip(lower=0).fillna(0)
        ax.errorbar(x, y, yerr=[low, high], marker="o", capsize=3, color=f"C{i % 10}", label=condition or "-")
    by_size = axis == "parameters"
    if by_size:
        ax.set_xscale("log")
    # One tick per model, named: a ladder has few rungs and the reader wants to know which is which.
    sizes = ordered.drop_duplicates(axis)
    ax.set_xticks(sizes[axis].astype(float).tolist(), minor=False)
    ax.set_xticks([], minor=True)
    label = parameter_label if by_size else (lambda v: f"{float(v):g}")
    ax.set_xticklabels(
        [f"{m}\n{label(p)}" for m, p in zip(sizes["model"], sizes[axis], strict=True)], fontsize=7
    )
    name = "parameters (log scale)" if by_size else axis
    ax.set_xlabel(name + (f"\n{left_out_note(left_out, axis)}" if left_out else ""))
    ax.set_ylabel(metric)
    ax.set_title(title, fontsize=10)
    ax.grid(linewidth=0.4, alpha=0.5)
    ax.legend(title="condition", fontsize=8)
    return png_bytes(fig)


def left_out_note(names, axis: str = "parameters") -> str:
    """The line that names the runs a scaling figure could not place."""
    shown = ", ".join(list(names)[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    what = "no parameter count" if axis == "parameters" else f"no {axis} value"
    return f"left out, {what}: {shown}"


def parameter_label(parameters) -> str:
    """135M, 1.71B: a parameter count for people; empty when unknown."""
    try:
        value = int(parameters)
    except (TypeError, ValueError):  # None, NaN or pandas' NA
        return ""
    for unit, scale in (("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if value >= scale:
            return f"{value / scale:.3g}{unit}"
    return str(value)
