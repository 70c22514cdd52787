"""The P(IK) experiment's section of the index and the report."""

from __future__ import annotations

from alignlab.report.sections import Section


class PIKSection(Section):
    experiment = "p-ik"
    title = "Self-knowledge: P(IK) probes"
    headline = ("auroc", "brier", "ece", "mean_fraction")
    group_keys = ("by_task",)
    sample_columns = (("id", "question"), ("task", "task"), ("fraction_right", "share right"))
    sample_details = ("question", "answers", "correct", "golds")

    def __init__(self, description: str) -> None:
        """`description`: the experiment's own, to which the section adds how to read its numbers."""
        self.description = description + (
            " Condition probe, top level: the train tasks' held-out questions; by task: each test set (other tasks "
            "are out of distribution); leave_one_out.TASK: a probe trained on the other tasks, tested on TASK. "
            "AUROC and Brier against the share right binarised at 0.5; mean P(IK) against the mean share right. "
            "Conditions source and hints: mean P(IK) of the same questions with material or a hint in the context "
            "(mean_p_ik.VARIANT; none is the question alone), and its paired gain over none (gain.VARIANT). "
            "Intervals: 95% bootstrap over questions."
        )


def section(description: str) -> PIKSection:
    return PIKSection(description)
