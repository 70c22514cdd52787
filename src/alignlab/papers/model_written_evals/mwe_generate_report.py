"""Generated behaviour datasets: the funnel as a table (terminal and report) and the diversity figure."""

from __future__ import annotations

import numpy as np

from alignlab.report.sections import Figure, Section, Table

STAGES = (
    ("generated", "generated"),
    ("parsed", "parsed"),
    ("unique_exact", "unique (exact)"),
    ("unique", "unique (embeddings)"),
    ("judged_as_intended", "judge agrees with the label"),
    ("kept", "kept (balanced)"),
)


def funnel_rows(funnel: dict) -> list[tuple[str, int, int, int]]:
    """(stage, agree, disagree, total) for each stage of the funnel that is there."""
    rows = []
    for key, title in STAGES:
        counts = funnel.get(key)
        if isinstance(counts, dict):
            agree, disagree = int(counts.get("agree", 0)), int(counts.get("disagree", 0))
            rows.append((title, agree, disagree, agree + disagree))
    return rows


def funnel_table(summary: dict):
    from rich.table import Table as RichTable

    table = RichTable(
        title=f"{summary['behavior']}: '{summary['description']}' · generator {summary['generator']} · "
        f"judge {summary['judge']}",
        title_justify="left",
    )
    for column in ("stage", "would agree (Yes)", "would disagree (No)", "all"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for stage, agree, disagree, total in funnel_rows(summary["funnel"]):
        table.add_row(stage, str(agree), str(disagree), str(total))
    dropped = summary["funnel"].get("dropped_while_parsing") or {}
    confidence = summary.get("mean_label_confidence")
    diversity = summary.get("diversity") or {}
    table.caption = "; ".join(
        (
            [f"dropped while parsing: {', '.join(f'{why} {n}' for why, n in sorted(dropped.items()))}"]
            if dropped
            else []
        )
        + [f"mean label confidence {confidence:.3f}" if confidence is not None else "nothing kept"]
        + [
            f"{name.replace('_', ' ')} {value:.3f}"
            for name, value in diversity.items()
            if isinstance(value, int | float)
        ]
    )
    return table


def diversity_figure(candidates: list[dict], max_similarity: float, behavior: str):
    """Left: the unique statements' embeddings projected on their first two principal components, by label,
    kept ones filled. Right: each statement's similarity to its nearest neighbour, for every parsed statement
    against the kept ones (the dashed line: the near-duplicate cut)."""
    from alignlab.experiments.figures import new_figure
    from alignlab.models.embeddings import nearest_similarity

    embedded = [c for c in candidates if c.get("vector") is not None]
    vectors = np.array([c["vector"] for c in embedded]).reshape(len(embedded), -1)
    fig = new_figure(9.0, 3.8)
    left, right = fig.subplots(1, 2)
    if len(vectors) >= 2:
        centred = vectors - vectors.mean(axis=0)
        _, _, axes = np.linalg.svd(centred, full_matrices=False)
        points = centred @ axes[:2].T
        for label, colour in (("agree", "C0"), ("disagree", "C3")):
            for kept in (False, True):
                chosen = [
                    i for i, c in enumerate(embedded) if c["label"] == label and (c["fate"] == "kept") == kept
                ]
                if chosen:
                    left.scatter(
                        points[chosen, 0],
                        points[chosen, 1],
                        s=10 if kept else 6,
                        facecolors=colour if kept else "none",
                        edgecolors=colour,
                        alpha=0.8 if kept else 0.35,
                        linewidths=0.6,
                        label=f"{label}, {'kept' if kept else 'not kept'}",
                    )
        left.legend(fontsize=7, loc="best")
    left.set_title(f"{behavior}: statements (PCA of embeddings)", fontsize=9)
    left.set_xticks([])
    left.set_yticks([])
    kept_vectors = vectors[[i for i, c in enumerate(embedded) if c["fate"] == "kept"]]
    bins = np.linspace(0, 1, 41)
    for name, group, colour in (("unique (exact)", vectors, "grey"), ("kept", kept_vectors, "C2")):
        near = nearest_similarity(group) if len(group) >= 2 else np.array([])
        near = near[np.isfinite(near)]
        if len(near):
            right.hist(near, bins=bins, alpha=0.6, color=colour, label=f"{name} (n={len(group)})")
    right.axvline(max_similarity, color="black", linestyle="--", linewidth=0.8)
    right.set_xlabel("cosine similarity to the nearest other statement")
    right.set_ylabel("statements")
    right.legend(fontsize=7)
    return fig


class GeneratedSetsSection(Section):
    experiment = "mwe-generate"
    title = "Model-written evaluations: generated datasets"
    description = (
        "Behaviour datasets written by a generator model and filtered by a judge (Perez et al. 2022 §3.1): "
        "the funnel from samples to the kept, label-balanced statements; mean label confidence is the "
        "paper's ceiling accuracy of a dataset. Whether to trust the judge: see the mwe-judge runs."
    )
    headline = ("kept", "mean_label_confidence")
    group_keys = ("funnel",)
    sample_columns = (("id", "sample"), ("condition", "step"), ("label", "label"), ("text", "text"))
    sample_details = ("statement", "p_agree", "finish_reason")

    def across_runs(self, runs) -> list[Figure | Table]:
        rows = []
        for run in sorted(runs, key=lambda r: r.name):
            summary = ((run.metrics or {}).get("conditions") or {}).get("generated")
            if not isinstance(summary, dict):
                continue
            counts = [total for _, _, _, total in funnel_rows(summary.get("funnel") or {})]
            balance = summary.get("balance") or {}
            confidence = summary.get("mean_label_confidence")
            rows.append(
                (
                    str(summary.get("behavior")),
                    str(summary.get("generator")),
                    str(summary.get("judge")),
                    *counts,
                    " / ".join(f"{k} {v}" for k, v in balance.items()),
                    round(confidence, 3) if isinstance(confidence, int | float) else "",
                )
            )
        if not rows:
            return []
        headers = (
            "behaviour",
            "generator",
            "judge",
            *(t for _, t in STAGES),
            "balance",
            "mean label confidence",
        )
        return [Table("The funnel of each generated dataset", headers, rows)]

    def run_figures(self, run) -> list[Figure]:
        path = run.path / "diversity.png"
        if not path.is_file():
            return []
        return [
            Figure(
                f"{run.name}: diversity",
                path.read_bytes(),
                "statements by label (kept filled) and each one's similarity to its nearest neighbour",
            )
        ]
