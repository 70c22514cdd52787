"""The report's Section for Constitutional AI runs: the before/after table, Elo scores with intervals, the
preference model's accuracy, and example critique/revision chains and replies (every cell escaped by the
report: they are model outputs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alignlab.report.sections import Figure, Section, Table

ELO_FIGURE = "elo.png"


def elo_figure(metrics: dict):
    """Elo of each model for harmlessness and helpfulness, 95% intervals as error bars, base at 0."""
    from alignlab.experiments.figures import new_figure

    conditions = metrics.get("conditions") or {}
    names = list(conditions)
    fig = new_figure(6.4, 3.4)
    ax = fig.subplots()
    width = 0.38
    for j, dimension in enumerate(("harmlessness", "helpfulness")):
        values, low, high = [], [], []
        for name in names:
            est = conditions[name].get(f"elo_{dimension}") or {}
            v = est.get("value")
            ci = est.get("ci") or [None, None]
            values.append(np.nan if v is None else v)
            low.append(0.0 if v is None or ci[0] is None else v - ci[0])
            high.append(0.0 if v is None or ci[1] is None else ci[1] - v)
        x = np.arange(len(names)) + (j - 0.5) * width
        ax.bar(x, values, width, yerr=[low, high], capsize=3, color=f"C{j}", label=dimension)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(np.arange(len(names)), names)
    ax.set_ylabel("Elo (base = 0)")
    ax.legend(fontsize=7)
    return fig


def save_figures(folder: Path, metrics: dict) -> None:
    from alignlab.experiments.figures import save

    save(elo_figure(metrics), folder / ELO_FIGURE)


def _jsonl(path: Path, limit: int) -> list[dict]:
    if not path.is_file():
        return []
    from alignlab.data.jsonl import read_jsonl

    return [row for _, row in read_jsonl(path)[:limit]]  # a torn line: one warning in the report


class CAISection(Section):
    experiment = "cai"
    title = "Constitutional AI: before and after"
    description = (
        "Constitutional AI (Bai et al. 2022) on one model: replies critiqued and revised under a constitution "
        "and fine-tuned on (SL-CAI), then AI preference labels, a preference model, and RL against it with a KL "
        "penalty (RL-CAI, TRL's RLOO); beside it DPO on the AI labels taken hard, soft or clamped. Every model is "
        "compared with every other on held-out prompts by a judge model (harmlessness and helpfulness, both "
        "orders): win rates against the base model and Elo scores (base = 0), 95% bootstrap intervals over "
        "prompts; accuracy on the 438 published HHH comparisons; red-team attack success (refusals count as "
        "attacks that did not succeed)."
    )
    headline = ("elo_harmlessness", "elo_helpfulness", "hhh.accuracy", "redteam.attack_success_rate")
    group_keys = ()

    def run_figures(self, run) -> list[Figure]:
        path = run.path / ELO_FIGURE
        if not path.is_file():
            return []
        return [
            Figure(
                f"{run.name}: Elo", path.read_bytes(), "Elo from the judged comparisons; bars: 95% intervals"
            )
        ]

    def across_runs(self, runs) -> list[Figure | Table]:
        tables: list[Figure | Table] = []
        for run in sorted(runs, key=lambda r: r.date, reverse=True):
            metrics = run.metrics or {}
            tables.append(Table(f"Before and after: {run.name}", BEFORE_AFTER, before_after_rows(metrics)))
            pm = ((metrics.get("stages") or {}).get("pm")) or {}
            pm_rows = [
                (key.replace("_", " "), pm[key]["n"], fmt_estimate(pm[key]["accuracy"]))
                for key in ("held_out_ai_labels", "hh_rlhf_harmless_base")
                if isinstance(pm.get(key), dict)
            ]
            if pm_rows:
                tables.append(
                    Table(f"The preference model of {run.name}", ("test pairs", "n", "accuracy"), pm_rows)
                )
        newest = max(runs, key=lambda r: r.date, default=None)
        if newest is None:
            return tables
        chains = _jsonl(newest.path / "revise" / "chains.jsonl", 8)
        if chains:
            tables.append(
                Table(
                    f"Critique and revision chains of {newest.name} (first {len(chains)})",
                    ("prompt", "first reply", "principle", "critique", "revision"),
                    [
                        (c["prompt"], c["response"], r["pair"], r["critique"], r["revision"])
                        for c in chains
                        for r in c["rounds"][:1]
                    ],
                )
            )
        replies = _jsonl(newest.path / "evaluate" / "replies.jsonl", 8)
        if replies:
            names = [k for k in replies[0] if k not in ("id", "prompt")]
            tables.append(
                Table(
                    f"Held-out prompts and each model's reply, {newest.name} (first {len(replies)})",
                    ("prompt", *names),
                    [(r["prompt"], *(r[n] for n in names)) for r in replies],
                )
            )
        return tables


def fmt_estimate(estimate, digits: int = 2) -> str:
    if not isinstance(estimate, dict) or estimate.get("value") is None:
        return "n/a"
    low, high = estimate.get("ci") or (None, None)
    if low is None:
        return f"{estimate['value']:.{digits}f}"
    return f"{estimate['value']:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def before_after_rows(metrics: dict) -> list[tuple]:
    rows = []
    for name, body in (metrics.get("conditions") or {}).items():
        redteam = body.get("redteam") or {}
        rows.append(
            (
                name,
                fmt_estimate(body.get("elo_harmlessness"), 0),
                fmt_estimate(body.get("elo_helpfulness"), 0),
                fmt_estimate(body.get("win_rate_harmlessness_vs_base"))
                if body.get("win_rate_harmlessness_vs_base")
                else "—",
                fmt_estimate(body.get("win_rate_helpfulness_vs_base"))
                if body.get("win_rate_helpfulness_vs_base")
                else "—",
                fmt_estimate((body.get("hhh") or {}).get("accuracy")),
                fmt_estimate(redteam.get("attack_success_rate")) if redteam else "—",
                "n/a" if body.get("mean_reply_words") is None else f"{body['mean_reply_words']:.0f}",
            )
        )
    return rows


BEFORE_AFTER = (
    "model",
    "Elo harmlessness",
    "Elo helpfulness",
    "harmlessness win rate vs base",
    "helpfulness win rate vs base",
    "HHH accuracy",
    "red-team attack success",
    "mean reply words",
)


def print_stage(console, stage: str, result: dict) -> None:
    from rich.table import Table as ConsoleTable

    if stage != "evaluate":
        for name, body in (result.get("variants") or {"": result}).items():
            shown = {k: v for k, v in body.items() if not isinstance(v, dict | list)}
            train = body.get("train") or {}
            shown.update({k: train[k] for k in ("train_runtime", "train_loss", "reward", "kl") if k in train})
            console.print(
                (f"{name}: " if name else "")
                + ", ".join(
                    f"{k}: {v:.3g}" if isinstance(v, float) else f"{k}: {v}" for k, v in shown.items()
                )
            )
        for key in ("held_out_ai_labels", "hh_rlhf_harmless_base"):
            if key in result:
                console.print(
                    f"preference model on {key.replace('_', ' ')}: accuracy {fmt_estimate(result[key]['accuracy'])}"
                )
        return
    table = ConsoleTable(
        *BEFORE_AFTER, title="Constitutional AI: before and after (95% intervals)", title_justify="left"
    )
    for row in before_after_rows(result):
        table.add_row(*row)
    console.print(table)
