"""The API key reaches the server and nothing else: not stdout, stderr, logs, run folders, the report, errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from datadir import needs
from fault_server import CharModel, FaultServer
from stub_backend import run_cli

from alignlab.serve import serve

pytestmark = [needs("bbq"), pytest.mark.heavy]  # runs the CLI in child processes

KEY = "sk-alignlab-DISTINCTIVE-7f3c9e21b4"
MODEL = "char-model"


@pytest.fixture
def proxy():
    upstream = serve(CharModel(MODEL), model_name=MODEL)
    gate = FaultServer(upstream.base_url, require_key=KEY)  # 401 to any other key, echoing the key it got
    yield gate
    gate.close()
    upstream.close()


def eval_args(url: str, out: Path) -> list[str]:
    return [
        "-v",
        "eval",
        "bbq",
        "--limit",
        "3",
        "--model",
        f"openai:{MODEL}@{url}",
        "--no-cache",
        "--out",
        str(out),
    ]


def assert_key_nowhere(texts: list[str], folder: Path) -> None:
    for text in texts:
        assert KEY not in text
    files = [path for path in folder.rglob("*") if path.is_file()]
    assert files
    for path in files:
        assert KEY.encode() not in path.read_bytes(), path


def test_the_key_appears_nowhere(proxy, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    env = {"OPENAI_API_KEY": KEY, "ALIGNLAB_OPENAI_BACKOFF": "0.01"}
    runs = tmp_path / "runs"
    good = run_cli(*eval_args(proxy.base_url, runs / "good"), env=env, timeout=300)
    assert good.returncode == 0, good.stderr
    assert (runs / "good" / "metrics.json").exists() and (runs / "good" / "run.log").exists()

    proxy.require_key = "sk-another-key"  # now the key is wrong: 401, and the proxy's answer quotes it
    refused = run_cli(*eval_args(proxy.base_url, runs / "refused"), env=env, timeout=300)
    assert refused.returncode != 0
    assert "answered 401" in refused.stderr and "***" in refused.stderr  # quoted back, scrubbed

    report = run_cli("-v", "report", str(runs), "-o", str(tmp_path / "report.html"), env=env, timeout=300)
    assert report.returncode == 0, report.stderr
    outputs = [p.stdout + p.stderr for p in (good, refused, report)]
    assert_key_nowhere([*outputs, caplog.text], tmp_path)


def test_the_key_from_a_named_file(proxy, tmp_path, monkeypatch):
    key_file = tmp_path / "secret" / "key"
    key_file.parent.mkdir()
    key_file.write_text(KEY + "\n")
    env = {"OPENAI_API_KEY": "", "OPENAI_API_KEY_FILE": str(key_file)}
    done = run_cli(*eval_args(proxy.base_url, tmp_path / "runs" / "r"), env=env, timeout=300)
    assert done.returncode == 0, done.stderr  # the proxy let it in: the key was sent
    assert_key_nowhere([done.stdout + done.stderr], tmp_path / "runs")

    missing = run_cli(
        *eval_args(proxy.base_url, tmp_path / "runs" / "m")[1:],
        env={"OPENAI_API_KEY_FILE": str(tmp_path / "nope")},
    )
    assert missing.returncode == 2
    assert "cannot read the API key file" in missing.stderr and "Traceback" not in missing.stderr


def test_no_command_line_option_takes_a_key(tmp_path):
    done = run_cli("eval", "bbq", "--api-key", KEY, "--out", str(tmp_path / "r"), timeout=120)
    assert done.returncode == 2 and "unrecognized arguments" in done.stderr
