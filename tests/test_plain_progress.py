"""With stderr redirected (CI, nohup, a file) progress still shows: a plain line at the start, one every few
seconds even while nothing finishes, and one at the end (issue 29)."""

from __future__ import annotations

import io
import re
import time

from stub_backend import StubBackend

from alignlab.engine import Engine
from alignlab.engine.plain_progress import PlainProgress, interval_from_env
from alignlab.models.base import ScoreRequest


def test_lines_at_start_on_a_timer_and_at_the_end():
    stream = io.StringIO()
    with PlainProgress(stream, interval=0.05) as progress:
        key = progress.add_task("samples", total=10)
        time.sleep(0.22)  # nothing advances: the timer still speaks
        for _ in range(10):
            progress.advance(key)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("samples: 0/10 (0%), -/s, 0s elapsed")
    assert len(lines) >= 4  # start, at least two ticks, end
    assert lines[-1].startswith("samples: 10/10 (100%), ") and "eta" not in lines[-1]
    assert all(re.match(r"samples: \d+/10 \(\d+%\), ", line) for line in lines)


def test_the_interval_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("ALIGNLAB_PROGRESS_INTERVAL", "2.5")
    assert interval_from_env() == 2.5
    for bad in ("0", "-1", "nan", "inf", "soon"):
        monkeypatch.setenv("ALIGNLAB_PROGRESS_INTERVAL", bad)
        assert interval_from_env() == 10.0


def test_the_engine_writes_plain_lines_when_stderr_is_not_a_terminal(capsys):
    def task(i):
        result = yield ScoreRequest(prompt=f"q{i}", continuations=(" a", " b"))
        return {"id": i, "best": result.logprobs[0] > result.logprobs[1]}

    engine = Engine(StubBackend(), show_progress=True)
    samples = []
    engine.run_tasks({i: task(i) for i in range(7)}, samples.append, description="bbq")
    err = capsys.readouterr().err
    assert len(samples) == 7
    assert err.splitlines()[0].startswith("bbq: 0/7 (0%)")
    assert err.splitlines()[-1].startswith("bbq: 7/7 (100%)")
    assert "\x1b[" not in err  # no terminal control codes in a file


def test_no_lines_when_progress_is_off(capsys):
    def task():
        yield ScoreRequest(prompt="q", continuations=(" a",))
        return {"id": 0}

    Engine(StubBackend(), show_progress=False).run_tasks({0: task()}, lambda s: None)
    assert capsys.readouterr().err == ""


def test_requests_answered_show_while_a_blocks_samples_wait(monkeypatch):
    # one task asking many requests: its sample waits for the last batch, the count of requests moves
    monkeypatch.setenv("ALIGNLAB_PROGRESS_INTERVAL", "0.01")
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)

    class Slow(StubBackend):
        def score(self, requests):
            time.sleep(0.05)
            return super().score(requests)

    def task():
        results = yield [ScoreRequest(prompt=f"q{i}", continuations=(" a",)) for i in range(40)]
        return {"id": 0, "n": len(results)}

    Engine(Slow(), batch_size=4, max_concurrency=1, show_progress=True).run_tasks({0: task()}, lambda s: None)
    waiting = [line for line in stream.getvalue().splitlines() if line.startswith("samples: 0/1")]
    assert any("requests answered" in line for line in waiting), stream.getvalue()
    assert "40 requests answered" in stream.getvalue().splitlines()[-1]
