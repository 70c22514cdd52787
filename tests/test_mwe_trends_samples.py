"""`alignlab mwe trends` on hand-edited run folders (a fuzzing pass): a sample without a dataset, with a list
for one, "matches": "no", a line that is not an object: one error line naming file, line and key, no
traceback; a finished run without samples is named; a dataset whose shares are all 0 prints no NaN."""

from __future__ import annotations

import json

import pytest
from test_mwe import _fake_run

from alignlab.cli import main


@pytest.fixture
def ladder(tmp_path):
    """Two model sizes that asked the same two datasets; "flat" matches nothing at either size."""
    for model, size, k in (("small", 10**6, 20), ("big", 10**8, 60)):
        _fake_run(tmp_path / f"mwe-{model}", model, size, {"up": k, "flat": 0})
    return tmp_path


def _append(folder, line: str) -> int:
    """Add a line to the run's samples.jsonl; its line number."""
    path = folder / "samples.jsonl"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    return len(path.read_text(encoding="utf-8").splitlines())


@pytest.mark.parametrize(
    ("sample", "problem"),
    [
        ({"id": "x", "condition": "as-written", "matches": True}, "a sample without 'dataset'"),
        ({"id": "x", "condition": "as-written", "dataset": ["up"], "matches": True}, "'dataset' is ['up']"),
        ({"id": "x", "condition": "as-written", "dataset": "up", "matches": "no"}, "'matches' is 'no'"),
        ({"id": "x", "condition": "as-written", "dataset": "up"}, "a sample without 'matches'"),
        (
            {"id": "x", "condition": "as-written", "dataset": "up", "suite": 3, "matches": True},
            "'suite' is 3",
        ),
    ],
)
def test_a_hand_edited_sample_is_one_line_naming_file_line_and_key(ladder, capsys, sample, problem):
    line = _append(ladder / "mwe-big", json.dumps(sample))
    assert main(["mwe", "trends", str(ladder), "--all"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {ladder}/mwe-big/samples.jsonl:{line}: {problem}"), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_line_that_is_a_json_list_is_named(ladder, capsys):
    line = _append(ladder / "mwe-big", '["up", true]')
    assert main(["mwe", "trends", str(ladder)]) == 2
    err = capsys.readouterr().err
    assert f"mwe-big/samples.jsonl:{line}: expected a JSON object, got list" in err


def test_matches_counts_only_true(tmp_path):
    from alignlab.papers.model_written_evals.mwe_report import checked_sample

    assert checked_sample("f:1", {"dataset": "d", "matches": False}) == ("d", "", False)
    assert checked_sample("f:2", {"dataset": "d", "suite": "persona", "matches": True}) == (
        "d",
        "persona",
        True,
    )


@pytest.mark.parametrize("emptied", ["missing", "empty"])
def test_a_finished_run_without_samples_is_named(ladder, capsys, emptied):
    samples = ladder / "mwe-big" / "samples.jsonl"
    if emptied == "missing":
        samples.unlink()
    else:
        samples.write_text("")
    assert main(["mwe", "trends", str(ladder)]) == 2
    err = capsys.readouterr().err
    assert "without samples (samples.jsonl missing or empty): mwe-big" in err, err
    assert "no finished mwe runs" not in err


def test_a_run_without_samples_beside_two_sizes_is_left_out_and_said(ladder, capsys, tmp_path):
    from alignlab.report import write_report

    _fake_run(ladder / "mwe-huge", "huge", 10**9, {"up": 90})
    (ladder / "mwe-huge" / "samples.jsonl").unlink()
    assert main(["mwe", "trends", str(ladder)]) == 0
    assert "left out, no samples: mwe-huge" in capsys.readouterr().out
    write_report(ladder, tmp_path / "report.html")
    assert "Left out, no samples: mwe-huge." in (tmp_path / "report.html").read_text()


def test_shares_that_are_all_zero_print_no_nan(ladder, capsys, monkeypatch):
    from alignlab.papers.model_written_evals.mwe_report import scaling_rows, scaling_table_rows
    from alignlab.report.runs import find_runs

    _, body = scaling_table_rows(*scaling_rows(find_runs(ladder).runs))
    assert {row[0]: row[4] for row in body}["flat"] == "+0.000 (CI n/a)"  # no variance: no interval
    monkeypatch.setenv("COLUMNS", "200")  # one table row per line
    assert main(["mwe", "trends", str(ladder), "--all"]) == 0
    out = capsys.readouterr().out
    assert "nan" not in out.lower() and "+0.000 (CI n/a)" in out
