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
            " Top level: the train task's held-out questions; by task: each test set (other tasks are out of "
            "distribution). AUROC and Brier against the share right binarised at 0.5; mean P(IK) against the mean "
            "share right. Intervals: 95% bootstrap over questions."
        )


def section(description: str) -> PIKSection:
    return PIKSection(description)
