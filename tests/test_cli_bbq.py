"""`alignlab eval bbq` end to end: real bundled model, small limits; bad input; kill -9 and resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from datadir import DATA, needs
from stub_backend import run_cli

from alignlab.cli import main

ROOT = Path(__file__).resolve().parents[1]
needs_data = needs("bbq")


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr.replace("\n", " "), proc.stderr


# --- bad input: one clear line, non-zero exit, no metrics.json -------------------------------------
@needs_data
def test_unknown_model_spec(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ALIGNLAB_DATA_DIR", str(DATA))
    code = main(["eval", "bbq", "--model", "nosuch:thing", "--limit", "2", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown model spec 'nosuch:thing'" in err
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_unknown_condition(tmp_path, capsys):
    code = main(["eval", "bbq", "--conditions", "q,q+magic", "--out", str(tmp_path / "run")])
    assert code == 2
    assert "q+magic" in capsys.readouterr().err


def test_missing_data_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ALIGNLAB_DATA_DIR", raising=False)
    code = main(["eval", "bbq", "--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert "nowhere" in err
    assert not (tmp_path / "run").exists()


def test_no_data_directory_at_all(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ALIGNLAB_DATA_DIR", raising=False)
    monkeypatch.setenv("ALIGNLAB_CACHE_DIR", str(tmp_path / "cache"))
    code = main(["eval", "bbq", "--out", str(tmp_path / "run")])
    assert code == 2
    assert "ALIGNLAB_DATA_DIR" in capsys.readouterr().err


@needs_data
def test_malformed_row_names_file_and_line(tmp_path, capsys):
    good = (DATA / "bbq" / "data" / "Age.jsonl").read_text().splitlines()[:3]
    bad = tmp_path / "Mine.jsonl"
    bad.write_text("\n".join([*good, '{"example_id": 3, "category": "Age"']) + "\n")
    code = main(["eval", "bbq", "--data-file", str(bad), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{bad}:4" in err.replace("\n", "")
    assert not (tmp_path / "run").exists()


@needs_data
def test_checksum_mismatch_names_the_file(tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(DATA / "bbq", data / "bbq")
    target = data / "bbq" / "data" / "Religion.jsonl"
    target.chmod(0o644)
    with open(target, "a") as handle:
        handle.write("\n")
    code = main(["eval", "bbq", "--data-dir", str(data), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.replace("\n", "")
    assert code == 2
    assert "Religion.jsonl" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.heavy
@needs_data
def test_unreachable_server(tmp_path):
    proc = run_cli(
        "eval",
        "bbq",
        "--model",
        "openai:m@http://127.0.0.1:9/v1",
        "--limit",
        "2",
        "--out",
        str(tmp_path / "run"),
    )
    assert_one_line_error(proc, "127.0.0.1:9")
    assert not (tmp_path / "run" / "metrics.json").exists()


# --- the real thing ---------------------------------------------------------------------------------
@needs_data
@pytest.mark.slow
def test_eval_bbq_writes_a_complete_run_folder(tmp_path):
    out = tmp_path / "run"
    proc = run_cli(
        "eval", "bbq", "--limit", "12", "--conditions", "q,q+if,q+if+cot", "--cot-max-tokens", "12",
        "--out", str(out), "--cache", str(tmp_path / "responses.sqlite"), "--bootstrap", "200",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "bias ambig" in proc.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["identity"]["model_fingerprint"].startswith("gguf-sha256:b179c952")
    assert all(f["checksum"].startswith(("sha256:", "git-blob:")) for f in config["identity"]["data"])
    assert config["versions"]["torch"]
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 36
    required = {
        "id",
        "condition",
        "category",
        "context_condition",
        "question_polarity",
        "label",
        "prediction",
        "probs",
    }
    for s in samples:
        assert required <= set(s)
        assert abs(sum(s["probs"]) - 1) < 1e-6
        assert s["prediction"] == max(range(3), key=lambda i: s["probs"][i])
        assert (s["reasoning"] is not None) == (s["condition"] == "q+if+cot")
    metrics = json.loads((out / "metrics.json").read_text())
    for condition in ("q", "q+if", "q+if+cot"):
        m = metrics["conditions"][condition]
        assert m["n"] == 12
        for block in ("accuracy", "bias_score"):
            assert set(m[block]) == {"ambig", "disambig"}
        assert m["by_category"]
        acc = m["accuracy"]["ambig"]
        if acc["value"] is not None:
            assert acc["ci"][0] <= acc["value"] <= acc["ci"][1]
    assert (out / "bias_by_category.png").stat().st_size > 1000

    # The same command again: nothing to do, same metrics, the cache answers.
    again = run_cli(*proc.args[3:])
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert len((out / "samples.jsonl").read_text().splitlines()) == 36


@needs_data
@pytest.mark.slow
def test_a_different_run_in_the_same_folder_is_refused(tmp_path):
    out = tmp_path / "run"
    first = run_cli("eval", "bbq", "--limit", "2", "--conditions", "q", "--out", str(out), "--no-cache")
    assert first.returncode == 0, first.stderr
    second = run_cli("eval", "bbq", "--limit", "3", "--conditions", "q", "--out", str(out), "--no-cache")
    assert_one_line_error(second, "different run", "limit")


@needs_data
@pytest.mark.slow
def test_kill_9_then_resume_matches_an_uninterrupted_run(tmp_path):
    args = ["eval", "bbq", "--limit", "16", "--conditions", "q,q+if,q+if+cot", "--cot-max-tokens", "8",
            "--batch-size", "4", "--max-concurrency", "4", "--bootstrap", "200", "--no-progress"]  # fmt: skip
    whole = tmp_path / "whole"
    ref = run_cli(*args, "--out", str(whole), "--no-cache")
    assert ref.returncode == 0, ref.stderr

    # Kill mid-run, after some samples are on disk, then run the very same command again.
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "alignlab.cli",
        *args,
        "--out",
        str(out),
        "--cache",
        str(tmp_path / "c.sqlite"),
    ]
    env = {**os.environ, "ALIGNLAB_DATA_DIR": str(DATA)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples = out / "samples.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if samples.exists() and len(samples.read_bytes().splitlines()) >= 20:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(samples.read_bytes().splitlines())
    assert done_before < 48
    assert not (out / "metrics.json").exists()

    resumed = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    lines = [json.loads(line) for line in samples.read_text().splitlines()]
    keys = [(s["id"], s["condition"]) for s in lines]
    assert len(keys) == len(set(keys)) == 48  # every sample exactly once
    reference = {
        (s["id"], s["condition"]): s
        for s in map(json.loads, (whole / "samples.jsonl").read_text().splitlines())
    }
    for s in lines:
        r = reference[(s["id"], s["condition"])]
        assert s["prediction"] == r["prediction"]
        assert s["reasoning"] == r["reasoning"]
    got = json.loads((out / "metrics.json").read_text())
    want = json.loads((whole / "metrics.json").read_text())
    assert got == want
    config = json.loads((out / "config.json").read_text())
    assert len(config["resumed"]) == 1


@needs_data
@pytest.mark.slow
@pytest.mark.llamacpp
def test_eval_bbq_on_a_gguf_file_outside_the_bundled_list(tmp_path):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is an extra: pip install 'alignlab[llamacpp]'")
    from alignlab.models import bundled

    model = tmp_path / "elsewhere" / "my-model.gguf"
    model.parent.mkdir()
    shutil.copy(bundled.resolve("smollm2-135m"), model)
    out = tmp_path / "run"
    proc = run_cli(
        "eval", "bbq", "--model", f"gguf:{model}", "--limit", "6", "--conditions", "q,q+if+cot",
        "--cot-max-tokens", "8", "--bootstrap", "100", "--out", str(out), "--no-cache",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["backend"] == "llamacpp"
    assert config["identity"]["model_fingerprint"].endswith(bundled.BUNDLED["smollm2-135m"].sha256)
    assert len((out / "samples.jsonl").read_text().splitlines()) == 12
    assert json.loads((out / "metrics.json").read_text())["conditions"]["q"]["n"] == 6
