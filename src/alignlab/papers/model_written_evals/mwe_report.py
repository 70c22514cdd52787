"""The model-written evaluations' figure and their section of the index and the report."""

from __future__ import annotations

from alignlab.errors import AlignlabError
from alignlab.report.sections import Section
from alignlab.runfolder import short_name


def shares_figure(metrics: dict):
    """Each dataset's share of answers matching its behaviour, one row per suite (a point per dataset, its
    95% interval as a line), for the first condition."""
    from alignlab.experiments.figures import new_figure

    body = next(iter(metrics.values()), {}) if metrics else {}
    datasets = body.get("by_dataset") or {}
    suites = sorted(body.get("by_suite") or {})
    fig = new_figure(7.0, 1.2 + 0.8 * max(len(suites), 1))
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

    def across_runs(self, runs):
        from alignlab.report.figures import png_bytes
        from alignlab.report.sections import Figure, Table

        models, rows = scaling_rows(runs)
        if not rows:
            return []
        headers, body = scaling_table_rows(models, rows)
        flagged = sum(bool(r["flag"]) for r in rows)
        out = [
            Table(
                "Inverse scaling: the share matching each behaviour against model size",
                headers,
                body,
                f"Cochran-Armitage trend against log10(parameters), newest run of each of {len(models)} "
                f"models; {flagged} of {len(rows)} datasets flagged at a Benjamini-Hochberg false "
                f"discovery rate of {FDR}." + _left_out(runs, models),
            )
        ]
        if flagged:
            out.append(
                Figure(
                    "Flagged datasets: share matching against parameter count",
                    png_bytes(flagged_figure(models, rows), dpi=90),
                    "the datasets whose trend survives the correction (at most 12 drawn)",
                )
            )
        return out

    def __init__(self, description: str) -> None:
        """`description`: the experiment's own, to which the section adds how to read its numbers."""
        self.description = description + (
            " share_matching: the share of items whose most probable answer matches the behaviour (0.5 is no "
            "preference on a balanced dataset); by_suite: the distribution of the datasets' shares. Intervals: 95% "
            "bootstrap over items."
        )


def section(description: str) -> MWESection:
    return MWESection(description)


# --- inverse scaling across a model ladder -----------------------------------------------------------
FDR = 0.05  # Benjamini-Hochberg false discovery rate across datasets


def _left_out(runs, models) -> str:
    unplaced, empty = unplaced_runs(runs), runs_without_samples(runs, models)
    return (f" Left out, no parameter count: {', '.join(unplaced)}." if unplaced else "") + (
        f" Left out, no samples: {', '.join(empty)}." if empty else ""
    )


def unplaced_runs(runs) -> list[str]:
    """Finished mwe runs the scaling analysis cannot place (no parameter count): named, never dropped
    silently."""
    return sorted(r.name for r in runs if r.complete and r.experiment == "mwe" and not r.parameters)


def sized_runs(runs) -> list:
    """The newest finished mwe run of each model that reports its parameters, smallest first."""
    newest: dict[str, object] = {}
    for run in sorted(runs, key=lambda r: r.date):
        if run.complete and run.parameters and run.experiment == "mwe":
            newest[run.model] = run
    return sorted(newest.values(), key=lambda r: r.parameters)


def runs_without_samples(runs, models) -> list[str]:
    """The sized runs scaling_rows left out of `models` (its first answer): no as-written sample, as when
    samples.jsonl is missing or empty. Named, never dropped silently."""
    placed = {model for model, _ in models}
    return sorted(r.name for r in sized_runs(runs) if r.model not in placed)


def scaling_rows(runs) -> tuple[list[tuple[str, int]], list[dict]]:
    """Per dataset, the share matching on each model size and its Cochran-Armitage trend against log10 of
    the parameter count, with Benjamini-Hochberg adjusted p-values across datasets. Uses the newest finished
    run of each model that reports its parameters and has samples; datasets all of them asked. A sample the
    trend cannot read is an AlignlabError naming its file, line and key."""
    import math

    from alignlab.metrics.trend import armitage_trend, benjamini_hochberg

    counted = [(run, dataset_counts(run)) for run in sized_runs(runs)]
    models = [run for run, mine in counted if mine]  # the others: runs_without_samples
    counts = [mine for _, mine in counted if mine]  # per model: dataset -> [suite, asked, matching]
    if len({r.parameters for r in models}) < 2:
        return [(r.model, r.parameters) for r in models], []
    shared = sorted(set.intersection(*(set(c) for c in counts)))
    rows = []
    for dataset in shared:
        trials = [c[dataset][1] for c in counts]
        hits = [c[dataset][2] for c in counts]
        trend = armitage_trend(trials, hits, [math.log10(r.parameters) for r in models])
        rows.append(
            {
                "dataset": dataset,
                "suite": counts[0][dataset][0],
                "shares": [h / t for h, t in zip(hits, trials, strict=True)],
                "n": trials,
                "trend": trend,
            }
        )
    for row, adjusted in zip(rows, benjamini_hochberg([r["trend"].p for r in rows]), strict=True):
        row["p_adjusted"] = adjusted
        flagged = adjusted == adjusted and adjusted < FDR
        row["flag"] = (
            ("larger match more" if row["trend"].slope > 0 else "larger match less") if flagged else ""
        )
    rows.sort(key=lambda r: (r["p_adjusted"] != r["p_adjusted"], r["p_adjusted"]))
    return [(r.model, r.parameters) for r in models], rows


def dataset_counts(run) -> dict[str, list]:
    """dataset -> [suite, asked, matching] over the run's as-written samples."""
    mine: dict[str, list] = {}
    for where, sample in run.located_samples():
        if sample.get("condition") == "as-written":
            dataset, suite, matches = checked_sample(where, sample)
            entry = mine.setdefault(dataset, [suite, 0, 0])
            entry[1] += 1
            entry[2] += matches
    return mine


def checked_sample(where: str, sample: dict) -> tuple[str, str, bool]:
    """(dataset, suite, matches) of a sample at `where` ("file:line"), as mwe writes them: text, text (or
    none) and true or false. A hand edit ("matches": "no", a list for a dataset) is an AlignlabError naming
    the key, not a miscount or a traceback."""
    sample = {"suite": "", **sample}
    for key, kind, what in (
        ("dataset", str, "text"),
        ("suite", str, "text"),
        ("matches", bool, "true or false"),
    ):
        if key not in sample:
            raise AlignlabError(f"{where}: a sample without {key!r}")
        if not isinstance(sample[key], kind):
            raise AlignlabError(f"{where}: {key!r} is {short_name(sample[key])}, expected {what}")
    return sample["dataset"], sample["suite"], sample["matches"]


def scaling_table_rows(models, rows) -> tuple[tuple[str, ...], list[tuple]]:
    from alignlab.report.figures import parameter_label

    headers = ("dataset", "suite", *(f"share, {parameter_label(p)}" for _, p in models))
    headers += ("slope per 10x [95% CI]", "p", "p (BH)", "flag")
    body = []
    for r in rows:
        t = r["trend"]
        slope = "n/a" if t.slope != t.slope else f"{t.slope:+.3f} {_interval(t)}"
        body.append(
            (
                r["dataset"],
                r["suite"],
                *(f"{s:.2f}" for s in r["shares"]),
                slope,
                "n/a" if t.p != t.p else f"{t.p:.2g}",
                "n/a" if r["p_adjusted"] != r["p_adjusted"] else f"{r['p_adjusted']:.2g}",
                r["flag"],
            )
        )
    return headers, body


def _interval(t) -> str:
    """The slope's 95% interval; none where every share is 0, or every share 1 (no variance to scale)."""
    return "(CI n/a)" if t.ci_low != t.ci_low else f"[{t.ci_low:+.3f}, {t.ci_high:+.3f}]"


def flagged_figure(models, rows, most: int = 12):
    """The flagged datasets' share matching against parameter count (log axis)."""
    from alignlab.experiments.figures import new_figure

    fig = new_figure(7.0, 4.0)
    ax = fig.subplots()
    sizes = [p for _, p in models]
    for k, row in enumerate([r for r in rows if r["flag"]][:most]):
        ax.plot(sizes, row["shares"], marker="o", color=f"C{k % 10}", label=row["dataset"])
    ax.set_xscale("log")
    ax.set_ylim(0, 1)
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel("parameters")
    ax.set_ylabel("share matching the behaviour")
    ax.grid(linewidth=0.4, alpha=0.5)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    return fig
