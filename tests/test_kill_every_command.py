"""One run of every command that does model work, SIGKILLed mid-run and rerun: metrics equal an uninterrupted run's.

The stub model here scores like a local one, its numbers moving in the last digits with the batch they were
asked in (`ALIGNLAB_TEST_STUB_BATCHY`, set by child_env): a resumed run that batched its remaining work differently from an
uninterrupted one would show in metrics.json, as it did for `eval p-true` before batches were formed from
the item list alone. Each command is killed once, a batch answered but not kept, then run to the end. `eval bbq` has its own, longer kill test (tests/test_kill_anywhere.py); training stages
are covered there too (a checkpoint killed mid-save).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from datadir import DATA
from test_kill_anywhere import ROOT, child_env

from alignlab.engine.samples import sample_key

pytestmark = pytest.mark.heavy  # SIGKILLs runs in child processes

COMMON = ["--batch-size", "4", "--no-cache", "--no-progress"]
EVAL = [*COMMON, "--bootstrap", "50", "--limit", "14"]
# command (after `alignlab`), the datasets it reads
COMMANDS = {
    "winogender": (["eval", "winogender", *EVAL], ("winogender",)),
    "law-school": (["eval", "law-school", *EVAL], ("law-school",)),
    "discrim-eval": (["eval", "discrim-eval", *EVAL], ("discrim-eval",)),
    "calibration": (["eval", "calibration", *EVAL], ()),
    "p-true": (
        ["eval", "p-true", "--tasks", "arithmetic", "--samples", "3", "--shots", "1", "--conditions", "single",
         *EVAL],
        (),
    ),
    "p-ik": (["eval", "p-ik", *EVAL], ()),
    "mwe": (["eval", "mwe", *EVAL], ("anthropic-evals",)),
    "hhh": (["eval", "hhh", *EVAL], ()),
    "harm-judge": (["eval", "harm-judge", *EVAL], ()),
    "mwe-judge": (["eval", "mwe-judge", *EVAL], ("anthropic-evals",)),
    "generate-evals": (
        ["generate", "evals", "--generator", "stub", "--behavior", "stub-behaviour", "--description",
         "is patient", "--n", "10", *COMMON],
        (),
    ),
    "redteam": (
        ["redteam", "--target", "stub", "--kinds", "plain,rejection", "--rejection-n", "2", "--n", "8",
         "--turns", "2", "--judge-check", "8", *COMMON],
        (),
    ),
    "cai-revise": (["cai", "revise", "--model", "stub", "--n", "8", "--eval-n", "2", "--rounds", "2", *COMMON], ()),
}  # fmt: skip
WHERE = {
    "cai-revise": "revise"
}  # the stage folder that holds a run's samples and metrics, where not the run's
KILLS = ["batch:2"]  # a batch answered, not kept: mid-block (a torn sample line: tests/test_kill_anywhere.py)


def command_for(name: str, folder: Path) -> list[str]:
    args = COMMANDS[name][0]
    if args[0] == "eval":
        args = [*args, "--model", "stub"]
    return [sys.executable, "-m", "alignlab.cli", *args, "--out", str(folder)]


def run(command: list[str], kill: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=child_env(kill), cwd=ROOT, capture_output=True, text=True, timeout=600)


def finished(folder: Path) -> dict:
    """The run's metrics (its folder's name made neutral), after checking each sample is there once."""
    keys = [sample_key(json.loads(line)) for line in (folder / "samples.jsonl").read_text().splitlines()]
    assert len(keys) == len(set(keys)), "a sample is repeated"
    return json.loads((folder / "metrics.json").read_text().replace(str(folder), "RUN"))


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_killed_run_of_each_command_resumes_to_the_same_metrics(name, tmp_path):
    if not DATA.is_dir() or not all((DATA / d).exists() for d in COMMANDS[name][1]):
        pytest.skip(f"shared datasets not found: {COMMANDS[name][1]}")
    whole = run(command_for(name, tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    command = command_for(name, tmp_path / "killed")
    for point in KILLS:
        killed = run(command, kill=point)
        assert killed.returncode == -signal.SIGKILL, (
            f"{point} not reached ({killed.returncode}): {killed.stderr}"
        )
    resumed = run(command)
    assert resumed.returncode == 0, resumed.stderr
    whole_run, killed_run = (tmp_path / part / WHERE.get(name, "") for part in ("whole", "killed"))
    assert finished(killed_run) == finished(whole_run)
    assert len((killed_run / "samples.jsonl").read_text().splitlines()) == len(
        (whole_run / "samples.jsonl").read_text().splitlines()
    ), "a sample is lost"
