"""Multiple-choice calibration: the metrics by hand, the loaders, the prompt format, and runs with backends
whose answers are known."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from stub_backend import DATA, StubBackend, run_cli, run_stubbed

import alignlab.evaluate
import alignlab.models
from alignlab.cli import main
from alignlab.data.multiple_choice import (
    MCQuestion,
    arithmetic_questions,
    load_jsonl,
    load_mmlu,
    load_truthfulqa_mc1,
)
from alignlab.errors import AlignlabError
from alignlab.metrics import calibration as cal
from alignlab.metrics.bootstrap import bootstrap_estimate, interval_from_resamples
from alignlab.models.base import ScoreResult
from alignlab.papers.self_knowledge.calibration import (
    NONE_OF_THE_ABOVE,
    CalibrationSettings,
    Proposal,
    render,
    render_true_false,
    show,
    true_false_scores,
)

needs_data = pytest.mark.skipif(not (DATA / "mmlu").is_dir(), reason="../shared/datasets not found")


# --- metrics by hand ------------------------------------------------------------------------------------
P = [0.2, 0.4, 0.6, 0.9]
Y = [0, 1, 1, 1]


def test_multiclass_brier_by_hand():
    assert cal.multiclass_brier([0.7, 0.2, 0.1], 0) == pytest.approx(0.09 + 0.04 + 0.01)
    assert cal.multiclass_brier([0.7, 0.2, 0.1], 2) == pytest.approx(0.49 + 0.04 + 0.81)
    assert cal.multiclass_brier([1.0, 0.0], 0) == 0.0 and cal.multiclass_brier([0.0, 1.0], 0) == 2.0


def test_ece_rms_brier_by_hand_with_two_equal_width_bins():
    # bins [0, .5): conf .3, acc .5;  [.5, 1]: conf .75, acc 1
    assert cal.expected_calibration_error(P, Y, 2, "equal-width") == pytest.approx(0.5 * 0.2 + 0.5 * 0.25)
    assert cal.rms_calibration_error(P, Y, 2, "equal-width") == pytest.approx(
        math.sqrt(0.5 * 0.04 + 0.5 * 0.0625)
    )
    assert cal.brier_score(P, Y) == pytest.approx((0.04 + 0.36 + 0.16 + 0.01) / 4)


def test_equal_mass_bins_follow_sorted_order_not_input_order():
    p, y = [0.9, 0.2, 0.6, 0.4], [1, 0, 1, 1]
    assert cal.expected_calibration_error(p, y, 2, "equal-mass") == pytest.approx(0.225)
    # 10 bins over 4 predictions: each alone, so ECE is the mean |y - p|
    assert cal.expected_calibration_error(p, y, 10, "equal-mass") == pytest.approx(
        (0.1 + 0.2 + 0.4 + 0.6) / 4
    )
    # equal-width at 10 bins puts .6 and .9 apart too, but not by rank
    assert cal.expected_calibration_error(
        [0.31, 0.32, 0.33, 0.34], [1, 0, 0, 0], 10, "equal-width"
    ) == pytest.approx(abs(1 - (0.31 + 0.32 + 0.33 + 0.34)) / 4)


def test_errors_are_vectorised_over_a_leading_resample_axis():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=(5, 40))
    y = (rng.uniform(size=(5, 40)) < p).astype(float)
    for binning in cal.BINNINGS:
        rows = cal.expected_calibration_error(p, y, 10, binning)
        assert rows.shape == (5,)
        assert rows == pytest.approx(
            [cal.expected_calibration_error(p[i], y[i], 10, binning) for i in range(5)]
        )
        rms = cal.rms_calibration_error(p, y, 10, binning)
        assert rms == pytest.approx([cal.rms_calibration_error(p[i], y[i], 10, binning) for i in range(5)])


def test_a_perfectly_calibrated_bin_has_no_error_and_bad_settings_are_refused():
    assert cal.expected_calibration_error([0.5, 0.5], [0, 1], 1) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="binning"):
        cal.expected_calibration_error(P, Y, 10, "quantile")
    with pytest.raises(ValueError, match="n_bins"):
        cal.expected_calibration_error(P, Y, 0)


def test_reliability_bins_by_hand():
    bins = cal.reliability_bins([0.1, 0.2, 0.8, 0.9], [0, 1, 1, 1], 2, "equal-mass")
    assert [(b.count, b.mean_probability, b.fraction_true) for b in bins] == [
        (2, pytest.approx(0.15), 0.5),
        (2, pytest.approx(0.85), 1.0),
    ]


def test_temperature_scaling_recovers_the_temperature_the_labels_were_drawn_at():
    rng = np.random.default_rng(1)
    scores = rng.normal(scale=3.0, size=(4000, 4))
    truth = 2.5
    probs = np.exp(scores / truth)
    probs /= probs.sum(1, keepdims=True)
    labels = [int(rng.choice(4, p=row)) for row in probs]
    fitted = cal.fit_temperature(scores.tolist(), labels)
    assert fitted == pytest.approx(truth, rel=0.1)
    assert cal.negative_log_likelihood(scores, labels, fitted) < cal.negative_log_likelihood(
        scores, labels, 1.0
    )


def test_nll_and_softmax_by_hand_with_rows_of_different_lengths():
    rows = [[math.log(0.5), math.log(0.25), math.log(0.25)], [0.0, 0.0]]
    assert [list(r) for r in cal.softmax_rows(rows)] == [
        pytest.approx([0.5, 0.25, 0.25]),
        pytest.approx([0.5, 0.5]),
    ]
    assert cal.negative_log_likelihood(rows, [1, 0], 1.0) == pytest.approx((math.log(4) + math.log(2)) / 2)


def test_bias_corrected_interval_by_hand():
    stats = np.arange(1, 101, dtype=float)
    # a quarter of the resamples below the estimate: z0 = Phi^-1(.25) = -0.6745, levels
    # Phi(2 z0 - 1.96) = 0.00047 and Phi(2 z0 + 1.96) = 0.7294 -> quantiles 1 + 99 x level
    low, high = interval_from_resamples(stats, 0.95, "bc", point=25.5)
    assert low == pytest.approx(1.0463, abs=0.01)
    assert high == pytest.approx(73.21, abs=0.05)
    # an estimate in the middle of its resamples: the percentile interval
    assert interval_from_resamples(stats, 0.95, "bc", point=50.5) == pytest.approx(
        interval_from_resamples(stats, 0.95, "percentile")
    )


def test_the_bias_corrected_interval_is_undefined_when_the_estimate_is_outside_its_resamples():
    stats = np.arange(1, 101, dtype=float)
    # 2 of 100 resamples below: z0 = Phi^-1(.02) = -2.05 < -1.96, so Phi(2 z0 + 1.96) = 0.018 < 0.02 and the
    # corrected interval [1.0, 2.8] would sit wholly above the estimate 2.5: no interval instead
    assert all(math.isnan(x) for x in interval_from_resamples(stats, 0.95, "bc", point=2.5))
    assert all(math.isnan(x) for x in interval_from_resamples(stats, 0.95, "bc", point=98.5))
    # 3 below (share .03, inside the central 95%): an interval, and it holds the estimate
    low, high = interval_from_resamples(stats, 0.95, "bc", point=3.5)
    assert low <= 3.5 <= high


def test_an_ece_on_three_items_a_bin_gets_no_interval_rather_than_one_above_its_estimate():
    # equal-mass bins of 3: resampling duplicates items within a bin, so nearly every resampled ECE is
    # above the estimate (the percentile interval misses it entirely)
    rng = np.random.default_rng(1)
    p = rng.uniform(0.2, 0.4, size=30)
    y = (rng.uniform(size=30) < p).astype(float)

    def ece(q, t):
        return cal.expected_calibration_error(q, t, 10)

    pct = bootstrap_estimate(ece, (p, y), 2000, seed=0)
    bc = bootstrap_estimate(ece, (p, y), 2000, seed=0, method="bc")
    assert pct.ci_low > pct.value
    assert math.isnan(bc.ci_low) and math.isnan(bc.ci_high)
    assert bc.value == pytest.approx(pct.value)


def test_the_bias_corrected_ece_interval_holds_its_estimate_where_the_percentile_one_may_not():
    rng = np.random.default_rng(3)
    p = rng.uniform(0.3, 0.9, size=30)
    y = (rng.uniform(size=30) < p).astype(float)

    def ece(q, t):
        return cal.expected_calibration_error(q, t, 10)

    bc = bootstrap_estimate(ece, (p, y), 2000, seed=0, method="bc")
    pct = bootstrap_estimate(ece, (p, y), 2000, seed=0)
    assert bc.ci_low <= bc.value <= bc.ci_high
    assert pct.ci_low > bc.ci_low  # resampled ECEs sit above the estimate; bc moves the interval down


# --- loaders --------------------------------------------------------------------------------------------
@needs_data
def test_mmlu_and_truthfulqa_load_every_row():
    from alignlab.data import registry

    paths = list(registry.locate("mmlu", DATA))
    test, dev = load_mmlu(paths, "test"), load_mmlu(paths, "dev")
    assert (len(test), len(dev)) == (14042, 285)  # SOURCES.md
    assert len({q.subject for q in test}) == 57
    assert all(len(q.choices) == 4 and 0 <= q.answer < 4 for q in test)
    first = next(q for q in test if q.subject == "abstract_algebra")
    assert first.choices == ("0", "4", "2", "6") and first.answer == 1
    tqa = load_truthfulqa_mc1(DATA / "truthfulqa" / "mc_task.json")
    assert len(tqa) == 817
    assert all(q.answer == 0 for q in tqa)  # the file lists the right answer first


def test_arithmetic_problems_are_right_seeded_and_have_distinct_options():
    problems = arithmetic_questions(60, seed=5)
    for q in problems:
        a, op, b = re.fullmatch(r"What is (\d+) ([-+*]) (\d+)\?", q.question).groups()
        value = {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]
        assert q.choices[q.answer] == str(value)
        assert len(set(q.choices)) == 4
    assert problems == arithmetic_questions(60, seed=5)
    assert problems != arithmetic_questions(60, seed=6)
    assert {q.answer for q in problems} == {0, 1, 2, 3}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{"question": "q", "choices": ["a", "b"], "answer": 2}\n',
            r"bad\.jsonl:1: answer 2 is not an option index 0-1",
        ),
        ('{"question": "q", "choices": ["a"], "answer": 0}\n', r"bad\.jsonl:1: needs 'question'"),
        ('\n{"question": "q", "choices": ["a", "b"], "answer": 0\n', r"bad\.jsonl:2: not valid JSON"),
        ("", r"bad\.jsonl: no rows"),
    ],
)
def test_a_malformed_question_file_names_file_and_line(tmp_path, text, message):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(text)
    with pytest.raises(AlignlabError, match=message):
        load_jsonl(bad)


def test_a_malformed_mmlu_row_names_file_and_line(tmp_path):
    bad = tmp_path / "x_test.csv"
    bad.write_text("question,choice0,choice1,choice2,choice3,answer\nq,a,b,c,d,1\nq2,a,b,c,d,D\n")
    with pytest.raises(AlignlabError, match=r"x_test\.csv:3: answer 'D' is not an option index 0-3"):
        load_mmlu([bad], "test")


# --- how a question is shown ------------------------------------------------------------------------------
Q1 = MCQuestion("t/s/0", "t", "s", "What is 2 + 2?", ("3", "4"), 1)
Q2 = MCQuestion("t/s/1", "t", "s", "Which city is the capital of France?", ("Paris", "Rome", "Oslo"), 0)


def test_the_prompt_is_the_papers_lettered_format_with_answered_shots():
    prompt = render(show(Q2, "lettered", 0), [show(Q1, "lettered", 0)], "raw")
    assert prompt == (
        "Question: What is 2 + 2?\nChoices:\n (A) 3\n (B) 4\nAnswer: (B)\n\n"
        "Question: Which city is the capital of France?\nChoices:\n (A) Paris\n (B) Rome\n (C) Oslo\nAnswer:"
    )
    chat = render(show(Q2, "lettered", 0), [], "chat")
    assert chat.messages == (("user", prompt.split("\n\n")[1].rpartition("\n")[0]),)
    assert chat.prefill == "Answer:"


def test_shuffled_and_nota_keep_the_answer_pointing_at_the_right_text():
    q = MCQuestion("t/s/2", "t", "s", "?", ("w", "x", "right", "y", "z"), 2)
    orders = set()
    for seed in range(20):
        shown = show(q, "shuffled", seed)
        assert shown.choices[shown.answer] == "right" and sorted(shown.choices) == sorted(q.choices)
        assert show(q, "shuffled", seed) == shown
        orders.add(shown.choices)
    assert len(orders) > 10
    # the paper's check: the last option replaced, so "None of the above" is right exactly where it was
    nota = show(q, "nota", 0)
    assert nota.choices == ("w", "x", "right", "y", NONE_OF_THE_ABOVE) and nota.answer == 2
    last = MCQuestion("t/s/3", "t", "s", "?", ("w", "x", "right"), 2)
    assert show(last, "nota", 0).choices[show(last, "nota", 0).answer] == NONE_OF_THE_ABOVE
    # the added variant: one more option, never right
    added = show(q, "nota-added", 0)
    assert added.choices == (*q.choices, NONE_OF_THE_ABOVE) and added.answer == 2


def test_nota_shows_the_papers_lower_case_none_of_the_above_in_place_of_the_last_option():
    prompt = render(show(Q2, "nota", 0), [], "raw")
    assert prompt == (
        "Question: Which city is the capital of France?\nChoices:\n (A) Paris\n (B) Rome\n"
        " (C) none of the above\nAnswer:"
    )


def test_the_true_false_prompt_is_the_papers_format_with_labelled_shots():
    shot = Proposal(Q1, "3", False)
    asked = Proposal(Q2, "Paris", True)
    prompt = render_true_false(asked, [shot], "raw")
    assert prompt == (
        "Question: What is 2 + 2?\nProposed Answer: 3\nIs the proposed answer:\n (A) True\n (B) False\n"
        "The proposed answer is: (B)\n\n"
        "Question: Which city is the capital of France?\nProposed Answer: Paris\nIs the proposed answer:\n"
        " (A) True\n (B) False\nThe proposed answer is:"
    )
    chat = render_true_false(asked, [shot], "chat")
    assert chat.messages == (("user", prompt.rpartition("\n")[0]),)
    assert chat.prefill == "The proposed answer is:"


# --- the True/False metrics by hand -----------------------------------------------------------------------
def _true_false_rows(pairs):
    """Samples of the true-false condition with these (P(True) of the right, of the wrong answer) pairs."""
    return [
        {"id": f"q{i}", "task": "t", "p_true": list(pair), "truth": [True, False]}
        for i, pair in enumerate(pairs)
    ]


def test_true_false_metrics_by_hand():
    # right answers' P(True) .9 .6 .4, wrong answers' .2 .7 .1:
    # predictions (P(True) > .5) right, right | right, wrong | wrong, right; confidences .9 .8 | .6 .7 | .6 .9
    rows = _true_false_rows([(0.9, 0.2), (0.6, 0.7), (0.4, 0.1)])
    m = true_false_scores(rows, CalibrationSettings(), seed=0, n_resamples=200)
    assert (m["n"], m["questions"]) == (6, 3)
    assert m["accuracy"]["value"] == pytest.approx(4 / 6)
    assert m["mean_confidence"]["value"] == pytest.approx(4.5 / 6)
    assert m["brier"]["value"] == pytest.approx((0.01 + 0.04 + 0.16 + 0.49 + 0.36 + 0.01) / 6)
    # right above wrong: .9 over all three, .6 over .2 and .1, .4 over .2 and .1: 7 of 9 pairs
    assert m["auroc"]["value"] == pytest.approx(7 / 9)
    assert m["mean_p_true"]["right"]["value"] == pytest.approx(1.9 / 3)
    assert m["mean_p_true"]["wrong"]["value"] == pytest.approx(1.0 / 3)
    # 10 equal-mass bins over 6 predictions: each alone, ECE the mean |right - confidence|
    gaps = [0.1, 0.2, 0.4, 0.7, 0.6, 0.1]
    assert m["ece"]["value"] == pytest.approx(sum(gaps) / 6)
    assert m["rms_ce"]["value"] == pytest.approx(math.sqrt(sum(g * g for g in gaps) / 6))
    # one bin tells the top prediction (accuracy 4/6 at confidence 4.5/6) from P(True) against the truth
    # (3/6 true at mean P(True) 2.9/6, which would give 0.1/6)
    one_bin = true_false_scores(rows, CalibrationSettings(bins=1), seed=0, n_resamples=200)
    assert one_bin["ece"]["value"] == pytest.approx(0.5 / 6)
    assert one_bin["rms_ce"]["value"] == pytest.approx(0.5 / 6)
    assert "brier_multiclass" not in m
    assert m["accuracy"]["n"] == 3  # the bootstrap resamples questions


def test_true_false_intervals_resample_questions_with_both_their_problems():
    # every question has one problem right and one wrong: any resample of questions has accuracy 1/2
    # (resampling the problems one by one would not)
    m = true_false_scores(_true_false_rows([(0.9, 0.8)] * 12), CalibrationSettings(), seed=0, n_resamples=200)
    assert m["accuracy"]["value"] == 0.5 and m["accuracy"]["ci"] == [0.5, 0.5]


# --- runs with known answers ----------------------------------------------------------------------------
class LetterBackend(StubBackend):
    """P(" (A)") = 0.7, the rest share 0.3: predicts A everywhere with confidence 0.7."""

    def score(self, requests):
        self.calls["score"] += len(requests)
        out = []
        for r in requests:
            rest = 0.3 / (len(r.continuations) - 1)
            out.append(
                ScoreResult(
                    [math.log(0.7)] + [math.log(rest)] * (len(r.continuations) - 1),
                    [1] * len(r.continuations),
                )
            )
        return out


def _questions(tmp_path, answers, name="mine"):
    path = tmp_path / f"{name}.jsonl"
    rows = [
        {"question": f"question {i}?", "choices": ["a", "b", "c", "d"], "answer": a}
        for i, a in enumerate(answers)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_metrics_of_a_known_backend_are_the_hand_computed_ones(tmp_path):
    data = _questions(tmp_path, [0, 0, 1, 2, 0, 3, 1, 0])
    backend = LetterBackend("letters")
    result = _run_file(tmp_path, backend, data, conditions=("lettered", "nota"), shots=2)
    m = result.metrics["conditions"]["lettered"]
    # predicted A with 0.7 everywhere; right on the 4 questions whose answer is A
    assert m["n"] == 8
    assert m["accuracy"]["value"] == pytest.approx(0.5)
    assert m["mean_confidence"]["value"] == pytest.approx(0.7)
    assert m["brier"]["value"] == pytest.approx((4 * 0.09 + 4 * 0.49) / 8)  # the top answer's, binary
    # every option: right A (0.3^2 + 3 * 0.1^2 = 0.12), right elsewhere (0.7^2 + 0.9^2 + 2 * 0.1^2 = 1.32)
    assert m["brier_multiclass"]["value"] == pytest.approx((4 * 0.12 + 4 * 1.32) / 8)
    assert m["ece"]["value"] == pytest.approx((4 * 0.3 + 4 * 0.7) / 8)  # 10 bins, 8 items: each alone
    assert m["temperature"]["fit_n"] == 4 and m["temperature"]["test_n"] == 4
    samples = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    nota = [s for s in samples if s["condition"] == "nota"]
    assert all(len(s["probs"]) == 4 and s["choices"][-1] == NONE_OF_THE_ABOVE for s in nota)
    # the question whose answer was the last option (d) now has "None of the above" as its answer
    assert [s["answer"] for s in nota if s["choices"][s["answer"]] == NONE_OF_THE_ABOVE] == [3]
    assert all(abs(sum(s["probs"]) - 1) < 1e-9 for s in samples)
    assert all(len(s["shots"]) == 2 and s["id"] not in s["shots"] for s in samples)
    assert (tmp_path / "run" / "reliability.png").stat().st_size > 1000
    assert backend.calls["score"] == 16


def test_temperature_scaling_lowers_the_held_out_ece_of_an_overconfident_model(tmp_path):
    class Overconfident(StubBackend):
        """Sharp log-probabilities (x4) around a fair guess: right 60% of the time, confidence near 1."""

        def score(self, requests):
            out = []
            for r in requests:
                n = int(re.search(r"question (\d+)\?\nChoices", r.prompt.rsplit("\n\n", 1)[-1]).group(1))
                favoured = 0 if n % 5 < 3 else 1
                scores = [4.0 * (2.0 if k == favoured else 0.0) for k in range(len(r.continuations))]
                out.append(ScoreResult(scores, [1] * len(scores)))
            return out

    data = _questions(tmp_path, [0] * 200)
    result = _run_file(tmp_path, Overconfident("sharp"), data)
    t = result.metrics["conditions"]["lettered"]["temperature"]
    assert t["T"] > 1.5 and not t["T_at_bound"]
    assert t["ece_after"]["value"] < t["ece_before"]["value"]
    assert t["nll_after"] < t["nll_before"]


class Recording(StubBackend):
    """The stub's hashed log-probabilities, keeping every scored request."""

    def __init__(self, spec: str = "recording") -> None:
        super().__init__(spec)
        self.requests = []

    def score(self, requests):
        self.requests += requests
        return super().score(requests)


def _distinct_questions(tmp_path, n=12):
    """Questions whose options name their question, so a proposed answer says where it came from."""
    path = tmp_path / "distinct.jsonl"
    rows = [
        {"question": f"question {i}?", "choices": [f"q{i} option {k}" for k in range(4)], "answer": i % 4}
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, {r["question"]: r for r in rows}


TRUE_FALSE_BLOCK = re.compile(
    r"Question: (?P<question>.*)\nProposed Answer: (?P<answer>.*)\nIs the proposed answer:\n"
    r" \(A\) True\n \(B\) False\nThe proposed answer is:(?P<label>.*)"
)


def test_true_false_asks_the_right_and_one_wrong_answer_of_each_question(tmp_path):
    data, rows = _distinct_questions(tmp_path)
    backend = Recording()
    result = _run_file(tmp_path, backend, data, conditions=("true-false",), shots=3, seed=7)
    samples = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 12 and len(backend.requests) == 24  # two problems per question
    asked = {}
    for request in backend.requests:
        assert request.continuations == (" (A)", " (B)")
        *shots, problem = [TRUE_FALSE_BLOCK.fullmatch(b) for b in request.prompt.split("\n\n")]
        assert problem and problem["label"] == "" and len(shots) == 3
        asked.setdefault(problem["question"], []).append((problem["answer"], [s.groups() for s in shots]))
        for shot in shots:  # each example's label says whether its proposed answer is its question's answer
            row = rows[shot["question"]]
            assert shot["question"] != problem["question"] and shot["answer"] in row["choices"]
            right = shot["answer"] == row["choices"][row["answer"]]
            assert shot["label"] == (" (A)" if right else " (B)")
    for s in samples:
        row = rows[s["question"]]
        right, wrong = s["proposed"]
        assert s["truth"] == [True, False] and right == row["choices"][row["answer"]]
        assert wrong in row["choices"] and wrong != right
        (first, shots_a), (second, shots_b) = asked[s["question"]]
        assert {first, second} == {right, wrong} and shots_a == shots_b  # the same examples for both
        for p_true, (a, b) in zip(s["p_true"], s["logprobs"], strict=True):
            assert p_true == pytest.approx(math.exp(a) / (math.exp(a) + math.exp(b)))
    shown = [t for s in samples for t in s["shots_true"]]
    assert 0 < sum(shown) < len(shown)  # examples both true and false
    m = result.metrics["conditions"]["true-false"]
    assert (m["n"], m["questions"]) == (24, 12) and "brier_multiclass" not in m
    assert m["temperature"]["fit_n"] == 12 and m["temperature"]["test_n"] == 12

    def proposed(seed, name):
        _run_file(tmp_path, StubBackend("s"), data, conditions=("true-false",), shots=3, seed=seed, out=name)
        lines = (tmp_path / name / "samples.jsonl").read_text().splitlines()
        return {(x := json.loads(line))["id"]: (x["proposed"], x["shots"], x["shots_true"]) for line in lines}

    again = proposed(7, "again")
    assert again == {s["id"]: (s["proposed"], s["shots"], s["shots_true"]) for s in samples}
    assert proposed(8, "other") != again


def test_a_report_and_summary_of_a_true_false_run_show_what_it_has(tmp_path):
    from alignlab.cli import summary_table
    from alignlab.experiments import get
    from alignlab.papers.self_knowledge.calibration_report import binned_points
    from alignlab.report import write_report

    data, _ = _distinct_questions(tmp_path, 8)
    result = _run_file(
        tmp_path, LetterBackend("letters"), data, conditions=("lettered", "true-false"), shots=1
    )
    samples = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    probs, truth = binned_points([s for s in samples if s["condition"] == "true-false"])
    # LetterBackend puts 0.7 on " (A)": P(True) 0.7 for every problem, half of them right
    assert probs == pytest.approx([0.7] * 16) and sum(truth) == 8
    table = summary_table(get("calibration"), [result])
    assert list(table.columns[0].cells) == ["lettered", "true-false"]
    assert list(table.columns[1].cells) == ["8", "16"]  # questions; problems
    brier_multiclass = next(c for c in table.columns if c.header == "Brier (all options)")
    assert list(brier_multiclass.cells)[1] == "n/a"
    out = tmp_path / "report.html"
    write_report(tmp_path, out)
    html = out.read_text()
    assert "true-false" in html and "P(True) of every proposed answer" in html


def _run_file(tmp_path, backend, data, conditions=("lettered",), shots=0, out="run", **settings):
    """Calibration on `backend` over the question file `data` (as --data-file), into tmp_path/run."""
    return run_stubbed(
        "calibration",
        backend,
        tmp_path / out,
        data_files=(data,),
        conditions=conditions,
        shots=shots,
        **settings,
    )


@needs_data
def test_the_datasets_run_per_task_with_the_limit_per_task(tmp_path):
    result = run_stubbed(
        "calibration", StubBackend("s"), tmp_path / "run", limit=3, conditions=("shuffled",), shots=1
    )
    m = result.metrics["conditions"]["shuffled"]
    assert m["n"] == 9 and set(m["by_task"]) == {"mmlu", "truthfulqa", "arithmetic"}
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert any(f["path"].endswith("mc_task.json") for f in config["identity"]["data"])


def test_bad_options_stop_before_the_model_loads(tmp_path, monkeypatch, capsys):
    loaded = []
    monkeypatch.setattr(alignlab.models, "load_model", lambda spec, **kw: loaded.append(spec))
    data = _questions(tmp_path, [0, 1])
    for args, message in [
        (["--tasks", "mmlu,astrology"], r"argument --tasks: unknown task\(s\) astrology"),
        (["--shots", "-1"], r"argument --shots: expected a whole number of at least 0"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            main(["eval", "calibration", *args, "--out", str(tmp_path / "run"), "--no-progress"])
        assert exit_.value.code == 2, args
        assert re.search(message, capsys.readouterr().err.replace("\n", "")), args
    code = main(
        ["eval", "calibration", "--data-file", str(data), "--shots", "5", "--out", str(tmp_path / "run")]
    )
    assert code == 2
    assert re.search(r"mine: 2 questions to draw --shots 5 examples from", capsys.readouterr().err)
    for row, message in [
        (
            {"question": "q", "choices": [], "answer": 0},
            r"bad\.jsonl:2: needs 'question' \(string\) and 'choices'",
        ),
        (
            {"question": "q", "choices": ["a", "b"], "answer": 5},
            r"bad\.jsonl:2: answer 5 is not an option index 0-1",
        ),
    ]:
        bad = tmp_path / "bad.jsonl"
        bad.write_text(
            json.dumps({"question": "ok", "choices": ["a", "b"], "answer": 0}) + "\n" + json.dumps(row) + "\n"
        )
        code = main(
            ["eval", "calibration", "--data-file", str(bad), "--out", str(tmp_path / "run"), "--no-progress"]
        )
        assert code == 2
        assert re.search(message, capsys.readouterr().err.replace("\n", ""))
    assert loaded == [] and not (tmp_path / "run").exists()


def test_the_report_has_the_calibration_section_and_reliability_figure(tmp_path):
    from alignlab.report import write_report

    _run_file(tmp_path, LetterBackend("letters"), _questions(tmp_path, [0, 1, 2, 3]))
    out = tmp_path / "report.html"
    write_report(tmp_path, out)
    html = out.read_text()
    assert "Multiple-choice calibration" in html
    assert "reliability of every option" in html


# --- once on the real bundled model --------------------------------------------------------------------
@pytest.mark.slow
@needs_data
def test_runs_on_the_bundled_model(tmp_path):
    out = tmp_path / "run"
    args = [
        "--tasks",
        "arithmetic,truthfulqa",
        "--limit",
        "4",
        "--shots",
        "1",
        "--conditions",
        "lettered,nota",
    ]
    done = run_cli(
        "eval", "calibration", "--out", str(out), "--no-progress", "--no-cache", *args, timeout=900
    )
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())["conditions"]
    assert list(metrics) == ["lettered", "nota"]
    assert set(metrics["lettered"]["by_task"]) == {"arithmetic", "truthfulqa"}
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 16
    for s in samples:
        assert abs(sum(s["probs"]) - 1) < 1e-6 and s["confidence"] == max(s["probs"])
        assert s["correct"] == (s["predicted"] == s["answer"])
