"""Red teaming and dataset generation connect to the configured model server and nowhere else (no hub, no
telemetry): every socket connect of the process is recorded by an audit hook while they run."""

from __future__ import annotations

import sys

import pytest
from datadir import DATA, needs
from fault_server import CharModel

from alignlab.cli import main
from alignlab.serve import serve

pytestmark = pytest.mark.heavy  # runs whole pipelines under a network audit

MODEL = "char-model"

# An audit hook cannot be removed: it is installed once and records only while RECORDING is on.
RECORDING = False
CONNECTS: list[object] = []


def _audit(event: str, args: tuple) -> None:
    if RECORDING and event == "socket.connect":
        CONNECTS.append(args[1])


sys.addaudithook(_audit)


@pytest.fixture
def recorded(monkeypatch):
    """Turns recording on for the test; yields the list of connect targets."""
    global RECORDING
    monkeypatch.setenv("ALIGNLAB_DATA_DIR", str(DATA))
    CONNECTS.clear()
    RECORDING = True
    yield CONNECTS
    RECORDING = False


@pytest.fixture(scope="module")
def server():
    running = serve(CharModel(MODEL), model_name=MODEL)
    yield running
    running.close()


def host_port(server) -> tuple[str, int]:
    return tuple(server.sock.getsockname()[:2])


@needs("harmbench")
def test_redteam_connects_only_to_the_model_server(server, recorded, tmp_path):
    spec = f"openai:{MODEL}@{server.base_url}"
    args = ["redteam", "--target", spec, "--kinds", "plain,prompted", "--n", "2", "--turns", "1"]
    code = main([*args, "--no-cache", "--no-progress", "--bootstrap", "10", "--out", str(tmp_path / "rt")])
    assert code == 0
    assert recorded  # the audit saw the run's requests
    assert {tuple(target) for target in recorded} == {host_port(server)}


def test_generate_evals_connects_only_to_the_model_server(server, recorded, tmp_path):
    spec = f"openai:{MODEL}@{server.base_url}"
    args = ["generate", "evals", "--behavior", "kind", "--description", "is kind", "--generator", spec]
    code = main([*args, "--n", "2", "--no-cache", "--no-progress", "--out", str(tmp_path / "gen")])
    assert recorded
    assert {tuple(target) for target in recorded} == {host_port(server)}
    assert code == 0  # the whole pipeline ran: generation, both deduplications (embeddings too), the judge
