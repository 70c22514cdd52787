"""BBQ's section of the index and the report (see alignlab.report.sections)."""

from __future__ import annotations

from alignlab.report.figures import png_bytes
from alignlab.report.runs import Run
from alignlab.report.sections import Figure, Section


class BBQSection(Section):
    experiment = "bbq"
    title = "BBQ: bias under Q, Q+IF, Q+IF+CoT"
    description = (
        "Bias scores of Parrish et al. 2022 section 5, on -1..1 with 0 unbiased: s_DIS = 2 n_biased / "
        "n_non-unknown - 1 over disambiguated contexts, s_AMB = (1 - accuracy) x the same score over "
        "ambiguous ones; and "
        "accuracy, under the prompting conditions of Ganguli et al. 2023: the question alone (q), plus the "
        "instruction to be unbiased (q+if), plus chain of thought (q+if+cot). Intervals: 95% percentile "
        "bootstrap over items. With --permute-answers each item is asked under the 3 cyclic orders of its "
        "answers and the answers' probabilities averaged; letter_preference_rate is the share of items whose "
        "chosen letter is the same under all orders (a letter preference, not a social bias)."
    )
    headline = ("bias_score.ambig", "bias_score.disambig", "accuracy.ambig", "accuracy.disambig")
    group_keys = ("by_category",)
    sample_columns = (
        ("id", "id"),
        ("condition", "condition"),
        ("category", "category"),
        ("context_condition", "context"),
        ("question_polarity", "polarity"),
        ("label", "label"),
        ("target", "bias target"),
        ("prediction", "prediction"),
        ("correct", "correct"),
        ("probs", "P(a, b, c)"),
    )
    sample_details = ("prompt", "reasoning", "answers", "probs", "logprobs", "orders")

    def run_figures(self, run: Run) -> list[Figure]:
        from alignlab.papers.self_correction.bbq_plots import bias_by_category_figure

        conditions = (run.metrics or {}).get("conditions")
        if not isinstance(conditions, dict) or not conditions:
            return []
        fig = bias_by_category_figure(conditions, context="both")
        # what the bars cannot say: a condition answered with one letter throughout
        notes = [
            f"{condition}: {note}"
            for condition, m in conditions.items()
            if isinstance(m, dict)
            for note in (m.get("notes") if isinstance(m.get("notes"), list) else [])
            if isinstance(note, str)
        ]
        caption = (
            f"run {run.name}; left s_AMB, right s_DIS; whiskers are 95% bootstrap intervals (none for a bar "
            "of fewer than 5 items); n per row is its items"
        )
        return [
            Figure(
                title=f"{run.model}: bias score by category and condition",
                png=png_bytes(fig, dpi=90),
                caption="; ".join([caption, *notes]),
            )
        ]

    def sample_value(self, sample: dict, key: str):
        value = sample.get(key)
        if key == "probs" and isinstance(value, list):
            return " ".join(f"{p:.3f}" if isinstance(p, int | float) else str(p) for p in value)
        if key in ("label", "target", "prediction") and isinstance(value, int) and 0 <= value < 3:
            return "abc"[value]
        return value


SECTION = BBQSection()
