"""Figures shared by every experiment's section: PNG bytes from a matplotlib Figure, and the scaling plot
(a metric against parameter count, one line per condition)."""

from __future__ import annotations

import io

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def png_bytes(fig: Figure, dpi: int = 110) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def plot_scaling(rows: pd.DataFrame, metric: str, title: str) -> bytes:
    """rows: index rows of one experiment and metric (group overall), one run per model; the x axis is
    parameter count (log), one line per condition, 95% intervals as error bars."""
    fig = Figure(figsize=(6.0, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for i, (condition, part) in enumerate(rows.sort_values("parameters").groupby("condition", sort=False)):
        x = part["parameters"].astype(float)
        y = part["value"]
        low = (y - part["ci_low"]).clip(lower=0).fillna(0)
        high = (part["ci_high"] - y).clip(lower=0).fillna(0)
        ax.errorbar(x, y, yerr=[low, high], marker="o", capsize=3, color=f"C{i % 10}", label=condition or "-")
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel(metric)
    ax.set_title(title, fontsize=10)
    ax.grid(linewidth=0.4, alpha=0.5)
    ax.legend(title="condition", fontsize=8)
    return png_bytes(fig)
