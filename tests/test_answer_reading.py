"""Reading answers' probabilities without prompt logprobs (top logprobs, sampled answers), by hand, and the
sampling error carried into intervals."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from alignlab.engine.runner import summarize
from alignlab.engine.sampling_error import redrawer, replay, scoring_summary, widen
from alignlab.errors import UnsupportedRequest
from alignlab.models.answer_reading import (
    ZERO_LOGPROB,
    longest_match,
    read_samples,
    read_top,
    sample_tokens,
    upper_bound,
)
from alignlab.models.base import Chat, ScoreRequest, ScoreResult

L = math.log


def tops(table: dict[str, dict[str, float]]):
    """A next-token function from {prefill: {token: probability}}, recording what it was asked."""
    asked: list[str] = []

    async def next_top(chat: Chat) -> dict[str, float]:
        asked.append(chat.prefill)
        return {token: L(p) for token, p in table[chat.prefill].items()}

    return next_top, asked


def read(chat, continuations, table, can_continue=True):
    next_top, asked = tops(table)
    result = asyncio.run(read_top(chat, continuations, next_top, can_continue=can_continue, spec="m"))
    return result, asked


def test_one_token_answers_read_from_one_distribution():
    chat = Chat((("user", "Is it?"),), "Answer:")
    result, asked = read(chat, (" Yes", " No"), {"Answer:": {" Yes": 0.6, " No": 0.3, " Maybe": 0.05}})
    assert result.logprobs == pytest.approx([L(0.6), L(0.3)])
    assert result.reading["covered"] == pytest.approx(0.95)
    assert result.reading["outside"] == [False, False]
    assert asked == ["Answer:"] and result.reading["requests"] == 1


def test_an_answer_outside_the_top_k_is_bounded_and_flagged_never_zero():
    chat = Chat((("user", "q"),), "A:")
    # listed mass 0.9: what is left (0.1) is above the least listed (0.05), so the bound is 0.05
    result, _ = read(chat, (" x", " y"), {"A:": {" x": 0.85, " z": 0.05}})
    assert result.logprobs[1] == pytest.approx(L(0.05))
    assert result.reading["outside"] == [False, True]
    # listed mass 0.99: the 0.01 left is the tighter bound
    result, _ = read(chat, (" x", " y"), {"A:": {" x": 0.5, " z": 0.49}})
    assert result.logprobs[1] == pytest.approx(L(0.01))
    assert upper_bound({"a": 0.0}) == ZERO_LOGPROB  # the list holds all the mass


def test_answers_of_several_tokens_are_read_a_token_at_a_time_sharing_prefixes():
    chat = Chat((("user", "Which?"),), "The answer is")
    table = {
        "The answer is": {" (": 0.8, " a": 0.1},
        "The answer is (": {"a": 0.5, "b": 0.3, "c": 0.1},
        "The answer is (a": {")": 0.9},
        "The answer is (b": {")": 0.95},
        "The answer is (c": {")": 0.7, "),": 0.2},
    }
    result, asked = read(chat, (" (a)", " (b)", " (c)"), table)
    assert result.logprobs == pytest.approx([L(0.8 * 0.5 * 0.9), L(0.8 * 0.3 * 0.95), L(0.8 * 0.1 * 0.7)])
    assert result.num_tokens == [3, 3, 3]
    assert len(asked) == len(set(asked)) == 5  # " (" once for all three answers
    assert result.reading["covered"] == pytest.approx(0.9)  # the least mass of the five lists


def test_the_prefills_trailing_space_moves_into_the_answer():
    chat = Chat((("user", "q"),), "Answer: ")
    result, asked = read(chat, ("Yes",), {"Answer:": {" Yes": 0.7}})
    assert asked == ["Answer:"] and result.logprobs == pytest.approx([L(0.7)])


def test_without_prefill_continuation_a_prefill_or_a_longer_answer_is_refused():
    with pytest.raises(UnsupportedRequest, match="prefilled"):
        read(Chat((("user", "q"),), "A:"), (" x",), {"A:": {" x": 1.0}}, can_continue=False)
    with pytest.raises(UnsupportedRequest, match="more than one token"):
        read(Chat((("user", "q"),), ""), ("(a)",), {"": {"(": 0.9}}, can_continue=False)
    result, _ = read(Chat((("user", "q"),), ""), ("A", "B"), {"": {"A": 0.6, "B": 0.4}}, can_continue=False)
    assert result.logprobs == pytest.approx([L(0.6), L(0.4)])


def test_sampled_answers_are_counted_by_their_longest_match():
    texts = [" an apple", " a pear", " an", " b", " a", "x"]

    async def sample(chat, n, tokens):
        assert (chat.prefill, n, tokens) == ("It is", 6, 3)
        return texts, 2

    result = asyncio.run(read_samples(Chat((("user", "q"),), "It is "), ("a", "an", "c"), sample, n=6))
    # " an apple" and " an" are "an", " a pear" and " a" are "a"; " b" and "x" match none
    assert result.reading["counts"] == [2, 2, 0]
    assert result.reading["unmatched"] == 2 and result.reading["requests"] == 2
    assert result.logprobs == pytest.approx([L(2 / 6), L(2 / 6), ZERO_LOGPROB])
    assert longest_match(" an", [" a", " an"]) == 1 and longest_match("", [" a"]) is None
    assert sample_tokens([" Yes", " No"]) == 4 and sample_tokens(["x" * 100]) == 16


def test_a_samples_scoring_note_pools_its_scores_readings():
    note = summarize(
        [
            {"path": "top-logprobs", "covered": 0.9, "outside": [False, True], "requests": 1},
            {"path": "top-logprobs", "covered": 0.7, "outside": [False, False], "requests": 3},
        ]
    )
    assert note == {"path": "top-logprobs", "requests": 4, "covered": 0.7, "answers": 4, "outside": 1}
    samples = [{"scoring": note}, {"scoring": {**note, "outside": 0, "covered": 0.95}}, {"id": "x"}]
    summary = scoring_summary(samples, {"path": "top-logprobs", "top_k": 20})
    assert summary["top_k"] == 20 and summary["samples_scored"] == 2 and summary["requests"] == 8
    coverage = summary["coverage"]
    assert coverage["answers_outside_top_k"] == 1 and coverage["samples_fully_covered"] == 1
    assert coverage["top_k_mass_min"] == 0.7 and coverage["top_k_mass_mean"] == pytest.approx(0.825)
    assert scoring_summary([{"id": "x"}], None) is None


def test_intervals_widen_by_the_replays_spread_in_quadrature():
    metrics = {
        "a": {"x": {"value": 0.5, "ci": [0.4, 0.7], "n": 9}, "y": 3, "z": {"value": 1, "ci": [None, None]}}
    }
    replays = [{"a": {"x": {"value": v}, "z": {"value": w}}} for v, w in ((0.4, 1), (0.6, 3))]
    assert widen(metrics, replays) == 1
    sd = float(np.std([0.4, 0.6], ddof=1))
    x = metrics["a"]["x"]
    assert x["sampling_sd"] == pytest.approx(sd) and x["ci_items"] == [0.4, 0.7]
    extra = (1.959963984540054 * sd) ** 2
    assert x["ci"] == pytest.approx([0.5 - math.sqrt(0.01 + extra), 0.5 + math.sqrt(0.04 + extra)])
    assert metrics["a"]["z"]["ci"] == [None, None] and metrics["a"]["z"]["sampling_sd"] == pytest.approx(
        1.414, abs=1e-3
    )
    assert metrics["a"]["y"] == 3


def test_a_task_replays_with_its_sampled_counts_redrawn():
    def task():
        first = yield ScoreRequest("q", (" a", " b"))
        more = yield []
        both = yield [ScoreRequest("q", (" a",)), ScoreRequest("r", (" b",))]
        return {"id": "1", "condition": "c", "first": first.logprobs, "more": more, "n": len(both)}

    counts = {"kind": "score", "logprobs": [L(0.75), L(0.25)], "num_tokens": [1, 1]}
    recorded = [
        {
            "list": False,
            "results": [{**counts, "reading": {"path": "sampling", "counts": [15, 5], "unmatched": 0}}],
        },
        {"list": True, "results": [{"kind": "score", "logprobs": [0.0], "num_tokens": [1]}] * 2},
    ]
    kept = replay(task(), recorded, lambda r: ScoreResult(r["logprobs"], r["num_tokens"]))
    assert kept == {"id": "1", "condition": "c", "first": [L(0.75), L(0.25)], "more": [], "n": 2}
    drawn = [replay(task(), recorded, redrawer(np.random.default_rng(s)))["first"] for s in range(400)]
    shares = np.exp(np.array(drawn))
    # Dirichlet(15.5, 5.5, 0.5), the last for the samples matching no answer (none of 20 here): mean share
    # of " a" 15.5/21.5, spread near the binomial's sqrt(.75*.25/20)
    assert (shares.sum(axis=1) < 1).all() and 1 - shares.sum(axis=1).mean() == pytest.approx(
        0.5 / 21.5, abs=0.01
    )
    assert shares[:, 0].mean() == pytest.approx(15.5 / 21.5, abs=0.02)
    assert shares[:, 0].std() == pytest.approx(math.sqrt(0.75 * 0.25 / 20), rel=0.25)
