"""metrics.json is checked as the index reads it, like a data file: a value outside its metric's range, an
interval that ends below its start or outside the range, an n that is not a whole number of at least 0, a
value that is not a number: one warning line naming file and key, and the run is left out, said in a
summary line (issue 29)."""

from __future__ import annotations

import json
import math

import pytest

from alignlab.cli import main
from alignlab.report.metric_checks import RANGES, metric_problems, range_of
from alignlab.report.sections import Section


def estimate(value, ci=None, n=10):
    out = {"value": value, "n": n}
    if ci is not None:
        out["ci"] = ci
    return out


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"rho": estimate(5.0, [7, 9], -3)}, "conditions.q.rho.n: -3 is not a whole number of at least 0"),
        (
            {"rho": estimate(5.0, [7, 9])},
            "conditions.q.rho: value 5.0, interval [7, 9] outside its range [-1, 1]",
        ),
        ({"rho": estimate(0.5, [0.2, 1.4])}, "outside its range [-1, 1]"),
        ({"accuracy": {"ambig": estimate(5.0)}}, "conditions.q.accuracy.ambig: value 5.0"),
        ({"bias_score": {"ambig": estimate(-1.5)}}, "range [-1, 1]"),
        (
            {"accuracy": estimate(0.5, [0.6, 0.4])},
            "conditions.q.accuracy.ci: [0.6, 0.4] ends below its start",
        ),
        ({"accuracy": estimate(0.5, [0.4])}, "conditions.q.accuracy.ci: [0.4] is not [low, high]"),
        ({"accuracy": estimate("0.5")}, "conditions.q.accuracy.value: '0.5' is not a number"),
        ({"accuracy": estimate(0.5, n="abc")}, "conditions.q.accuracy.n: 'abc' is not a whole number"),
        ({"accuracy": estimate(0.5, n=True)}, "is not a whole number"),
        ({"by_category": {"Age": {"accuracy": estimate(1.01)}}}, "conditions.q.by_category.Age.accuracy"),
        ({"mean_abs_logit_gap": estimate(-0.1)}, "range [0, inf]"),
    ],
)
def test_each_kind_of_bad_estimate_is_named_by_its_key(body, problem):
    problems = metric_problems({"conditions": {"q": body}})
    assert len(problems) == 1 and problem in problems[0], problems


@pytest.mark.parametrize(
    "body",
    [
        {"rho": estimate(-1.0, [-1.0, -0.5])},  # the ends of the range are in it
        {"accuracy": estimate(None, [None, None], 0)},  # undefined: no items (written as null, never NaN)
        {"accuracy": estimate(None)},
        {"brier_multiclass": estimate(1.5, [1.2, 1.8])},
        {"temperature": estimate(2.5, [1.0, 4.0])},  # no range known: any number
        {"n": 600, "n_invalid": 0, "accuracy": estimate(0.3, [0.2, 0.4], 600)},
        {"value_like": {"deep": {"auroc": estimate(0.7, [0.6, 0.8])}}},
    ],
)
def test_good_estimates_pass(body):
    assert metric_problems({"conditions": {"q": body}}) == []


def test_a_section_may_declare_its_own_ranges(tmp_path):
    from alignlab import registry
    from alignlab.errors import AlignlabError
    from alignlab.report.runs import read_run

    class Odds(Section):
        experiment = "odds"
        ranges = {"odds": (0.0, math.inf), "accuracy": (0.0, 100.0)}  # a percentage, say

    _run(tmp_path / "ok", "odds", {"q": {"odds": estimate(3.0), "accuracy": estimate(55.0)}})
    _run(tmp_path / "bad", "odds", {"q": {"odds": estimate(-1.0), "accuracy": estimate(55.0)}})
    registry.register_section(Odds())
    try:
        assert read_run(tmp_path / "ok").metrics is not None  # 55 passes the section's own accuracy range
        with pytest.raises(AlignlabError) as caught:
            read_run(tmp_path / "bad")
    finally:
        registry._SECTIONS.pop("odds")
    assert str(caught.value) == (
        f"{tmp_path}/bad/metrics.json: conditions.q.odds: value -1.0, interval None outside its range [0, inf]"
    )


def _run(folder, experiment, conditions):
    folder.mkdir(parents=True)
    config = {
        "identity": {"experiment": experiment},
        "experiment": experiment,
        "model": {"spec": folder.name},
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "metrics.json").write_text(json.dumps({"experiment": experiment, "conditions": conditions}))


def test_index_leaves_out_the_runs_whose_metrics_fail_and_says_which(tmp_path, capsys):
    _run(tmp_path / "good", "winogender", {"q": {"rho": estimate(0.4, [0.1, 0.6], 60)}})
    _run(tmp_path / "rho", "winogender", {"q": {"rho": estimate(5.0, [7, 9], -3)}})
    _run(tmp_path / "acc", "bbq", {"q": {"accuracy": {"ambig": estimate(5.0, [0.1, 0.2], 30)}}})
    _run(tmp_path / "n-text", "bbq", {"q": {"accuracy": {"ambig": estimate(0.5, [0.4, 0.6], "abc")}}})
    assert main(["index", str(tmp_path), "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1] == "note: left out 3 run folder(s) that could not be read: acc, n-text, rho"
    assert lines[:-1] == [
        f"warning: {tmp_path}/acc/metrics.json: conditions.q.accuracy.ambig: value 5.0, interval [0.1, 0.2] "
        "outside its range [0, 1]",
        f"warning: {tmp_path}/n-text/metrics.json: conditions.q.accuracy.ambig.n: 'abc' is not a whole number "
        "of at least 0",
        f"warning: {tmp_path}/rho/metrics.json: conditions.q.rho.n: -3 is not a whole number of at least 0",
    ]
    assert sorted({line.split(",")[0] for line in out.splitlines()[1:]}) == ["good"]


def test_a_metric_takes_the_range_of_its_rightmost_listed_name():
    assert range_of("conditions.q.rho", RANGES) == (-1.0, 1.0)
    assert range_of("conditions.q.by_category.Age.bias_score.ambig", RANGES) == (-1.0, 1.0)
