"""`alignlab index` and `alignlab report` on hand-edited run folders (a fuzzing pass): NaN or Infinity in
metrics.json, a metric of the wrong type, a run whose config.json was deleted, a metrics.json that is a
folder, a file given for the root, an --axis no run declares. Each is one line naming file (and key), and a
run that cannot be read is left out and named in the summary, as other bad values already are."""

from __future__ import annotations

import json

import pytest

from alignlab.cli import main
from alignlab.report.metric_checks import metric_problems


def _run(folder, metrics: str | dict, model: str = "m") -> None:
    """A bbq run folder; `metrics` as text is written as is (json.dumps would refuse NaN)."""
    folder.mkdir(parents=True)
    config = {"identity": {"experiment": "bbq"}, "experiment": "bbq", "model": {"spec": model}}
    (folder / "config.json").write_text(json.dumps(config))
    text = metrics if isinstance(metrics, str) else json.dumps(metrics)
    (folder / "metrics.json").write_text(text)


def _good(value=0.5) -> dict:
    return {"experiment": "bbq", "model": "m", "conditions": {"q": {"accuracy": {"value": value, "n": 4}}}}


def _index(root, capsys) -> tuple[str, list[str]]:
    assert main(["index", str(root), "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    return out, [line for line in err.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("metrics", "problem"),
    [
        (
            '{"conditions": {"q": {"accuracy": {"value": NaN, "n": 4}}}}',
            "conditions.q.accuracy.value: NaN is not a finite number",
        ),
        (
            '{"conditions": {"q": {"accuracy": {"value": 0.5, "ci": [0.1, Infinity]}}}}',
            "conditions.q.accuracy.ci[1]: Infinity is not a finite number",
        ),
        (
            '{"conditions": {"q": {"n_invalid": -Infinity}}}',
            "conditions.q.n_invalid: -Infinity is not a finite",
        ),
        (
            '{"conditions": {"q": {"accuracy": ["a", "b"]}}}',
            "conditions.q.accuracy: ['a', 'b'] is not a number",
        ),
        (
            '{"conditions": {"q": {"accuracy": {"ambig": "0.5"}}}}',
            "conditions.q.accuracy.ambig: '0.5' is not a",
        ),
        ('{"model": 42, "conditions": {}}', "model: 42 is not text"),
        ('{"experiment": ["bbq"], "conditions": {}}', "experiment: ['bbq'] is not text"),
    ],
)
def test_non_finite_numbers_and_wrong_types_are_named_by_key(metrics, problem):
    problems = metric_problems(json.loads(metrics))
    assert len(problems) == 1 and problems[0].startswith(problem), problems


def test_the_index_warns_of_nan_and_wrong_types_and_leaves_those_runs_out(tmp_path, capsys):
    _run(tmp_path / "good", _good())
    _run(tmp_path / "nan", json.dumps(_good()).replace("0.5", "NaN"))
    _run(tmp_path / "list", {**_good(), "conditions": {"q": {"accuracy": ["a", "b"]}}})
    _run(tmp_path / "model", {**_good(), "model": 42})
    out, err = _index(tmp_path, capsys)
    assert err == [
        f"warning: {tmp_path}/list/metrics.json: conditions.q.accuracy: ['a', 'b'] is not a number or an estimate",
        f"warning: {tmp_path}/model/metrics.json: model: 42 is not text",
        f"warning: {tmp_path}/nan/metrics.json: conditions.q.accuracy.value: NaN is not a finite number",
        "note: left out 3 run folder(s) that could not be read: list, model, nan",
    ]
    assert sorted({line.split(",")[0] for line in out.splitlines()[1:]}) == ["good"]


def test_a_run_whose_config_was_deleted_is_named_in_the_summary(tmp_path, capsys):
    _run(tmp_path / "good", _good())
    _run(tmp_path / "orphan", _good())
    (tmp_path / "orphan" / "config.json").unlink()
    _, err = _index(tmp_path, capsys)
    assert err == [
        f"warning: {tmp_path}/orphan: metrics.json without config.json, so not read as a run",
        "note: left out 1 run folder(s) that could not be read: orphan",
    ]


def test_a_metrics_json_that_is_a_folder_is_not_taken_for_an_unfinished_run(tmp_path, capsys):
    _run(tmp_path / "good", _good())
    _run(tmp_path / "odd", _good())
    (tmp_path / "odd" / "metrics.json").unlink()
    (tmp_path / "odd" / "metrics.json").mkdir()
    _, err = _index(tmp_path, capsys)
    assert err == [
        f"warning: {tmp_path}/odd/metrics.json: not a file",
        "note: left out 1 run folder(s) that could not be read: odd",
    ]


@pytest.mark.parametrize("command", ["index", "report"])
def test_a_file_for_the_root_is_called_a_file(tmp_path, capsys, command):
    (tmp_path / "runs.csv").write_text("run\n")
    with pytest.raises(SystemExit) as exit_:
        main([command, str(tmp_path / "runs.csv")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "runs.csv' is a file, not a folder" in err and "no such folder" not in err


def test_report_notes_an_axis_no_run_declares(tmp_path, capsys):
    _run(tmp_path / "runs" / "a", _good())
    assert main(["report", str(tmp_path / "runs"), "-o", str(tmp_path / "r.html"), "--axis", "nosuch"]) == 0
    err = capsys.readouterr().err
    assert "note: no run declares axis 'nosuch' (@nosuch=VALUE in its model spec)" in err
    assert main(["report", str(tmp_path / "runs"), "-o", str(tmp_path / "r.html")]) == 0
    assert "axis" not in capsys.readouterr().err  # parameters, the default, needs no declaring


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": "b', "not valid JSON (Unterminated string starting at column 7)"),
        ('{"a": "\x01"}', "not valid JSON (Invalid control character at column 8)"),
        ('{"a": }', "not valid JSON (Expecting value, column 7)"),
    ],
)
def test_torn_json_messages_keep_their_words(tmp_path, text, message):
    from alignlab.data.jsonl import parse_json, read_jsonl
    from alignlab.engine.samples import read_jsonl as read_samples
    from alignlab.errors import AlignlabError

    path = tmp_path / "torn.jsonl"
    path.write_text('{"ok": 1}\n' + text)  # no newline after: a torn last line
    for read in (lambda: read_jsonl(path), lambda: list(read_samples(path)), lambda: parse_json(text, path)):
        with pytest.raises(AlignlabError) as caught:
            read()
        assert str(caught.value).endswith(message), caught.value
    assert str(caught.value) == f"{path}:1: {message}"
