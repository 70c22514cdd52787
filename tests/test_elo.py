"""Elo scores and win rates on hand-built comparisons."""

from __future__ import annotations

import math

import pytest

from alignlab.metrics.elo import Comparison, elo_with_intervals, expected_win, fit_elo, win_rate


def _many(a: str, b: str, p: float, n: int, tag: str = "") -> list[Comparison]:
    return [Comparison(f"{tag}{i}", a, b, p) for i in range(n)]


def test_a_constant_preference_gives_the_elo_gap_of_its_odds():
    # P = 0.75 is odds 3: a gap of 400 log10(3) = 190.85 points
    elo = fit_elo(_many("after", "before", 0.75, 200), anchor="before")
    assert elo["before"] == 0.0
    assert elo["after"] == pytest.approx(400 * math.log10(3), abs=0.5)
    assert expected_win(elo["after"], elo["before"]) == pytest.approx(0.75, abs=1e-3)


def test_the_order_of_a_comparison_does_not_matter():
    one = fit_elo(_many("a", "b", 0.8, 50), anchor="b")
    other = fit_elo(_many("b", "a", 0.2, 50), anchor="b")
    assert one["a"] == pytest.approx(other["a"], abs=1e-3)


def test_three_models_consistent_with_elo_are_recovered():
    # true scores 0, 100, 250: every pair compared at its expected probability
    true = {"base": 0.0, "sl": 100.0, "rl": 250.0}
    comparisons = []
    for a, b in (("sl", "base"), ("rl", "base"), ("rl", "sl")):
        comparisons += _many(a, b, expected_win(true[a], true[b]), 100, tag=f"{a}{b}")
    elo = fit_elo(comparisons, anchor="base")
    for name, value in true.items():
        assert elo[name] == pytest.approx(value, abs=1.0)


def test_ties_and_a_model_that_always_wins():
    assert fit_elo(_many("a", "b", 0.5, 20), "b")["a"] == pytest.approx(0.0, abs=1e-6)
    winner = fit_elo(_many("a", "b", 1.0, 20), "b")["a"]
    assert math.isfinite(winner) and winner > 1000  # held finite by the weak prior, still far ahead


def test_intervals_cover_the_fit_and_shrink_with_more_items():
    noisy = [Comparison(str(i), "a", "b", 0.9 if i % 3 else 0.2) for i in range(30)]
    small = elo_with_intervals(noisy, "b", seed=0, n_resamples=300)
    big = elo_with_intervals(noisy * 8, "b", seed=0, n_resamples=300)
    low, high = small["a"]["ci"]
    assert low < small["a"]["value"] < high
    assert small["b"] == {"value": 0.0, "ci": [0.0, 0.0]}
    # the same items repeated 8 times are still 30 items: the bootstrap resamples items, not comparisons
    assert big["a"]["ci"][1] - big["a"]["ci"][0] == pytest.approx(high - low, rel=0.35)
    wider = [Comparison(f"{i}-{j}", c.a, c.b, c.p) for j in range(8) for i, c in enumerate(noisy)]
    more = elo_with_intervals(wider, "b", seed=0, n_resamples=300)
    assert more["a"]["ci"][1] - more["a"]["ci"][0] < (high - low) / 2


def test_win_rate_by_hand():
    comparisons = [
        Comparison("p1", "after", "before", 0.9),
        Comparison("p2", "before", "after", 0.3),  # after wins with 0.7
        Comparison("p3", "after", "before", 0.5),
        Comparison("p4", "after", "before", 0.2),
        Comparison("p4", "after", "other", 0.0),  # not a comparison with "before"
    ]
    rate = win_rate(comparisons, "after", "before", seed=0, n_resamples=200)
    assert rate["value"] == pytest.approx((0.9 + 0.7 + 0.5 + 0.2) / 4)
    assert (rate["n"], rate["wins"], rate["losses"], rate["ties"]) == (4, 2, 1, 1)
    assert 0.2 <= rate["ci"][0] <= rate["value"] <= rate["ci"][1] <= 0.9
    assert win_rate(comparisons, "x", "before", 0)["value"] is None
