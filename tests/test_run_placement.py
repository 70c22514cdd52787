"""A new run's folder neither holds runs nor sits inside one: `index` and `report` stop at a run's folder, so
either would hide runs without a word. A folder that merely has some other config.json is not a run."""

from __future__ import annotations

import json

import pytest
from stub_backend import StubBackend, run_stubbed

import alignlab.models
from alignlab.cli import main
from alignlab.errors import AlignlabError
from alignlab.report.runs import find_runs


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    for name in ("a", "b"):
        run_stubbed("law-school", StubBackend("stub"), root / name, limit=2)
    return root


def test_a_run_into_a_folder_of_runs_is_refused_before_any_work(runs):
    backend = StubBackend("stub")
    with pytest.raises(AlignlabError, match=r"holds runs \(a, b\): give this run a folder of its own"):
        run_stubbed("winogender", backend, runs, limit=2)
    assert backend.calls["score"] == 0 and not (runs / "config.json").exists()
    assert sorted(run.name for run in find_runs(runs).runs) == ["a", "b"]  # still both in the index


def test_a_run_inside_another_run_is_refused(runs):
    with pytest.raises(AlignlabError, match=r"is inside the run folder .*runs/a: choose an --out outside it"):
        run_stubbed("winogender", StubBackend("stub"), runs / "a" / "nested" / "deeper", limit=2)
    assert not (runs / "a" / "nested").exists()


def test_the_same_run_resumes_and_a_foreign_config_json_is_no_run(runs, tmp_path):
    run_stubbed("law-school", StubBackend("stub"), runs / "a", limit=2)  # its own folder: a resume
    project = tmp_path / "project"
    project.mkdir()
    (project / "config.json").write_text(json.dumps({"name": "not a run"}))
    run_stubbed("law-school", StubBackend("stub"), project / "out", limit=2)
    assert (project / "out" / "metrics.json").is_file()


def test_a_pipeline_into_a_folder_of_runs_is_refused_before_any_model_loads(runs, monkeypatch, capsys):
    loaded = []
    monkeypatch.setattr(
        alignlab.models, "_load", lambda spec, bare, **_: loaded.append(spec) or StubBackend()
    )
    command = ["generate", "evals", "--behavior", "b", "--description", "d", "--n", "2", "--out", str(runs)]
    assert main(command) == 2
    assert "holds runs (a, b)" in capsys.readouterr().err and not loaded


@pytest.mark.parametrize("record", ["metrics.json", "samples.jsonl", "config.json"])
def test_an_output_file_never_overwrites_a_runs_records(runs, record, capsys):
    target = runs / "a" / record
    before = target.read_bytes()
    with pytest.raises(SystemExit) as refused:  # argparse's usage error
        main(["index", str(runs), "--format", "csv", "-o", str(target)])
    assert refused.value.code == 2
    assert f"is a record of the run in {str(runs / 'a')!r}" in capsys.readouterr().err
    assert target.read_bytes() == before
    assert (
        main(["index", str(runs), "--format", "csv", "-o", str(runs / "a" / "table.csv")]) == 0
    )  # beside: fine
