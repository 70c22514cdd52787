"""`alignlab serve` against what a fuzzing pass found: an unbounded max_tokens, a stop that waited minutes
for a running generation, and a `serve --model openai:...` whose printed hint did not parse."""

from __future__ import annotations

import logging
import re
import signal
import subprocess
import sys
import threading
import time
import types
from concurrent.futures import Future
from pathlib import Path

import httpx
import pytest
from test_openai_backend import CharBackend

from alignlab.cli import main
from alignlab.models import load_model, parse_spec
from alignlab.models.base import GenerateRequest
from alignlab.serve import RunningServer, batcher
from alignlab.serve import cli as serve_command
from alignlab.serve.batcher import Batcher, Generation


@pytest.fixture
def served(serving):
    """backend -> server (conftest's `serving`)."""
    return serving


class WindowedBackend(CharBackend):
    """CharBackend that says its context window the way a local backend does (`attribute`)."""

    def __init__(self, attribute: str, window: int) -> None:
        super().__init__()
        setattr(self, attribute, window)


class StuckBackend(CharBackend):
    """CharBackend whose generate blocks until `release` is set: a generation that runs for minutes."""

    def __init__(self) -> None:
        super().__init__()
        self.started, self.release = threading.Event(), threading.Event()

    def generate(self, requests):
        self.started.set()
        self.release.wait(60)
        return super().generate(requests)


def post(server, path: str, body: dict, timeout: float = 10) -> httpx.Response:
    return httpx.post(server.base_url + path, json={"model": "char-model", **body}, timeout=timeout)


# ---- max_tokens ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("attribute", ["max_context", "_n_ctx"])  # transformers, llama.cpp
def test_max_tokens_beyond_the_context_window_is_a_400(served, attribute):
    server = served(WindowedBackend(attribute, 64))
    chat = {"messages": [{"role": "user", "content": "hi"}]}
    for path, body in (
        ("/completions", {"prompt": "abc", "max_tokens": 100_000_000}),
        ("/chat/completions", {**chat, "max_tokens": 65}),
        ("/chat/completions", {**chat, "max_completion_tokens": 100_000_000}),
    ):
        answer = post(server, path, body)
        assert answer.status_code == 400, (path, body, answer.text)
        field = "max_tokens" if "max_tokens" in body else "max_completion_tokens"
        want = f"{field} must be at most 64 (the model's context window), got {body[field]}"
        assert answer.json()["error"]["message"] == want
    assert (
        post(server, "/completions", {"prompt": "abc", "max_tokens": 64}).json()["choices"][0]["text"]
        == "cba"
    )


def test_max_tokens_is_not_bounded_where_the_window_is_unknown(served):
    server = served(CharBackend())  # as a remote API: no window to hold it to
    answer = post(server, "/completions", {"prompt": "abc", "max_tokens": 100_000_000})
    assert answer.status_code == 200 and answer.json()["choices"][0]["text"] == "cba"


def test_a_client_that_goes_away_hears_its_running_generation_ends_unread(served, caplog):
    """A running batch cannot be stopped (the backends have no hook for it): the log line says so."""
    backend = StuckBackend()
    server = served(backend)
    caplog.set_level(logging.WARNING, logger="alignlab.serve")
    with pytest.raises(httpx.TimeoutException):
        post(server, "/completions", {"prompt": "gone", "max_tokens": 5}, timeout=0.5)
    deadline = time.monotonic() + 5
    while not (went := [r.getMessage() for r in caplog.records if "went away" in r.getMessage()]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert went[0].endswith("(0 queued jobs dropped; 1 already running, left to end unread)")
    backend.release.set()


# ---- stopping ------------------------------------------------------------------------------------------


def generation(prompt: str) -> Generation:
    return Generation(prompt, GenerateRequest(prompt="", max_tokens=5))


def test_closing_the_batcher_answers_every_job_and_does_not_wait_for_the_running_batch(caplog):
    backend = StuckBackend()
    model_thread = Batcher(backend)
    running = model_thread.submit(generation("first"))
    assert backend.started.wait(10)
    queued = model_thread.submit(generation("second"))
    began = time.monotonic()
    model_thread.close()
    assert time.monotonic() - began < 5 and model_thread.abandoned  # it waited for the running batch: 30 s
    for future in (running, queued):
        assert isinstance(future.exception(timeout=0), batcher.Stopped)
    late = model_thread.submit(generation("late"))
    assert isinstance(late.exception(timeout=0), batcher.Stopped)
    went = [r.getMessage() for r in caplog.records if "without waiting" in r.getMessage()]
    assert len(went) == 1 and "(1 generation, for" in went[0]
    backend.release.set()  # the abandoned batch ends quietly: its result is dropped, not an error
    model_thread._thread.join(10)
    assert not model_thread._thread.is_alive() and [r.prompt for r in backend.seen] == ["first"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_stopping_the_server_answers_waiting_clients_503_at_once(served):
    backend = StuckBackend()
    server = served(backend)
    answers: list[Future] = [Future(), Future()]

    def ask(i: int) -> None:
        try:
            answers[i].set_result(post(server, "/completions", {"prompt": f"p{i}", "max_tokens": 5}, 30))
        except Exception as exc:
            answers[i].set_exception(exc)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
    threads[0].start()
    assert backend.started.wait(10)
    threads[1].start()  # queued behind the running one
    time.sleep(0.3)
    began = time.monotonic()
    server.close()
    for answer in answers:
        got = answer.result(timeout=10)
        assert got.status_code == 503 and got.json()["error"]["message"] == "the server is shutting down"
    assert time.monotonic() - began < 2  # not after uvicorn's graceful timeout, nor the generation's end
    backend.release.set()


BUSY_SERVER = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
import alignlab.models
from alignlab.models.base import GenerateRequest
from alignlab.models.hf import HFBackend
from tiny_model import tiny_model

class Busy(HFBackend):  # a real model generating for minutes
    def generate(self, requests):
        print("generating", file=sys.stderr, flush=True)
        while True:
            super().generate([GenerateRequest(prompt="how do i", max_tokens=200, temperature=1.0)] * 4)

backend = Busy("tiny", str(tiny_model(Path({folder!r}))))
alignlab.models.load_model = lambda spec, **_: backend
from alignlab.cli import main
sys.exit(main(["serve", "--model", "tiny", "--port", "0", "--quiet"]))
"""


@pytest.mark.heavy
def test_ctrl_c_stops_the_server_at_once_abandoning_a_running_generation(tmp_path):
    script = tmp_path / "busy_server.py"
    script.write_text(BUSY_SERVER.format(tests=str(Path(__file__).parent), folder=str(tmp_path / "tiny")))
    process = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE, text=True)
    try:
        lines = iter(process.stderr.readline, "")
        url = next(re.search(r" at (\S+) ", line).group(1) for line in lines if line.startswith("serving"))
        threading.Thread(
            target=lambda: httpx.post(url + "/completions", json={"prompt": "a"}, timeout=30), daemon=True
        ).start()
        assert next(lines).strip() == "generating"
        began = time.monotonic()
        process.send_signal(signal.SIGINT)
        process.wait(timeout=40)
        took = time.monotonic() - began
        err = process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert took < 5, err  # it waited 30 s for the generation
    # not SIGABRT: Python's teardown under the running generation aborted ("terminate called without ...")
    assert process.returncode == 130, err
    assert "without waiting for the model's running batch (1 generation" in err
    assert "finished samples are saved" not in err  # (what an interrupted run says; a server saves nothing)


# ---- serving a remote model ----------------------------------------------------------------------------


@pytest.fixture
def serve_cli(monkeypatch):
    """`alignlab serve ARGS` in this process, its server started in a thread (not run in the foreground);
    yields ARGS -> (exit code, servers started). Restores the log settings the command makes."""
    started: list[RunningServer] = []
    foreground = RunningServer.run

    def in_thread(self) -> None:
        self.run = types.MethodType(foreground, self)  # what start()'s thread runs
        started.append(self.start())

    def run(*args: str):
        with monkeypatch.context() as patch:  # only the command's server: not those a test starts
            patch.setattr(RunningServer, "run", in_thread)
            return main(["serve", "--port", "0", "--quiet", *args]), started

    served_log = logging.getLogger("alignlab.serve")
    saved = (list(served_log.handlers), served_log.level, served_log.propagate)
    yield run
    for server in started:
        server.close()
    served_log.handlers[:], served_log.level, served_log.propagate = saved


def test_serving_a_remote_model_prints_a_spec_that_reaches_it(served, serve_cli, capsys):
    upstream = served(CharBackend(), model_name="x")
    code, started = serve_cli("--model", f"openai:x@{upstream.base_url}")
    assert code == 0 and len(started) == 1
    hint = re.search(r"--model (\S+)\)", capsys.readouterr().err).group(1)
    assert hint == f"openai:x@{started[0].base_url}"  # served as "x": the spec's own name
    parsed = parse_spec(hint)
    assert (parsed.target, parsed.url) == ("x", started[0].base_url)
    client = load_model(hint)
    client.check()
    assert client.generate([GenerateRequest(prompt="abc", max_tokens=5)])[0].text == "cba"


@pytest.mark.parametrize(
    ("spec", "name"),
    [
        ("smollm2-135m", "smollm2-135m"),
        ("hf:org/model", "hf:org/model"),  # openai:hf:org/model@URL parses: kept, as before
        ("openai:x@http://127.0.0.1:9/v1", "x"),
        ("openai:org/x@http://127.0.0.1:9/v1@params=7B", "org/x"),
        ("inspect:openai/gpt-4o@http://127.0.0.1:9/v1", "openai/gpt-4o"),
    ],
)
def test_the_default_served_name_is_one_a_client_spec_can_carry(spec, name):
    assert serve_command.default_name(spec) == name


def test_an_upstream_that_does_not_serve_the_model_fails_at_start(served, serve_cli, capsys):
    upstream = served(CharBackend())  # serves "char-model", not "x"
    code, started = serve_cli("--model", f"openai:x@{upstream.base_url}")
    assert code == 2 and started == []
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'x'" in err, err


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "--name is empty"), ("  ", "--name is empty"), ("a@http://b", "cannot be written in")],
)
def test_a_name_no_client_can_send_is_refused_before_loading(serve_cli, capsys, name, message):
    code, started = serve_cli("--name", name, "--model", "nosuch:model")
    assert code == 2 and started == []
    assert message in capsys.readouterr().err
