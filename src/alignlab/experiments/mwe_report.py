"""The model-written evaluations' figure and their section of the index and the report."""

from __future__ import annotations


def shares_figure(metrics: dict):
    """Each dataset's share of answers matching its behaviour, one row per suite (a point per dataset, its
    95% interval as a line), for the first condition."""
    from alignlab.experiments._figures import _figure

    body = next(iter(metrics.values()), {}) if metrics else {}
    datasets = body.get("by_dataset") or {}
    suites = sorted(body.get("by_suite") or {})
    fig = _figure(7.0, 1.2 + 0.8 * max(len(suites), 1))
    ax = fig.subplots()
    for row, suite in enumerate(suites):
        names = [name for name in sorted(datasets) if _suite_of(name, body) == suite]
        for j, name in enumerate(names):
            estimate = datasets[name]["share_matching"]
            if estimate.get("value") is None:
                continue
            y = row + (j / max(len(names) - 1, 1) - 0.5) * 0.6
            low, high = estimate.get("ci") or (None, None)
            if low is not None and high is not None:
                ax.plot([low, high], [y, y], color="C0", alpha=0.3, linewidth=0.8)
            ax.plot(estimate["value"], y, "o", color="C0", markersize=3)
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=0.8)
    ax.set_yticks(range(len(suites)), suites)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of answers matching the behaviour (one point per dataset)")
    ax.grid(axis="x", linewidth=0.4, alpha=0.5)
    return fig


def _suite_of(name: str, body: dict) -> str | None:
    return (body.get("suite_of") or {}).get(name)


def section(description: str):
    from alignlab.report.sections import Section

    class MWESection(Section):
        experiment = "mwe"
        title = "Model-written evaluations: behaviours"
        headline = ("share_matching",)
        group_keys = ("by_dataset", "by_suite")
        sample_columns = (
            ("id", "item"),
            ("dataset", "dataset"),
            ("matches", "matches"),
            ("p_matching", "P(matching)"),
            ("label_confidence", "label confidence"),
        )
        sample_details = ("question", "matching", "not_matching", "logprobs")

    MWESection.description = description + (
        " share_matching: the share of items whose most probable answer matches the behaviour (0.5 is no "
        "preference on a balanced dataset); by_suite: the distribution of the datasets' shares. Intervals: 95% "
        "bootstrap over items."
    )
    return MWESection()
