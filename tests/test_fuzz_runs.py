"""Fuzzing what reads run folders (issue 17): config.json (RunFolder.open, the index), metrics.json (the
index, the report) and samples.jsonl (SampleLog). A broken file is one line naming it (a warning for the
index, which goes on with the good runs), never a traceback; a data file broken in a real `alignlab eval`
is exit 2 with one line naming file:line and no metrics.json."""

from __future__ import annotations

import json
import re
from pathlib import Path

from datadir import DATA, needs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stub_backend import StubBackend, scripted_models

from alignlab.cli import main
from alignlab.engine.samples import SampleLog
from alignlab.errors import AlignlabError
from alignlab.report import build_index, find_runs
from alignlab.runfolder import RunFolder

FUZZ = settings(
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
IDENTITY = {"experiment": "bbq", "model": "stub", "model_fingerprint": "stub:stub"}
CONFIG = {
    "config_hash": "0123456789abcdef",
    "identity": IDENTITY,
    "experiment": "bbq",
    "model": {"spec": "stub", "parameters": 1000},
    "started": "2025-01-01T00:00:00+00:00",
}
METRICS = {"conditions": {"q": {"accuracy": {"value": 0.5, "ci": [0.4, 0.6], "n": 10}, "rate": 0.25}}}
ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


def write_run(folder: Path, config=CONFIG, metrics=METRICS) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")


@st.composite
def broken_json(draw, good: dict) -> bytes:
    """`good` as JSON, broken one way: a value replaced or removed (at any depth), cut short, not UTF-8, a
    BOM, CRLF line ends, another JSON type at the top, empty."""
    how = draw(st.sampled_from(["value", "drop", "cut", "utf8", "bom", "crlf", "top", "empty", "huge"]))
    text = json.dumps(good, indent=1)
    if how in ("value", "drop", "huge"):
        data = json.loads(text)
        node = data
        while True:
            key = draw(st.sampled_from(sorted(node)))
            if isinstance(node[key], dict) and node[key] and draw(st.booleans()):
                node = node[key]
                continue
            break
        if how == "drop":
            del node[key]
        else:
            node[key] = "z" * (1 << 20) if how == "huge" else draw(ODD)
        return json.dumps(data).encode()
    if how == "cut":
        return text.encode()[: draw(st.integers(0, len(text) - 1))]
    if how == "utf8":
        at = draw(st.integers(0, len(text)))
        return text.encode()[:at] + b"\xff" + text.encode()[at:]
    if how == "bom":
        return b"\xef\xbb\xbf" + text.encode()
    if how == "crlf":
        return text.replace("\n", "\r\n").encode()
    if how == "top":
        return json.dumps(draw(st.one_of(ODD, st.lists(st.just(good), max_size=2)))).encode()
    return b""


def one_line_naming(message: str, path: Path) -> None:
    assert "\n" not in message and "\r" not in message, message[:300]
    assert str(path) in message, message[:300]


@FUZZ
@given(which=st.sampled_from(["config.json", "metrics.json"]), data=st.data())
def test_the_index_skips_a_broken_run_with_one_line_and_keeps_the_good(which, data, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    write_run(root / "good")
    write_run(root / "bad")
    bad = root / "bad" / which
    bad.write_bytes(data.draw(broken_json(CONFIG if which == "config.json" else METRICS), label="bytes"))
    runset = find_runs(root)
    for problem in runset.problems:
        one_line_naming(problem, bad)
    assert [r.name for r in runset.runs] in (["bad", "good"], ["good"])
    index = build_index(runset.runs)
    good = index[index["run"] == "good"]
    assert sorted(good["metric"]) == ["accuracy", "rate"]
    for run in runset.runs:  # every property the index and report read is usable
        assert isinstance(run.experiment, str) and isinstance(run.model, str) and isinstance(run.date, str)


@FUZZ
@given(data=st.data())
def test_resuming_over_a_broken_config_is_one_line_naming_it(data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    config = {**CONFIG, "resumed": ["2025-01-02"]}
    (folder / "config.json").write_bytes(data.draw(broken_json(config), label="bytes"))
    try:
        log, resumed = RunFolder(folder).open(IDENTITY, {})
    except AlignlabError as exc:
        message = str(exc)
        assert "\n" not in message, message[:300]
        assert str(folder / "config.json") in message or "holds a different run" in message, message[:300]
    else:  # a config that is still the same run's: resumed (hash matched) or not
        log.close()


@st.composite
def broken_samples(draw) -> tuple[bytes, int | None]:
    """samples.jsonl with one line broken; (bytes, the broken line's number or None when it stays valid)."""
    rows = [json.dumps({"id": f"i{k}", "condition": "q", "p": 0.5}) for k in range(4)]
    k = draw(st.integers(0, 3))
    how = draw(st.sampled_from(["cut", "utf8", "value", "drop", "top", "bom", "crlf", "blank"]))
    lines = list(rows)
    if how == "cut":
        lines[k] = lines[k][: draw(st.integers(1, len(lines[k]) - 1))]
    elif how == "utf8":
        lines[k] = lines[k][:5] + "\udcff" + lines[k][5:]
    elif how in ("value", "drop"):
        row = json.loads(lines[k])
        key = draw(st.sampled_from(sorted(row)))
        if how == "drop":
            del row[key]
        else:
            row[key] = draw(ODD)
        lines[k] = json.dumps(row)
    elif how == "top":
        lines[k] = json.dumps(draw(ODD))
    end = "\r\n" if how == "crlf" else "\n"
    blob = "".join(line + end + ("\n" if how == "blank" else "") for line in lines)
    blob = blob.encode("utf-8", "surrogateescape")
    if how == "bom":
        blob = b"\xef\xbb\xbf" + blob
    step = 2 if how == "blank" else 1
    return blob, (k * step + 1 if how in ("cut", "utf8", "value", "drop", "top") else None)


@FUZZ
@given(sample=broken_samples())
def test_a_broken_samples_line_is_one_line_naming_file_and_line(sample, tmp_path_factory):
    blob, line = sample
    path = tmp_path_factory.mktemp("run") / "samples.jsonl"
    path.write_bytes(blob)
    try:
        done = SampleLog(path).done()
    except AlignlabError as exc:
        one_line_naming(str(exc), path)
        assert line is not None and re.search(rf"{re.escape(str(path))}:{line}\b", str(exc)), str(exc)
    else:
        assert len(done) == 4 or line is not None


def test_alignlab_index_over_broken_runs_exits_0_with_the_good(tmp_path, capsys):
    write_run(tmp_path / "a-good")
    write_run(tmp_path / "b-cut")
    (tmp_path / "b-cut" / "config.json").write_text('{"identity": {', encoding="utf-8")
    write_run(tmp_path / "c-list", metrics=[1, 2])
    write_run(tmp_path / "d-bytes")
    (tmp_path / "d-bytes" / "metrics.json").write_bytes(b'{"x": "\xff"}')
    write_run(tmp_path / "e-identity", config={**CONFIG, "identity": [1]})
    write_run(tmp_path / "f-params", config={**CONFIG, "model": {"spec": "s", "parameters": 1e308 * 10}})
    write_run(tmp_path / "g-huge", metrics={"conditions": {"q": {"n": {"value": 10**400, "n": 10**30}}}})
    assert main(["index", str(tmp_path), "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    assert "a-good" in out and "f-params" in out and "g-huge" in out
    *warnings, summary = [line for line in err.splitlines() if line.strip()]
    assert len(warnings) == 4, err
    assert (
        summary == "note: left out 4 run folder(s) that could not be read: b-cut, c-list, d-bytes, e-identity"
    )
    for line, name in zip(  # noqa: B905
        warnings, ["b-cut/config.json:1", "c-list/metrics.json", "d-bytes/metrics.json:1", "e-identity"]
    ):
        assert line.startswith("warning: ") and name in line, line
    write_run(tmp_path / "h-markup", config={**CONFIG, "experiment": "[/bold]", "model": "[red]"})
    assert main(["index", str(tmp_path)]) == 0  # the printed table: names are text, not rich markup
    assert "4 runs" in capsys.readouterr().out  # before the escape: rich.errors.MarkupError
    assert main(["report", str(tmp_path), "-o", str(tmp_path / "report.html")]) == 0
    assert (tmp_path / "report.html").is_file()


@needs("bbq")
def test_eval_bbq_on_a_broken_data_file_is_exit_2_naming_file_and_line(tmp_path, capsys, monkeypatch):
    scripted_models(monkeypatch)["stub"] = StubBackend()
    rows = (DATA / "bbq" / "data" / "Age.jsonl").read_text(encoding="utf-8").split("\n")[:3]
    data = tmp_path / "Age.jsonl"
    data.write_text("\n".join([rows[0], rows[1][:40], rows[2]]) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    code = main(["eval", "bbq", "--data-file", str(data), "--model", "stub", "--out", str(out), "--no-cache"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2
    assert len(err) == 1 and err[0].startswith(f"error: {data}:2: not valid JSON"), err
    assert not (out / "metrics.json").exists()
