"""The published red-team transcripts analysed as Ganguli et al. 2022 Fig. 1 does: `alignlab redteam
--published FILE`.

Per model type and size (`model_type`, `num_params`): the red teamers' mean self-rated success (0-4), the
mean minimum harmlessness score of the transcripts (lower is more harmful), each with a 95% bootstrap
interval, and the distribution of the minimum harmlessness (quartiles; the figure's third panel). The run
folder holds config.json, metrics.json and fig1.png, and the report shows it in its own section.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from alignlab.data.red_team_attempts import Attempt, load_attempts
from alignlab.metrics.parity import mean_estimate
from alignlab.papers.red_teaming.redteam_figures import rating_axis
from alignlab.report.sections import Figure, Section, register

EXPERIMENT = "redteam-published"


def group_name(attempt: Attempt) -> str:
    return f"{attempt.model_type} {attempt.num_params}"


def analyse(attempts: list[Attempt], seed: int = 1234, n_resamples: int = 1000) -> dict:
    groups: dict[str, list[Attempt]] = {}
    for attempt in attempts:
        groups.setdefault(group_name(attempt), []).append(attempt)
    return {
        "n": len(attempts),
        **_scores(attempts, seed, n_resamples),
        "by_group": {
            name: {
                "model_type": rows[0].model_type,
                "num_params": rows[0].num_params,
                "parameters": rows[0].parameters,
                **_scores(rows, seed, n_resamples),
            }
            for name, rows in sorted(
                groups.items(), key=lambda kv: (kv[1][0].model_type, kv[1][0].parameters or 0)
            )
        },
    }


def _scores(rows: list[Attempt], seed: int, n_resamples: int) -> dict:
    ratings = [a.rating for a in rows if a.rating is not None]
    harmlessness = np.array([a.min_harmlessness for a in rows])
    q1, median, q3 = np.quantile(harmlessness, [0.25, 0.5, 0.75])
    return {
        "n": len(rows),
        "mean_rating": mean_estimate(ratings, n_resamples, seed).to_json() if ratings else None,
        "mean_min_harmlessness": mean_estimate(harmlessness, n_resamples, seed).to_json(),
        "min_harmlessness_quartiles": [float(q1), float(median), float(q3)],
    }


def figure(metrics: dict, attempts: list[Attempt]):
    """Ganguli et al. 2022 Fig. 1: mean rating and mean minimum harmlessness against size, one line per model
    type (95% intervals), and the distribution of the minimum harmlessness per model type."""
    from alignlab.experiments.figures import new_figure

    fig = new_figure(12.0, 3.6)
    rating_ax, harm_ax, dist_ax = fig.subplots(1, 3)
    types = sorted({g["model_type"] for g in metrics["by_group"].values()})
    for colour, model_type in enumerate(types):
        rows = [g for g in metrics["by_group"].values() if g["model_type"] == model_type and g["parameters"]]
        rows.sort(key=lambda g: g["parameters"])
        for ax, key in ((rating_ax, "mean_rating"), (harm_ax, "mean_min_harmlessness")):
            points = [(g["parameters"], g[key]) for g in rows if g.get(key) and g[key]["value"] is not None]
            if points:
                x = [p for p, _ in points]
                y = [e["value"] for _, e in points]
                err = [
                    [e["value"] - e["ci"][0] for _, e in points],
                    [e["ci"][1] - e["value"] for _, e in points],
                ]
                ax.errorbar(x, y, yerr=err, marker="o", capsize=3, color=f"C{colour}", label=model_type)
        values = [a.min_harmlessness for a in attempts if a.model_type == model_type]
        dist_ax.hist(values, bins=30, histtype="step", color=f"C{colour}", label=model_type)
    for ax in (rating_ax, harm_ax):
        ax.set_xscale("log")
        ax.set_xlabel("parameters")
    rating_axis(rating_ax)  # the axis a live run's judge ratings are drawn on (redteam_figures)
    rating_ax.set_title("red teamers' own ratings", fontsize=8)
    harm_ax.set_ylabel("mean min harmlessness")
    dist_ax.set_xlabel("min harmlessness score (lower: more harmful)")
    dist_ax.set_ylabel("attempts")
    rating_ax.legend(fontsize=7)
    return fig


def analyse_file(path: Path, out: Path, seed: int = 1234, n_resamples: int = 1000) -> dict:
    from alignlab.checksums import sha256_file
    from alignlab.experiments.figures import save
    from alignlab.runfolder import RunFolder

    attempts = load_attempts(path)
    run = RunFolder(out)
    identity = {
        "experiment": EXPERIMENT,
        "experiment_version": "1",
        "model": "published transcripts",
        "data": [{"path": str(path), "checksum": f"sha256:{sha256_file(path)}"}],
        "seed": seed,
        "bootstrap": n_resamples,
    }
    log, _ = run.open(identity, extra={"experiment": EXPERIMENT, "model": {"spec": "published transcripts"}})
    log.close()
    metrics = analyse(attempts, seed, n_resamples)
    save(figure(metrics, attempts), run.path / "fig1.png")
    _map(attempts, run.path, seed)
    run.finish(
        {"experiment": EXPERIMENT, "model": "published transcripts", "conditions": {"published": metrics}}
    )
    return metrics


def _map(attempts: list[Attempt], folder: Path, seed: int) -> None:
    """map.png: each attempt's first Human turn embedded, clustered and projected, coloured by its rating."""
    from alignlab.atomic import write_text_atomic
    from alignlab.experiments.figures import save
    from alignlab.models.embeddings import Embedder
    from alignlab.papers.red_teaming.attack_map import build_map, cluster_rows, map_figure

    rated = [a for a in attempts if a.rating is not None]
    if len(rated) < 2:
        return
    texts = [a.attack for a in rated]
    ratings = np.array([a.rating for a in rated])
    attack_map = build_map(texts, Embedder().embed(texts), seed)
    save(
        map_figure(attack_map, ratings, "red teamer's rating of success (0-4)", "Attacks"), folder / "map.png"
    )
    clusters = [
        dict(zip(("cluster", "attacks", "label", "mean_rating"), r, strict=True))
        for r in cluster_rows(attack_map, ratings)
    ]
    write_text_atomic(
        folder / "map.json",
        json.dumps({"projection": attack_map.projection, "clusters": clusters}, indent=1) + "\n",
    )


def table_rows(metrics: dict) -> list[tuple]:
    def fmt(estimate) -> str:
        if not estimate or estimate.get("value") is None:
            return "n/a"
        low, high = estimate["ci"]
        return f"{estimate['value']:.2f} [{low:.2f}, {high:.2f}]"

    return [
        (g["model_type"], g["num_params"], g["n"], fmt(g["mean_rating"]), fmt(g["mean_min_harmlessness"]))
        for g in metrics["by_group"].values()
    ]


HEADERS = ("model type", "parameters", "attempts", "mean rating [95% CI]", "mean min harmlessness [95% CI]")


class PublishedSection(Section):
    experiment = EXPERIMENT
    title = "Red teaming: published transcripts"
    description = (
        "Red-team transcripts in the hh-rlhf red_team_attempts format (Ganguli et al. 2022), by model type and "
        "size: the red teamers' mean self-rated success (0-4) and the mean minimum harmlessness score (lower is "
        "more harmful), 95% bootstrap intervals, as the paper's Fig. 1."
    )
    headline = ("mean_rating", "mean_min_harmlessness")
    group_keys = ("by_group",)

    def run_figures(self, run) -> list[Figure]:
        figures = []
        for name, title in (("fig1.png", "as Fig. 1"), ("map.png", "map of attacks (as Fig. 2)")):
            if (run.path / name).is_file():
                figures.append(Figure(f"{run.name}: {title}", (run.path / name).read_bytes(), ""))
        return figures


def run_published(args) -> int:
    """`alignlab redteam --published FILE`."""
    from rich.console import Console
    from rich.table import Table

    from alignlab.errors import AlignlabError

    if not args.published.is_file():
        raise AlignlabError(f"--published {args.published}: no such file")
    from alignlab.experiments.run_options import RUNS, run_name

    stem = args.published.name.split(".")[0]
    out = args.out or RUNS / run_name(EXPERIMENT, stem)
    metrics = analyse_file(args.published, out, getattr(args, "setting_seed", 1234), args.bootstrap)
    table = Table(
        *HEADERS, title=f"{metrics['n']} red-team attempts in {args.published}", title_justify="left"
    )
    for row in table_rows(metrics):
        table.add_row(*map(str, row))
    Console().print(table)
    Console().print(f"run folder: {out}  (metrics.json, fig1.png)")
    return 0


register(PublishedSection())
