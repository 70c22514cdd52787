"""The calibration experiment's figure and its section of the index and the report."""

from __future__ import annotations

from alignlab.experiments.figures import run_figure
from alignlab.metrics import calibration as cal
from alignlab.report.sections import Section


def reliability_figure(samples: list[dict], conditions: list[str], n_bins: int = 10):
    """One panel per condition: every option's probability against whether it is the answer, in equal-count
    bins (Kadavath et al. 2022's charts bin all options, correct and incorrect), with the identity line; for
    true-false, P(True) of every problem against whether its proposed answer is right (as Fig. 8)."""
    from alignlab.experiments.figures import new_figure

    fig = new_figure(3.2 * max(len(conditions), 1), 3.4)
    axes = fig.subplots(1, max(len(conditions), 1), squeeze=False)[0]
    for ax, condition in zip(axes, conditions, strict=False):
        probs, truth = binned_points([s for s in samples if s.get("condition") == condition])
        points = cal.reliability_bins(probs, truth, n_bins, "equal-mass")
        ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle="--")
        ax.plot([b.mean_probability for b in points], [b.fraction_true for b in points], marker="o")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(condition, fontsize=10)
        true_false = any("truth" in s for s in samples if s.get("condition") == condition)
        ax.set_xlabel("P(True) (every problem)" if true_false else "probability (all options)", fontsize=8)
        ax.grid(linewidth=0.4, alpha=0.5)
    axes[0].set_ylabel("fraction that are right", fontsize=8)
    return fig


def binned_points(samples: list[dict]) -> tuple[list[float], list[bool]]:
    """(probability, is it right) of everything a condition's samples put a probability on: each option of
    a multiple-choice question, each proposed answer of a True/False one."""
    probs, truth = [], []
    for s in samples:
        if "truth" in s:  # a True/False sample: its proposed answers and whether each is right
            probs += s["p_true"]
            truth += s["truth"]
        else:
            probs += s["probs"]
            truth += [k == s["answer"] for k in range(len(s["probs"]))]
    return probs, truth


class CalibrationSection(Section):
    experiment = "calibration"
    title = "Multiple-choice calibration"
    headline = ("accuracy", "ece", "brier", "temperature.ece_before", "temperature.ece_after")
    group_keys = ("by_task",)
    sample_columns = (
        ("id", "question"),
        ("condition", "condition"),
        ("task", "task"),
        ("answer", "answer"),
        ("predicted", "predicted"),
        ("confidence", "P(predicted)"),
        ("p_answer", "P(answer)"),
        ("p_true", "P(True): right, wrong answer"),
    )
    sample_details = ("question", "choices", "probs", "proposed", "truth", "shots")

    def run_figures(self, run):
        return run_figure(
            run,
            reliability_figure,
            "reliability of every option's probability",
            "10 equal-count bins; dashed: perfect calibration; true-false: P(True) of every proposed answer",
        )

    def sample_value(self, sample: dict, key: str):
        value = sample.get(key)
        if key in ("answer", "predicted") and isinstance(value, int) and 0 <= value < 26:
            return "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[value]
        if key in ("probs", "p_true") and isinstance(value, list):
            return " ".join(f"{p:.3f}" for p in value if isinstance(p, int | float))
        return value

    def __init__(self, description: str) -> None:
        """`description`: the experiment's own, to which the section adds how to read its numbers."""
        self.description = description + (
            " accuracy, ECE and RMS calibration error (10 equal-count bins of the top answer's probability), Brier "
            "score of the top answer; temperature: T fitted on half the questions, ECE on the other half before "
            "and after. true-false (§3.2): each question's right answer and one wrong one, each proposed as a "
            "True/False problem; its accuracy, ECE and RMS-CE are of the top prediction (P(True) or 1 - P(True)) "
            "over both problems, its Brier score of P(True) against the truth, AUROC of P(True) between right "
            "and wrong answers, mean_p_true for each; its reliability panel bins P(True) of every problem (as "
            "Fig. 8). Intervals: 95% bootstrap over questions."
        )


def section(description: str) -> CalibrationSection:
    return CalibrationSection(description)
