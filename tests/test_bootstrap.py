"""Percentile bootstrap: coverage of the point estimate, determinism, width, undefined statistics."""

import json
import math

import numpy as np
import pytest

from alignlab.metrics import Estimate, bootstrap_ci, bootstrap_estimate


def _mean(x):
    return x.mean(axis=-1)


def test_ci_contains_point_estimate_of_a_mean():
    x = np.random.default_rng(3).normal(loc=2.0, scale=1.0, size=200)
    lo, hi = bootstrap_ci(_mean, (x,), n_resamples=500, seed=1)
    assert lo < x.mean() < hi
    # Roughly +-1.96 * sd / sqrt(n) = +-0.14 around the mean.
    assert 0.15 < hi - lo < 0.45


def test_same_seed_same_interval_other_seed_differs():
    x = np.random.default_rng(0).random(100)
    a = bootstrap_ci(_mean, (x,), n_resamples=300, seed=7)
    b = bootstrap_ci(_mean, (x,), n_resamples=300, seed=7)
    c = bootstrap_ci(_mean, (x,), n_resamples=300, seed=8)
    assert a == b
    assert a != c


def test_interval_narrows_with_more_data():
    rng = np.random.default_rng(5)
    small = rng.integers(0, 2, size=50)
    large = rng.integers(0, 2, size=5000)
    lo_s, hi_s = bootstrap_ci(_mean, (small,), n_resamples=400)
    lo_l, hi_l = bootstrap_ci(_mean, (large,), n_resamples=400)
    assert (hi_l - lo_l) < (hi_s - lo_s) / 4  # sqrt(100) = 10x narrower in theory


def test_dict_inputs_resample_rows_jointly():
    # y == 2 * x on every row; a joint resample keeps the ratio exactly 2, an independent one would not.
    x = np.arange(1.0, 41.0)
    lo, hi = bootstrap_ci(lambda x, y: y.sum(axis=-1) / x.sum(axis=-1), {"x": x, "y": 2 * x}, n_resamples=200)
    assert lo == pytest.approx(2.0) and hi == pytest.approx(2.0)


def test_non_vectorised_matches_vectorised():
    x = np.random.default_rng(2).random(60)
    vec = bootstrap_ci(_mean, (x,), n_resamples=200, seed=4)
    loop = bootstrap_ci(lambda v: float(np.mean(v)), (x,), n_resamples=200, seed=4, vectorized=False)
    assert vec == pytest.approx(loop)


def test_undefined_statistic_gives_nan_interval():
    # Ratio with an all-zero denominator: NaN on every resample.
    num = np.ones(10)
    den = np.zeros(10)
    lo, hi = bootstrap_ci(lambda a, b: a.sum(-1) / b.sum(-1), (num, den), n_resamples=100)
    assert math.isnan(lo) and math.isnan(hi)


def test_nan_when_fewer_than_half_finite_else_from_finite_ones():
    # Denominator is 1 on a single row out of 4: a resample of 4 rows misses it with prob (3/4)^4 = 0.32,
    # so about 68% of resamples are finite -> a finite interval.
    den = np.array([1.0, 0.0, 0.0, 0.0])
    lo, hi = bootstrap_ci(lambda d: d.sum(-1) / d.sum(-1), (den,), n_resamples=400)
    assert lo == 1.0 and hi == 1.0
    # A statistic that is NaN on 70% of the resamples (fewer than half finite): no interval.
    flags = np.arange(1000)
    lo2, hi2 = bootstrap_ci(
        lambda f: np.where(np.arange(f.shape[0]) % 10 < 7, np.nan, 1.0), (flags,), n_resamples=100
    )
    assert math.isnan(lo2) and math.isnan(hi2)


def test_empty_input_gives_nan():
    lo, hi = bootstrap_ci(_mean, (np.array([]),))
    assert math.isnan(lo) and math.isnan(hi)
    est = bootstrap_estimate(_mean, (np.array([]),))
    assert est.n == 0 and math.isnan(est.value)


def test_strata_keep_group_sizes():
    # Two strata: values 0 (30 items) and 1 (10 items). Resampling within strata keeps the mean at 0.25.
    x = np.array([0.0] * 30 + [1.0] * 10)
    strata = np.array(["a"] * 30 + ["b"] * 10)
    lo, hi = bootstrap_ci(_mean, (x,), n_resamples=200, strata=strata)
    assert lo == pytest.approx(0.25) and hi == pytest.approx(0.25)
    lo_u, hi_u = bootstrap_ci(_mean, (x,), n_resamples=200)
    assert hi_u - lo_u > 0.1


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in length"):
        bootstrap_ci(lambda a, b: a.mean(-1), (np.zeros(3), np.zeros(4)))


def test_estimate_json_turns_nan_into_null():
    est = Estimate(value=float("nan"), ci_low=float("nan"), ci_high=0.5, n=3)
    obj = est.to_json()
    assert obj == {"value": None, "ci": [None, 0.5], "n": 3}
    assert json.loads(json.dumps(obj, allow_nan=False)) == obj
    back = Estimate.from_json(obj)
    assert math.isnan(back.value) and back.ci_high == 0.5 and back.n == 3


def test_bootstrap_estimate_value_is_the_full_data_statistic():
    x = np.array([1.0, 2.0, 3.0, 6.0])
    est = bootstrap_estimate(_mean, (x,), n_resamples=200)
    assert est.value == 3.0 and est.n == 4
    assert est.ci_low <= 3.0 <= est.ci_high
