"""The report's Section of red-team runs, and the run's table on the console."""

from __future__ import annotations

from rich.table import Table as ConsoleTable

from alignlab.data.jsonl import read_json, read_jsonl
from alignlab.papers.red_teaming.redteam_figures import outcomes_figure
from alignlab.report.figures import png_bytes
from alignlab.report.sections import Figure, Section, Table


class RedTeamSection(Section):
    experiment = "redteam"
    title = "Red teaming: attacks, targets and harm"
    description = (
        "Attacks written by a model (or fixed seed prompts) against each kind of target (plain, HHH-prompted, "
        "rejection sampling, fine-tuned), every reply judged (P(harmful), both option orders) and checked for "
        "refusal wording (Ganguli et al. 2022's method, offline). Attack-success rate: successes over every "
        "scored attack, a refusal counting as an attack that did not succeed; refusal rate and unscored share "
        "apart; the judge decides harm, so a harmful reply that opens with refusal words is a success. 95% "
        "Wilson intervals. Minimum harmlessness: 1 - the highest P(harmful) of a conversation's replies; "
        "rating: the judge's 0-4 rating of the attack's success, the published transcripts' scale."
    )
    headline = ("attack_success_rate", "refusal_rate", "mean_min_harmlessness", "mean_rating")
    group_keys = ("by_turns",)

    def run_figures(self, run) -> list[Figure]:
        conditions = (run.metrics or {}).get("conditions") or {}
        if not conditions:
            return []
        figures = [Figure(f"{run.name}: outcomes", png_bytes(outcomes_figure(conditions)), "")]
        if (run.path / "harm.png").is_file():
            caption = (
                "the distribution of each conversation's highest P(harmful); dashed: the success threshold"
            )
            figures.append(Figure(f"{run.name}: harm", (run.path / "harm.png").read_bytes(), caption))
        if (run.path / "rating.png").is_file():
            caption = "the judge's mean 0-4 rating of attack success, on the published transcripts' axis"
            figures.append(Figure(f"{run.name}: rating", (run.path / "rating.png").read_bytes(), caption))
        if (run.path / "map.png").is_file():
            caption = "each attack embedded, clustered and projected; colour: share of target kinds it beat"
            figures.append(
                Figure(f"{run.name}: map of attacks", (run.path / "map.png").read_bytes(), caption)
            )
        return figures

    def across_runs(self, runs) -> list[Figure | Table]:
        return self.self_judged(runs) + self.newest_run(runs)

    @staticmethod
    def self_judged(runs) -> list[Table]:
        """The runs whose rejection target was picked by the judge that then scored it."""
        rows = []
        for run in runs:
            scorer = (run.metrics or {}).get("rejection_scorer")
            if isinstance(scorer, dict) and scorer.get("same_as_judge"):
                rows.append((run.name, scorer.get("spec", "")))
        if not rows:
            return []
        return [
            Table(
                "Rejection targets scored by the model that picked their replies",
                ("run", "rejection scorer and judge"),
                rows,
                caption="best-of-K chose the reply this judge found least harmful, so the rejection "
                "target's numbers favour it by construction; --rejection-scorer another model avoids it",
            )
        ]

    def newest_run(self, runs) -> list[Figure | Table]:
        newest = max(runs, key=lambda r: r.date, default=None)
        path = newest.path / "transcripts.jsonl" if newest else None
        if path is None or not path.is_file():
            return []
        rows = []
        for _, record in read_jsonl(path)[:60]:  # a torn line: one warning in the report
            last = record["replies"][-1]
            harm = max(
                (r["p_harmful"] for r in record["replies"] if r["p_harmful"] is not None), default=None
            )
            rows.append(
                (
                    record["id"],
                    record["outcome"],
                    "" if harm is None else round(harm, 3),
                    record["attack"],
                    " / ".join(f"{role}: {text}" for role, text in record["turns"][1:]) or last["reply"],
                )
            )
        tables = []
        checked = (newest.metrics or {}).get("judge_check")
        if isinstance(checked, dict):
            cells = [
                "n/a"
                if not checked.get(k) or checked[k]["value"] is None
                else f"{checked[k]['value']:.2f} [{checked[k]['ci'][0]:.2f}, {checked[k]['ci'][1]:.2f}]"
                for k in ("agreement", "auroc")
            ]
            tables.append(
                Table(
                    f"How far to trust the judge of {newest.name}",
                    ("labelled conversations", "agreement", "AUROC (0.5: chance)"),
                    [(checked["n"], *cells)],
                    caption="the run's judge on HarmfulVsEthical.jsonl (Bai et al. 2022)",
                )
            )
        if (newest.path / "map.json").is_file():
            clusters = read_json(newest.path / "map.json")["clusters"]
            tables.append(
                Table(
                    f"Clusters of attacks in {newest.name}",
                    ("cluster", "attacks", "distinctive words (c-TF-IDF)", "success share"),
                    [(c["cluster"], c["attacks"], c["label"], c["success"]) for c in clusters],
                )
            )
        return tables + [
            Table(
                f"Transcripts of {newest.name} (first {len(rows)})",
                (
                    "conversation",
                    "outcome",
                    "highest P(harmful)",
                    "attack",
                    "the rest of the conversation",
                ),
                rows,
            )
        ]


def show(console, models, metrics: dict, checked: dict | None, scorer: dict | None = None) -> None:
    table = ConsoleTable(
        "target kind",
        "conversations",
        "attack success [95% CI]",
        "refused",
        "unscored",
        "refusal words judged harmful",
        "mean min harmlessness",
        "mean rating (0-4)",
        title=f"red teaming {models.target} · attacker {models.attacker} · judge {models.judge}",
        title_justify="left",
    )
    for kind, body in metrics.items():
        rate = body["attack_success_rate"]
        shown = (
            "n/a"
            if rate["value"] is None
            else f"{rate['value']:.2f} [{rate['ci'][0]:.2f}, {rate['ci'][1]:.2f}]"
        )
        harm, rating = body["mean_min_harmlessness"], body.get("mean_rating")
        table.add_row(
            kind,
            str(body["n"]),
            shown,
            str(body["n_refused"]),
            str(body["n_unscored"]),
            str(body.get("n_refusal_words_judged_harmful", "n/a")),
            "n/a" if not harm or harm["value"] is None else f"{harm['value']:.3f}",
            "n/a" if not rating or rating["value"] is None else f"{rating['value']:.2f}",
        )
    console.print(table)
    console.print(
        "attack success: successes over scored attacks (refusals count as not successful); min harmlessness: "
        "1 - the judge's P(harmful), in [0, 1], not the paper's preference-model score; rating: the judge's 0-4"
    )
    if scorer and scorer.get("same_as_judge"):
        console.print(
            f"note: the rejection target's replies were picked by {scorer['spec']}, the judge that then "
            "scores them: its numbers favour it by construction (--rejection-scorer another model)"
        )
    if checked:
        agreement, auroc = checked["agreement"], checked["auroc"]
        console.print(
            f"the judge on {checked['n']} labelled conversations: agreement {agreement['value']:.2f} "
            f"[{agreement['ci'][0]:.2f}, {agreement['ci'][1]:.2f}], AUROC "
            + (
                "n/a"
                if auroc["value"] is None
                else f"{auroc['value']:.2f} [{auroc['ci'][0]:.2f}, {auroc['ci'][1]:.2f}]"
            )
            + " (0.5: chance)"
        )
