"""Figures for experiment reports (matplotlib, Agg canvas; no pyplot global state).

``plot_bias_by_category`` draws BBQ bias scores as grouped horizontal bars: one row per category plus
"overall" at the top, one bar per prompting condition (e.g. "q", "q+if", "q+if+cot"), with the 95%
bootstrap interval as an error bar. Scores are shown raw, on the -1..1 scale of Ganguli et al. 2023's
figures (Parrish et al. 2022's tables show the same number x100). Missing or undefined (NaN/null) values
are drawn as no bar with an "n/a" mark, never as zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["bias_by_category_figure", "plot_bias_by_category"]

_CONTEXT_TITLES = {
    "ambig": "Ambiguous contexts (s_AMB)",
    "disambig": "Disambiguated contexts (s_DIS)",
}
_OVERALL = "overall"
MIN_ITEMS = 5  # fewer items than this in a bar: its interval says nothing (a bootstrap of 1-3 items), so none is drawn


def _num(x: Any) -> float:
    """A finite float, or NaN for None/NaN/inf/non-numbers."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) else math.nan


def _lookup(metrics: Mapping[str, Any] | None, row: str, context: str) -> tuple[float, float, float]:
    """(value, ci_low, ci_high) of the bias score for a row ("overall" or a category); NaN when absent."""
    if not metrics:
        return math.nan, math.nan, math.nan
    group = metrics if row == _OVERALL else (metrics.get("by_category") or {}).get(row)
    est = ((group or {}).get("bias_score") or {}).get(context) or {}
    ci = est.get("ci") or [None, None]
    lo, hi = (ci + [None, None])[:2] if isinstance(ci, list) else (None, None)
    return _num(est.get("value")), _num(lo), _num(hi)


def _items(metrics: Mapping[str, Any] | None, row: str, context: str) -> int | None:
    """How many items a bar's estimate rests on (its `n`), None when not recorded."""
    group = (metrics or {}) if row == _OVERALL else ((metrics or {}).get("by_category") or {}).get(row)
    n = (((group or {}).get("bias_score") or {}).get(context) or {}).get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) else None


def _row_label(metrics_by_condition: Mapping[str, Mapping[str, Any]], row: str) -> str:
    """A row's name with its item count (the most any condition asked), so a reader sees what rests on few."""
    counts = [
        n
        for m in metrics_by_condition.values()
        for n in [
            ((m or {}) if row == _OVERALL else ((m or {}).get("by_category") or {}).get(row) or {}).get("n")
        ]
        if isinstance(n, int) and not isinstance(n, bool)
    ]
    return f"{row} (n={max(counts)})" if counts else row


def _rows(metrics_by_condition: Mapping[str, Mapping[str, Any]]) -> list[str]:
    cats: set[str] = set()
    for m in metrics_by_condition.values():
        cats.update((m or {}).get("by_category") or {})
    return [_OVERALL, *sorted(cats)]


def _draw_panel(ax: Any, metrics_by_condition: Mapping[str, Mapping[str, Any]], context: str) -> None:
    rows = _rows(metrics_by_condition)
    conditions = list(metrics_by_condition)
    k = max(len(conditions), 1)
    height = 0.8 / k
    colors = [f"C{i % 10}" for i in range(k)]
    for j, cond in enumerate(conditions):
        for i, row in enumerate(rows):
            value, lo, hi = _lookup(metrics_by_condition[cond], row, context)
            # Row 0 ("overall") at the top; bars of one row stacked top-down in condition order.
            y = (len(rows) - 1 - i) + 0.4 - height * (j + 0.5)
            if math.isnan(value):
                ax.text(0.0, y, " n/a", va="center", ha="left", fontsize=7, color="0.45")
                continue
            xerr = None
            n = _items(metrics_by_condition[cond], row, context)
            if n is not None and n < MIN_ITEMS:  # no interval worth drawing: say so instead
                ax.text(
                    value, y, f" {n} item{'s' * (n != 1)}: too few", va="center", fontsize=6, color="0.35"
                )
            elif not (math.isnan(lo) or math.isnan(hi)):
                xerr = [[max(value - lo, 0.0)], [max(hi - value, 0.0)]]
            ax.barh(
                y,
                value,
                height=height * 0.9,
                color=colors[j],
                xerr=xerr,
                error_kw={"elinewidth": 0.8, "capsize": 2, "ecolor": "0.2"},
                label=cond,
            )
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([_row_label(metrics_by_condition, r) for r in reversed(rows)])
    ax.axvline(0.0, color="0.3", linewidth=0.8)
    # Symmetric limits around 0 that fit every bar and interval, within the score's -1..1 range.
    values = [
        abs(v)
        for cond in conditions
        for row in rows
        for v in _lookup(metrics_by_condition[cond], row, context)
        if not math.isnan(v)
    ]
    extent = max(values, default=0.0)
    limit = min(1.0, max(0.1, 1.1 * extent))
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlabel("bias score (+1: every non-unknown answer biased; -1: none)")
    ax.set_title(_CONTEXT_TITLES.get(context, context))
    ax.grid(axis="x", linewidth=0.4, alpha=0.5)


def plot_bias_by_category(
    metrics_by_condition: Mapping[str, Mapping[str, Any]],
    path: str | Path,
    context: str | Sequence[str] = "ambig",
) -> Path:
    """Write a PNG of BBQ bias scores by category and condition, with bootstrap CI error bars.

    Args:
        metrics_by_condition: ``{condition: bbq_metrics(...) result}``, in the order the bars should
            appear (e.g. ``{"q": ..., "q+if": ..., "q+if+cot": ...}``). Each result needs
            ``bias_score[context]`` = ``{"value", "ci"}`` and optionally ``by_category``; anything missing
            or null is drawn as "n/a".
        path: where to write the PNG (parent folders are created).
        context: ``"ambig"`` (s_AMB, the score Ganguli et al. report), ``"disambig"`` (s_DIS), ``"both"``,
            or a sequence of these; several contexts become side-by-side panels.

    Returns:
        The path written.
    """
    from alignlab.experiments.figures import save

    return save(bias_by_category_figure(metrics_by_condition, context), Path(path), dpi=120)


def bias_by_category_figure(
    metrics_by_condition: Mapping[str, Mapping[str, Any]],
    context: str | Sequence[str] = "ambig",
) -> Figure:
    """The figure `plot_bias_by_category` writes, for callers that place it themselves (the report)."""
    contexts = (
        ["ambig", "disambig"]
        if context == "both"
        else [context]
        if isinstance(context, str)
        else list(context)
    )
    for c in contexts:
        if c not in _CONTEXT_TITLES:
            raise ValueError(
                f"plot_bias_by_category: unknown context {c!r}; use 'ambig', 'disambig' or 'both'"
            )
    rows = _rows(metrics_by_condition)
    n_bars = max(len(metrics_by_condition), 1)
    fig_h = 2.2 + len(rows) * (0.2 + 0.15 * n_bars)
    fig = Figure(figsize=(7.0 * len(contexts), fig_h), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(contexts), squeeze=False)[0]
    for ax, c in zip(axes, contexts, strict=True):
        _draw_panel(ax, metrics_by_condition, c)
    # One legend entry per condition, in condition order (bars may be missing in some panels).
    handles: dict[str, Any] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    names = [c for c in metrics_by_condition if c in handles]
    if names:
        fig.legend(
            [handles[c] for c in names],
            names,
            title="condition",
            loc="outside lower center",
            ncols=len(names),
        )
    fig.suptitle(
        "BBQ bias score by category, 95% bootstrap CI\n(raw scale -1..1; Parrish et al.'s tables show x100)",
        fontsize=10,
    )
    return fig
