"""`alignlab eval bbq --executor ray --workers 2` with a worker process killed mid-run: the same metrics as
the local run, and the lost batch retried on the other worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

import pytest

ray = pytest.importorskip("ray", reason="ray is an extra: pip install 'alignlab[ray]'")

from alignlab.cli import main  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture
def fresh_ray():
    ray.shutdown()  # another test's cluster may hold every CPU
    yield
    ray.shutdown()


def worker_pids() -> list[int]:
    found = subprocess.run(["pgrep", "-f", "ray::_Worker"], capture_output=True, text=True).stdout
    return [int(pid) for pid in found.split()]


def kill_a_worker_mid_run(samples, killed: list[int], stop: threading.Event) -> None:
    """Once the run has written its first samples (the workers are loaded and busy), SIGKILL one worker."""
    while not stop.is_set():
        pids = worker_pids()
        if samples.exists() and samples.read_text().count("\n") >= 1 and len(pids) >= 2:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])
            return
        time.sleep(0.05)


def run_bbq(out, *extra) -> int:
    args = ["eval", "bbq", "--limit", "40", "--conditions", "q", "--batch-size", "2", "--no-progress"]
    return main([*args, "--out", str(out), "--cache", str(out) + ".sqlite", *extra])


def test_killed_ray_worker_costs_only_its_batch_and_metrics_match_local(tmp_path, fresh_ray, capfd):
    assert run_bbq(tmp_path / "local") == 0
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(
        target=kill_a_worker_mid_run, args=(tmp_path / "ray" / "samples.jsonl", killed, stop), daemon=True
    )
    killer.start()
    try:
        code = run_bbq(tmp_path / "ray", "--executor", "ray", "--workers", "2")
    finally:
        stop.set()
        killer.join()
    assert code == 0
    err = capfd.readouterr().err
    assert killed, "the run ended before a worker could be killed"
    assert err.count("warning: a Ray worker died") == 1
    assert "a replacement is starting" in err

    def predictions(folder):
        rows = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
        return sorted((r["id"], r["condition"], r["prediction"]) for r in rows)

    local, remote = predictions(tmp_path / "local"), predictions(tmp_path / "ray")
    assert len(local) == 40 and local == remote  # nothing lost, nothing repeated, the same answers
    metrics = [json.loads((tmp_path / f / "metrics.json").read_text()) for f in ("local", "ray")]
    assert metrics[0]["conditions"] == metrics[1]["conditions"]
