"""The P(True) experiment's figure and its section of the index and the report."""

from __future__ import annotations

from alignlab.experiments.figures import run_figure
from alignlab.report.sections import Section


def p_true_histograms(samples: list[dict], conditions: list[str]):
    """One panel per condition: the distribution of P(True) over right and over wrong answers (as the
    paper's Fig. 11 shows them), each as a share of its own answers."""
    from alignlab.experiments.figures import new_figure

    fig = new_figure(3.4 * max(len(conditions), 1), 3.2)
    axes = fig.subplots(1, max(len(conditions), 1), squeeze=False)[0]
    bins = [i / 20 for i in range(21)]
    for ax, condition in zip(axes, conditions, strict=False):
        right, wrong = [], []
        for s in samples:
            if s.get("condition") == condition:
                for p, ok in zip(s["p_true"], s["correct"], strict=True):
                    (right if ok else wrong).append(p)
        for values, label, color in ((wrong, "wrong", "C3"), (right, "right", "C2")):
            if values:
                ax.hist(
                    values,
                    bins=bins,
                    weights=[1 / len(values)] * len(values),
                    alpha=0.6,
                    color=color,
                    label=f"{label} ({len(values)})",
                )
        ax.set_xlim(0, 1)
        ax.set_title(condition, fontsize=10)
        ax.set_xlabel("P(True)", fontsize=8)
        ax.legend(fontsize=7)
        ax.grid(linewidth=0.4, alpha=0.5)
    axes[0].set_ylabel("share of answers", fontsize=8)
    return fig


class PTrueSection(Section):
    experiment = "p-true"
    title = "Self-evaluation: P(True) of sampled answers"
    headline = ("auroc", "brier", "accuracy", "kept_accuracy")
    group_keys = ("by_task",)
    sample_columns = (
        ("id", "question"),
        ("condition", "condition"),
        ("task", "task"),
        ("correct", "right"),
        ("p_true", "P(True)"),
        ("judge_shots_used", "examples"),
    )
    sample_details = ("question", "answers", "golds", "judge_prompt", "answer_prompt")

    def run_figures(self, run):
        return run_figure(
            run,
            p_true_histograms,
            "P(True) of right and wrong answers",
            "each answer's P(True), right answers green, wrong red",
        )

    def sample_value(self, sample: dict, key: str):
        value = sample.get(key)
        if key == "p_true" and isinstance(value, list):
            return " ".join(f"{p:.2f}" for p in value if isinstance(p, int | float))
        if key == "correct" and isinstance(value, list):
            return f"{sum(bool(v) for v in value)}/{len(value)}"
        return value

    def __init__(self, description: str) -> None:
        """`description`: the experiment's own, to which the section adds how to read its numbers."""
        self.description = description + (
            " AUROC: P(True) of right against wrong answers (0.5 = no better than chance); Brier and ECE: P(True) as "
            "the probability of being right; kept accuracy: accuracy of the answers with P(True) > 0.5. Intervals: "
            "95% bootstrap over questions. Examples: how many answered examples preceded the judged question (6: "
            "App. A.5's; 0: zero-shot; fewer than --judge-shots where --judge-max-chars dropped some; mean per "
            "task as judge_shots_used)."
        )


def section(description: str) -> PTrueSection:
    return PTrueSection(description)
