"""A red-team run's figures: outcomes by target kind, the distribution of harm, the 0-4 rating on the
published transcripts' axis, and the map of attacks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from alignlab.experiments.figures import new_figure, save


def draw_map(folder: Path, attacks: list[str], records: list[dict], seed: int) -> None:
    """map.png and map.json: the attacks clustered and projected, coloured by the share of target kinds each
    one succeeded against."""
    from alignlab.atomic import write_text_atomic
    from alignlab.models.embeddings import Embedder
    from alignlab.papers.red_teaming.attack_map import build_map, cluster_rows, map_figure

    ids = sorted({int(r["id"].rpartition("/")[2]) for r in records})
    success = np.array(
        [np.mean([r["outcome"] == "success" for r in records if r["id"].endswith(f"/{i}")]) for i in ids]
    )
    texts = [attacks[i] for i in ids]
    attack_map = build_map(texts, Embedder().embed(texts), seed)
    save(
        map_figure(attack_map, success, "share of target kinds the attack succeeded against", "Attacks"),
        folder / "map.png",
    )
    rows = cluster_rows(attack_map, success)
    write_text_atomic(
        folder / "map.json",
        json.dumps(
            {
                "projection": attack_map.projection,
                "clusters": [
                    dict(zip(("cluster", "attacks", "label", "success"), row, strict=True)) for row in rows
                ],
                "points": [
                    {"attack": t, "x": float(x), "y": float(y), "cluster": int(c), "success": float(v)}
                    for t, (x, y), c, v in zip(
                        texts, attack_map.points, attack_map.clusters, success, strict=True
                    )
                ],
            },
            ensure_ascii=False,
            indent=1,
        )
        + "\n",
    )


def outcomes_figure(metrics: dict):
    """Conversations of each target kind by outcome (stacked), the success rate's interval above."""
    from alignlab.metrics.attack import OUTCOMES

    kinds = list(metrics)
    fig = new_figure(1.6 + 1.2 * len(kinds), 3.4)
    ax = fig.subplots()
    bottom = np.zeros(len(kinds))
    colours = {"success": "C3", "failure": "C2", "refused": "C0", "unscored": "grey"}
    for name in OUTCOMES:
        counts = np.array([metrics[k][f"n_{name}"] for k in kinds], dtype=float)
        ax.bar(kinds, counts, bottom=bottom, color=colours[name], label=name)
        bottom += counts
    ax.set_ylabel("conversations")
    ax.legend(fontsize=7)
    return fig


def harm_figure(records: list[dict], threshold: float):
    """The distribution of each conversation's highest P(harmful), one line per target kind."""
    fig = new_figure(6.0, 3.4)
    ax = fig.subplots()
    bins = np.linspace(0, 1, 21)
    for colour, kind in enumerate(dict.fromkeys(r["kind"] for r in records)):
        highest = [
            1 - r["min_harmlessness"]
            for r in records
            if r["kind"] == kind and r["min_harmlessness"] is not None
        ]
        if highest:
            ax.hist(highest, bins=bins, histtype="step", linewidth=1.4, color=f"C{colour}", label=kind)
    ax.axvline(threshold, color="black", linestyle="--", linewidth=0.8)
    ax.set_xlabel("highest P(harmful) of a conversation's replies")
    ax.set_ylabel("conversations")
    ax.legend(fontsize=7)
    return fig


RATING_LABEL = "rating of attack success (0-4)"


def rating_axis(ax) -> None:
    """The 0-4 axis every rating is drawn on, live runs and published transcripts alike."""
    ax.set_ylim(0, 4)
    ax.set_yticks(range(5))
    ax.set_ylabel(RATING_LABEL)


def rating_figure(metrics: dict):
    """Each target kind's mean 0-4 rating with its 95% interval, on the published transcripts' axis."""
    kinds = [k for k in metrics if (metrics[k].get("mean_rating") or {}).get("value") is not None]
    fig = new_figure(1.6 + 1.2 * max(len(kinds), 1), 3.4)
    ax = fig.subplots()
    for x, kind in enumerate(kinds):
        e = metrics[kind]["mean_rating"]
        low, high = e["ci"] if e["ci"][0] is not None else (e["value"], e["value"])
        ax.errorbar([x], [e["value"]], yerr=[[e["value"] - low], [high - e["value"]]], marker="o", capsize=3)
    ax.set_xticks(range(len(kinds)), kinds)
    ax.set_xlim(-0.5, max(len(kinds), 1) - 0.5)
    rating_axis(ax)
    return fig
