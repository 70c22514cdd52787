"""Tests for alignlab.popcode (Ganguli & Simoncelli 2010 optimal populations).

Tolerances (also stated in docs/papers/popcode.md):
- numeric optimiser vs closed form: relative difference of d and g at most 1e-5, both as the largest
  value over the central 99% of the prior and as the budget-weighted mean over the whole grid;
- Fisher approximation: relative error strictly decreasing in N; at N = 1000 the prior-weighted mean
  is below 5e-3;
- decoder: at N = 1000 and 200 expected spikes, MSE / CRB within 5% of 1 (Monte Carlo s.e. ~1%).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import special, stats

from alignlab.errors import AlignlabError
from alignlab.popcode import cli
from alignlab.popcode.fisher import approx_fisher, approximation_error, exact_fisher
from alignlab.popcode.optimal import (
    Objective,
    allocation_error,
    closed_form,
    numeric_optimum,
    objective_value,
    parse_objective,
)
from alignlab.popcode.population import GaussianTuning, Population
from alignlab.popcode.predictions import fit_power_law, thresholds
from alignlab.popcode.prior import (
    from_function,
    from_samples,
    from_table,
    gaussian,
    load_prior_file,
    lognormal,
    resolve_prior,
)
from alignlab.popcode.simulate import (
    _grid_argmax,
    draw_counts,
    finite_spike_factor,
    ml_decode,
    mse_vs_crb,
)

OPT_TOL = 1e-5
OBJECTIVES = [
    Objective("infomax"),
    Objective("discrimination", 0.5),
    Objective("discrimination", 1.0),
    Objective("discrimination", 3.0),
]


def _priors(points: int = 400):
    samples = np.random.default_rng(0).gamma(3.0, 1.0, 400)
    return [gaussian(points=points), lognormal(points=points), from_samples(samples, points=points)]


def _population(prior, n, r, obj, **kw) -> Population:
    a = closed_form(prior, n, r, obj)
    return Population(prior.s, a.d, a.g, **kw)


# --- priors -----------------------------------------------------------------------------------


def test_priors_are_normalised_and_positive():
    for prior in _priors():
        assert np.sum(prior.weights * prior.p) == pytest.approx(1.0, abs=1e-12)
        assert np.all(prior.p > 0)
        assert np.allclose(np.diff(prior.s), prior.step)
    g = gaussian(points=2001)
    assert g.mean() == pytest.approx(0.0, abs=1e-9)
    assert g.quantile(0.5) == pytest.approx(0.0, abs=1e-3)
    assert g.quantile(0.8413447) == pytest.approx(1.0, abs=5e-3)


def test_table_prior_trims_zero_ends_and_interpolates():
    prior = from_table([0, 1, 2, 3, 4], [0, 1, 3, 1, 0], points=5)
    # Zero-valued ends are trimmed; the triangle 1,3,1 on [1,3] has trapezoid area 4.
    assert prior.s[0] == 1 and prior.s[-1] == 3
    assert np.allclose(prior.p, np.array([1, 2, 3, 2, 1]) / 4.0)


def test_samples_prior_matches_kde():
    x = np.random.default_rng(1).normal(2.0, 0.5, 300)
    prior = from_samples(x, points=500)
    kde = stats.gaussian_kde(x)
    scale = np.sum(prior.weights * kde(prior.s))
    assert np.allclose(prior.p, kde(prior.s) / scale, rtol=1e-9)
    assert prior.mean() == pytest.approx(x.mean(), abs=0.02)


def test_prior_file_table_and_samples(tmp_path: Path):
    table = tmp_path / "p.csv"
    table.write_text("# my prior\ns,p\n0,1,\n1,2\n2,1\n")  # a header, a comment, a trailing comma
    prior = load_prior_file(table, points=3)
    assert np.allclose(prior.p, np.array([1, 2, 1]) / 3.0)  # trapezoid area of 1,2,1 at unit steps is 3
    assert prior.name == "p"
    samples = tmp_path / "samples.txt"
    samples.write_text("\n".join(str(v) for v in np.random.default_rng(2).normal(size=50)))
    assert resolve_prior(str(samples), points=100).s.size == 100


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("s,p\n0,1\n1,abc\n2,1\n", "line 3"),
        ("0,1\n1,2\n0.5,1\n", "line 3"),
        ("0,1\n1,-2\n2,1\n", "line 2"),
        ("0,1\n1,2,3\n", "line 2"),
        ("0,1\n1,2\n", "at least 3 rows"),
        ("# only a comment\n", "no data rows"),
        ("1,abc\n2,3\n3,1\n", "line 1"),
    ],
)
def test_bad_prior_file_names_file_and_line(tmp_path: Path, text: str, where: str):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(AlignlabError) as info:
        load_prior_file(path)
    assert str(path) in str(info.value)
    assert where in str(info.value)


def test_unknown_prior_name():
    with pytest.raises(AlignlabError, match="no such file"):
        resolve_prior("/nonexistent/prior.csv")


# --- objectives and the closed form ----------------------------------------------------------------


def test_parse_objective():
    assert parse_objective("infomax") == Objective("infomax")
    assert parse_objective("discrimination:1.5") == Objective("discrimination", 1.5)
    for bad in ("discrimination:0", "discrimination:-1", "discrimination:x", "discrimination", "mse"):
        with pytest.raises(AlignlabError, match="--objective"):
            parse_objective(bad)


def test_exponents_hand_computed():
    # alpha = 1/2: d ~ p^(3/5), g ~ p^(-2/5), delta ~ p^(-2/5); alpha = 1: p^(1/2), p^(-1/2), p^(-1/4).
    half, one, info = Objective("discrimination", 0.5), Objective("discrimination", 1.0), Objective("infomax")
    assert (half.density_exponent, half.gain_exponent, half.threshold_exponent) == pytest.approx(
        (0.6, -0.4, -0.4)
    )
    assert (one.density_exponent, one.gain_exponent, one.threshold_exponent) == pytest.approx(
        (0.5, -0.5, -0.25)
    )
    assert (info.density_exponent, info.gain_exponent, info.fisher_exponent) == pytest.approx((1.0, 0.0, 2.0))


@pytest.mark.parametrize("obj", OBJECTIVES, ids=lambda o: o.label)
def test_closed_form_meets_constraints_and_power_laws(obj: Objective):
    prior = lognormal(points=400)
    a = closed_form(prior, 250, 12.0, obj)
    assert a.used_neurons() == pytest.approx(250, rel=1e-12)
    assert a.used_spikes() == pytest.approx(12.0, rel=1e-12)
    assert fit_power_law(prior.p, a.d).exponent == pytest.approx(obj.density_exponent, abs=1e-9)
    if obj.kind == "infomax":
        assert np.allclose(a.g, 12.0)
    else:
        assert fit_power_law(prior.p, a.g).exponent == pytest.approx(obj.gain_exponent, abs=1e-9)


def test_closed_form_uniform_prior_is_flat():
    prior = from_function(lambda s: np.ones_like(s), 0.0, 4.0, points=101)
    for obj in OBJECTIVES:
        a = closed_form(prior, 40, 8.0, obj)
        assert np.allclose(a.d, 10.0) and np.allclose(a.g, 8.0)


@pytest.mark.parametrize("obj", OBJECTIVES, ids=lambda o: o.label)
def test_numeric_optimiser_agrees_with_closed_form(obj: Objective):
    for prior in _priors():
        cf = closed_form(prior, 1000, 20.0, obj)
        num = numeric_optimum(prior, 1000, 20.0, obj)
        err = allocation_error(num.allocation, cf, mass=0.99)
        assert max(err.values()) < OPT_TOL, (prior.name, err)
        # The closed form is the maximum: the optimiser cannot beat it.
        assert cf.value() >= num.allocation.value() - 1e-12 * abs(cf.value())


def test_closed_form_beats_feasible_perturbations():
    prior = gaussian(points=300)
    rng = np.random.default_rng(3)
    for obj in OBJECTIVES:
        cf = closed_form(prior, 100, 10.0, obj)
        for _ in range(20):
            d = cf.d * np.exp(0.2 * rng.standard_normal(prior.s.size))
            g = cf.g * np.exp(0.2 * rng.standard_normal(prior.s.size))
            d *= 100 / np.sum(prior.weights * d)
            g *= 10 / np.sum(prior.weights * prior.p * g)
            assert objective_value(prior, obj, d, g) < cf.value()


# --- population and Fisher information -------------------------------------------------------------


def test_tuning_tiles_to_one_and_conv_fisher_is_inverse_width_squared():
    for w in (0.75, 1.0, 2.0):
        t = GaussianTuning(w)
        assert np.allclose(t.tiling_sum(), 1.0, atol=1e-4)
        assert t.conv_fisher() == pytest.approx(1 / w**2, rel=1e-3)


def test_population_warp_and_constraints():
    prior = gaussian(points=800)
    pop = _population(prior, 400, 30.0, Objective("discrimination", 1.0))
    assert pop.n_neurons == 400
    x = np.linspace(-3, 3, 77)
    cum, dens = pop.warp(x)
    assert np.allclose(pop.inverse_warp(cum), x, atol=1e-10)
    # D' = d exactly (D is the integral of the piecewise-linear density).
    h = 1e-6
    assert np.allclose((pop.warp(x + h)[0] - pop.warp(x - h)[0]) / (2 * h), dens, rtol=1e-5)
    # The tuning curves realise the spike budget: E_p[sum_n f_n] = R (up to the truncated ends).
    assert pop.expected_total_rate(prior.weights * prior.p) == pytest.approx(30.0, rel=1e-2)


def test_exact_fisher_matches_finite_differences():
    prior = lognormal(points=600)
    pop = _population(prior, 60, 15.0, Objective("discrimination", 0.5), time_window=2.0)
    x = prior.quantile(np.linspace(0.05, 0.95, 11))
    h = 1e-6
    df = (pop.rates(x + h) - pop.rates(x - h)) / (2 * h)
    f = pop.rates(x)
    far = f == 0  # far tails underflow; they carry no information
    by_hand = 2.0 * np.sum(np.where(far, 0.0, df**2 / np.where(far, 1.0, f)), axis=1)
    assert np.allclose(exact_fisher(pop, x), by_hand, rtol=1e-5)
    # The windowed sum equals the sum over every neuron to rounding.
    assert np.allclose(exact_fisher(pop), exact_fisher(pop, method="dense"), rtol=1e-12, atol=0)


@pytest.mark.parametrize("obj", OBJECTIVES[:3], ids=lambda o: o.label)
def test_fisher_approximation_error_shrinks_with_n(obj: Objective):
    prior = gaussian(points=1000)
    errs = [approximation_error(_population(prior, n, 20.0, obj), prior) for n in (30, 100, 300, 1000)]
    means = [e.mean_rel for e in errs]
    assert all(b < a for a, b in zip(means, means[1:], strict=False)), means
    assert errs[-1].mean_rel < 5e-3
    assert errs[-1].central_max_rel < 5e-3
    assert errs[-1].central_max_rel < errs[0].central_max_rel / 10


def test_approx_fisher_formula():
    prior = gaussian(points=500)
    pop = _population(prior, 200, 10.0, Objective("infomax"), tuning=GaussianTuning(0.8), time_window=3.0)
    x = np.array([-1.0, 0.0, 0.5])
    expected = 3.0 * (200 * stats.norm.pdf(x)) ** 2 * 10.0 / 0.8**2
    assert np.allclose(approx_fisher(pop, x), expected, rtol=1e-3)


# --- predictions ------------------------------------------------------------------------------


def test_thresholds_and_power_law_fit_hand_computed():
    assert thresholds(np.array([4.0, 100.0])) == pytest.approx([0.5, 0.1])
    assert thresholds(np.array([4.0]), dprime=2.0) == pytest.approx([1.0])
    x = np.geomspace(0.01, 1, 20)
    fit = fit_power_law(x, 3 * x**-0.7)
    assert (fit.exponent, fit.prefactor, fit.r2) == pytest.approx((-0.7, 3.0, 1.0))


@pytest.mark.parametrize("obj", OBJECTIVES[:3], ids=lambda o: o.label)
def test_threshold_power_law_exponent(obj: Objective):
    prior = lognormal(points=1000)
    pop = _population(prior, 1000, 20.0, obj)
    mask = prior.central_mask(0.98)
    fit = fit_power_law(prior.p[mask], thresholds(exact_fisher(pop))[mask])
    assert fit.exponent == pytest.approx(obj.threshold_exponent, abs=5e-3)
    assert fit.r2 > 0.999


# --- simulation and decoding ------------------------------------------------------------------


def test_grid_argmax_matches_brute_force():
    from scipy import sparse

    prior = gaussian(points=200)
    pop = _population(prior, 50, 10.0, Objective("discrimination", 1.0))
    rng = np.random.default_rng(4)
    counts = draw_counts(pop, prior.sample(30, rng), rng)
    lam = pop.time_window * pop.rates(prior.s)  # (M, N)
    brute = [int(np.argmax(stats.poisson.logpmf(c[None, :], lam).sum(axis=1))) for c in counts]
    assert list(_grid_argmax(pop, sparse.csr_matrix(counts.astype(float)), prior.s)) == brute


def test_decoder_recovers_stimulus_with_many_spikes():
    prior = gaussian(points=400)
    pop = _population(prior, 100, 10.0, Objective("infomax"), time_window=1e6)
    s = np.array([-1.234, 0.0, 0.777])
    counts = np.rint(pop.time_window * pop.rates(s)).astype(np.int64)  # noiseless counts
    assert np.allclose(ml_decode(pop, counts), s, atol=1e-6)


def test_finite_spike_factor_hand_computed():
    # lambda E[1/K | K>=1] at lambda = 1: sum_k>=1 e^-1 / (k k!) / (1 - e^-1), and sum_k>=1 x^k / (k k!)
    # = Ei(x) - euler_gamma - ln x.
    lam1 = (special.expi(1.0) - np.euler_gamma) * np.exp(-1) / (1 - np.exp(-1))
    assert finite_spike_factor(np.array([1.0]))[0] == pytest.approx(lam1, rel=1e-10)
    assert finite_spike_factor(np.array([200.0]))[0] == pytest.approx(1 + 1 / 200, abs=1e-4)


def test_decoder_mse_approaches_cramer_rao_for_large_n():
    prior = gaussian(points=1000)
    stim = prior.quantile(np.linspace(0.1, 0.9, 5))
    # Large population and many spikes: the ML decoder is efficient.
    big = mse_vs_crb(
        _population(prior, 1000, 200.0, Objective("infomax")), stim, 2000, np.random.default_rng(7)
    )
    assert big.mean_ratio == pytest.approx(1.0, abs=0.05)
    assert np.all(np.abs(big.bias) < 3 * np.sqrt(big.crb / big.trials) + 1e-12)
    # Small population, same prior: the tails are far from the bound.
    small = mse_vs_crb(
        _population(prior, 10, 20.0, Objective("infomax")), stim, 1000, np.random.default_rng(8)
    )
    assert small.mean_ratio > 1.3


@pytest.mark.heavy
def test_decoder_matches_finite_spike_prediction():
    # At 20 expected spikes the bound is not reached even for N = 1000: MSE/CRB -> 20 E[1/K] = 1.056.
    prior = gaussian(points=1000)
    stim = prior.quantile(np.linspace(0.1, 0.9, 5))
    for obj in (Objective("infomax"), Objective("discrimination", 1.0)):
        pop = _population(prior, 1000, 20.0, obj)
        rep = mse_vs_crb(pop, stim, 4000, np.random.default_rng(9))
        assert rep.mean_ratio == pytest.approx(float(np.mean(rep.finite_spike)), abs=0.04)
        assert rep.mean_ratio > 1.0


# --- command line -----------------------------------------------------------------------------


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    return parser.parse_args(["popcode", *argv])


@pytest.mark.heavy
def test_cli_writes_figures_and_results(tmp_path: Path):
    table = tmp_path / "prior.csv"
    s = np.linspace(0.1, 5, 40)
    table.write_text("s,p\n" + "\n".join(f"{a},{b}" for a, b in zip(s, stats.gamma(2).pdf(s), strict=True)))
    out = tmp_path / "out"
    args = _parse(
        ["--prior", str(table), "--neurons", "60", "--spikes", "15", "--objective", "discrimination:1"]
        + ["--out", str(out), "--grid", "300", "--trials", "40"]
    )
    assert args.func(args) == 0
    res = json.loads((out / "results.json").read_text())
    for name in ("prior", "density", "gain", "tuning_curves", "thresholds", "decoder", "fisher_error"):
        assert (out / f"{name}.png").stat().st_size > 1000
    assert res["parameters"]["neurons"] == 60 and res["parameters"]["objective"] == "discrimination:1"
    assert res["threshold_power_law"]["predicted_exponent"] == pytest.approx(-0.25)
    assert abs(res["threshold_power_law"]["fitted_exponent"] + 0.25) < 0.1
    assert res["optimiser_check"]["max_rel_density"] < OPT_TOL
    assert res["fisher_approximation"]["at_neurons"]["neurons"] == 60
    assert len(res["decoder"]["per_stimulus"]) == 9


def test_cli_user_errors(tmp_path: Path):
    args = _parse(["--objective", "discrimination:zero", "--out", str(tmp_path)])
    with pytest.raises(AlignlabError, match="--objective"):
        cli.run(args)
    bad = tmp_path / "bad.csv"
    bad.write_text("0,1\n1,2\n2,x\n")
    args = _parse(["--prior", str(bad), "--out", str(tmp_path)])
    with pytest.raises(AlignlabError, match=r"bad\.csv, line 3"):
        cli.run(args)
    with pytest.raises(SystemExit):  # a range is argparse's to check (tests/test_options.py)
        _parse(["--neurons", "0", "--out", str(tmp_path)])
