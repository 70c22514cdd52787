"""A full disk at any write: one line `error: no space left on device writing PATH`, exit 2, no traceback, no
half-written result; the same command once there is space again finishes as a run that never ran out.

A full disk is simulated with RLIMIT_FSIZE in the child (CPython ignores SIGXFSZ, so a write past the limit
fails with EFBIG, which reads as a full disk), swept over sizes that land in different files' writes; the one
file no size can reach first (metrics.json, smaller than the samples before it) meets an injected ENOSPC
(tests/killpoints/sitecustomize.py); and, where this machine lets us mount one, a real tmpfs fills up.
"""

from __future__ import annotations

import json
import logging
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_kill_anywhere import ROOT, assert_whole_run, bbq_command, child_env, needs_data, uninterrupted

from alignlab.engine.cache import ResponseCache
from alignlab.models.base import ScoreResult

pytestmark = pytest.mark.heavy  # fills disks, trains

__all__ = ["uninterrupted"]  # the fixture: one uninterrupted run to compare with

# each limit (bytes a file may reach) falls inside the first write that outgrows it; the stub run's files are
# about: config.json 3 kB, samples.jsonl 85 kB, the figure 100 kB, metrics.json 30 kB, report.html 300 kB
SWEEP = [
    (1_000, "run/config.json"),
    (20_000, "run/samples.jsonl"),
    (92_000, "run/bias_by_category.png"),
    (None, "run/metrics.json"),  # injected ENOSPC
    (160_000, "report.html"),
]


def run_limited(command: list[str], limit: int | None, env: dict) -> subprocess.CompletedProcess:
    def cap_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        command,
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=cap_file_size if limit else None,
    )


def assert_disk_full_error(proc: subprocess.CompletedProcess, path: Path) -> None:
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: no space left on device writing {path}"], proc.stderr
    assert "Traceback" not in proc.stderr


@needs_data
def test_a_full_disk_at_each_write_is_one_line_and_the_run_resumes(uninterrupted, tmp_path):
    command = bbq_command(tmp_path)
    for limit, failing in SWEEP:
        env = child_env() if limit else {**child_env(), "ALIGNLAB_TEST_FULL": "atomic:metrics.json:1"}
        proc = run_limited(command, limit, env)
        assert_disk_full_error(proc, tmp_path / failing)
        assert not (tmp_path / "report.html").exists()
        if failing != "report.html":
            assert not (tmp_path / "run" / "metrics.json").exists(), f"{failing}: a run marked finished"
    proc = run_limited(command, None, child_env())  # space again
    assert proc.returncode == 0, proc.stderr
    assert assert_whole_run(tmp_path) == uninterrupted


@needs_data
def test_a_sample_line_cut_by_a_full_disk_is_taken_back(tmp_path):
    """Half a line written, then ENOSPC: the log ends on a whole line, not a torn one."""
    proc = run_limited(bbq_command(tmp_path), None, {**child_env(), "ALIGNLAB_TEST_FULL": "samples:5"})
    assert_disk_full_error(proc, tmp_path / "run" / "samples.jsonl")
    log = (tmp_path / "run" / "samples.jsonl").read_bytes()
    assert log.endswith(b"\n") and log.count(b"\n") == 4
    [json.loads(line) for line in log.splitlines()]


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 120 kB tmpfs, mounted at tmp_path/disk (root and a kernel that allow it, else skip)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=120k", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], check=False)


@needs_data
def test_a_real_full_disk_then_more_space(small_tmpfs, uninterrupted):
    command = bbq_command(small_tmpfs)
    proc = run_limited(command, None, child_env())
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: no space left on device writing"), proc.stderr
    assert "Traceback" not in proc.stderr
    remount = ["mount", "-o", "remount,size=4m", str(small_tmpfs)]
    subprocess.run(remount, check=True)
    proc = run_limited(command, None, child_env())
    assert proc.returncode == 0, proc.stderr
    assert assert_whole_run(small_tmpfs) == uninterrupted


def test_a_response_cache_on_a_full_disk_warns_once_and_the_run_goes_on(tmp_path, caplog):
    """The cache only saves time: on a full disk it stops storing, after one warning, and still reads."""
    cache = ResponseCache(tmp_path / "responses.sqlite")
    cache.put_many("m", [("kept", "score", ScoreResult([-1.0], [1]))])
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    big = [(f"k{i}", "score", ScoreResult([-1.0] * 200, [1] * 200)) for i in range(200)]
    try:
        resource.setrlimit(resource.RLIMIT_FSIZE, (8_192, hard))  # CPython ignores SIGXFSZ: EFBIG instead
        with caplog.at_level(logging.WARNING, logger="alignlab.engine.cache"):
            cache.put_many("m", big)
            cache.put_many("m", big)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    warnings = [r for r in caplog.records if "cannot write response cache" in r.getMessage()]
    assert len(warnings) == 1
    assert set(cache.get_many("m", ["kept", "k0"])) == {"kept"}
    cache.close()


@pytest.mark.parametrize("code", ["ENOSPC", "EDQUOT", "EFBIG"])
def test_a_full_disk_no_one_wrapped_is_still_one_line(code, monkeypatch, capsys):
    """The CLI's last guard: an OSError of a full disk from any command names its file, without traceback."""
    import errno
    import os

    import alignlab.cli

    number = getattr(errno, code)

    def full(args):
        raise OSError(number, os.strerror(number), "/runs/x/results.json")

    monkeypatch.setattr(alignlab.cli, "_run_models", full)
    assert alignlab.cli.main(["models"]) == 2
    assert capsys.readouterr().err.strip() == "error: no space left on device writing /runs/x/results.json"


def test_training_on_a_full_disk_is_one_line_and_resumes(tmp_path):
    """A checkpoint cut short (a 20 kB limit: its first adapter file), then the merged model (an injected
    ENOSPC; its weights and the optimizer state are both 93 kB, so no limit splits them): one line each; with
    space again the run resumes from the last whole checkpoint."""
    from test_kill_anywhere import TRAIN_SCRIPT

    base, sft = tmp_path / "base", tmp_path / "sft"
    make_base = "import sys; from tiny_model import tiny_model; tiny_model(sys.argv[1])"
    subprocess.run([sys.executable, "-c", make_base, str(base)], env=child_env(), cwd=ROOT, check=True)
    command = [sys.executable, "-c", TRAIN_SCRIPT, str(base), str(sft)]
    for limit, env, failing in [
        (20_000, child_env(), sft / "checkpoints"),
        (None, {**child_env(), "ALIGNLAB_TEST_FULL": "atomic:model:1"}, sft / "model"),
    ]:
        proc = run_limited(command, limit, env)
        assert proc.returncode == 1, proc.stderr  # sys.exit(message)
        assert proc.stderr.strip().splitlines()[-1] == f"error: no space left on device writing {failing}"
        assert "Traceback" not in proc.stderr
    proc = run_limited(command, None, child_env())
    assert proc.returncode == 0, proc.stderr
    assert "resuming from checkpoint-4" in proc.stderr
    assert (sft / "model" / "model.safetensors").is_file()


def test_a_run_log_on_a_full_disk_is_given_up_with_one_warning(tmp_path, capsys):
    import logging

    from alignlab.runlog import RunLog

    with RunLog() as run_log:
        run_log.attach(tmp_path)
        run_log.file.stream = open("/dev/full", "w")  # noqa: SIM115 -- every write: ENOSPC
        for n in range(3):
            logging.getLogger("alignlab.test").info("line %d", n)
    err = capsys.readouterr().err
    assert err.count("cannot write") == 1 and "run.log" in err
    assert "Traceback" not in err and "Logging error" not in err
