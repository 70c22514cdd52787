"""`kill -9` anywhere, then the same command again, until it finishes: the run ends exactly as one never killed.

A CLI run in a subprocess is SIGKILLed at seeded random moments and, since random moments rarely land in the
short writes, also at named write points (tests/killpoints/sitecustomize.py makes the process kill itself
half-way through the K-th pass of one): loading the model, a batch answered but not yet kept, appending a
sample (half a line written), config.json, the figure, metrics.json and the report (their temporaries half
written), and a training checkpoint (its weights written, the trainer's state not). After each kill the same command runs again.
At the end: every (id, condition) in samples.jsonl exactly once, every file parses, metrics.json equal to an
uninterrupted run's, and no temporary left behind.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from datadir import DATA, needs

from alignlab.engine.samples import sample_key

pytestmark = pytest.mark.heavy  # SIGKILLs runs in child processes

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
needs_data = needs("bbq")

LIMIT = 30  # items; x 3 conditions = 90 samples
# named points (each kill is followed by the same command again): those met while samples are still to do,
# then seeded random moments, then those every run meets at its end
EARLY_POINTS = ["load:1", "atomic:config.json:1", "batch:2", "samples:1", "samples:7", "samples:30"]
LATE_POINTS = ["atomic:*.png:1", "atomic:metrics.json:1", "atomic:report.html:1"]
RANDOM_KILLS = 6


def bbq_command(root: Path, model: str = "stub", limit: int = LIMIT, conditions: str = "q,q+if,q+if+cot"):
    return [
        sys.executable, "-m", "alignlab.cli", "eval", "bbq", "--model", model, "--limit", str(limit),
        "--conditions", conditions, "--batch-size", "4", "--bootstrap", "100", "--no-cache", "--no-progress",
        "--out", str(root / "run"), "--report", str(root / "report.html"),
    ]  # fmt: skip


def child_env(kill: str | None = None) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS / "killpoints"), str(TESTS)]),
        "ALIGNLAB_TEST_STUB": "1",
        "ALIGNLAB_TEST_STUB_BATCHY": "1",  # scores move with their batch, as a local model's: resume must match
        "ALIGNLAB_DATA_DIR": str(DATA),
    }
    env.pop("ALIGNLAB_TEST_KILL", None)
    if kill:
        env["ALIGNLAB_TEST_KILL"] = kill
    return env


def run(command: list[str], kill: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=child_env(kill), cwd=ROOT, capture_output=True, text=True, timeout=300)


def run_killed_at(command: list[str], seconds: float) -> bool:
    """Start the command and SIGKILL it after `seconds`; False if it finished first."""
    proc = subprocess.Popen(
        command, env=child_env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        proc.wait(timeout=seconds)
        return False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True


def assert_whole_run(root: Path, conditions: int = 3, limit: int = LIMIT) -> dict:
    """Every file of the run parses, each sample is there once, nothing half-written is left; the metrics."""
    run_folder = root / "run"
    keys = [sample_key(json.loads(line)) for line in (run_folder / "samples.jsonl").read_text().splitlines()]
    assert len(keys) == len(set(keys)), "a sample is repeated"
    assert len(keys) == conditions * limit, "a sample is lost"
    json.loads((run_folder / "config.json").read_text())
    from PIL import Image

    for png in run_folder.glob("*.png"):
        with Image.open(png) as image:
            image.verify()
    page = (root / "report.html").read_text()
    HTMLParser().feed(page)
    assert page.rstrip().endswith("</html>")
    leftovers = [p.name for p in [*run_folder.iterdir(), *root.iterdir()] if ".tmp-" in p.name]
    assert not leftovers, leftovers
    return json.loads((run_folder / "metrics.json").read_text())


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("whole")
    proc = run(bbq_command(root))
    assert proc.returncode == 0, proc.stderr
    return assert_whole_run(root)


@needs_data
def test_killed_at_every_write_point_and_at_random_moments_ends_as_an_uninterrupted_run(
    uninterrupted, tmp_path
):
    command = bbq_command(tmp_path)
    kills = sum(kill_at(command, point) for point in EARLY_POINTS)
    draw = random.Random(17)
    kills += sum(run_killed_at(command, draw.uniform(0.2, 3.0)) for _ in range(RANDOM_KILLS))
    kills += sum(kill_at(command, point) for point in LATE_POINTS)
    proc = run(command)
    assert proc.returncode == 0, proc.stderr
    print(f"{kills} kills")
    assert assert_whole_run(tmp_path) == uninterrupted


def kill_at(command: list[str], point: str) -> int:
    proc = run(command, kill=point)
    assert proc.returncode == -signal.SIGKILL, f"{point}: not reached ({proc.returncode}) {proc.stderr}"
    return 1


@needs_data
def test_a_torn_last_sample_line_is_cut_and_the_sample_redone_once(uninterrupted, tmp_path):
    command = bbq_command(tmp_path)
    assert run(command, kill="samples:12").returncode == -signal.SIGKILL
    log = (tmp_path / "run" / "samples.jsonl").read_bytes()
    assert log.count(b"\n") == 11 and not log.endswith(b"\n")  # 11 whole lines, then half of the 12th
    assert run(command).returncode == 0
    assert assert_whole_run(tmp_path) == uninterrupted


def test_a_torn_line_longer_than_a_read_block_is_cut_too(tmp_path):
    from alignlab.engine.samples import SampleLog

    path = tmp_path / "samples.jsonl"
    whole = b"".join(json.dumps({"id": i, "condition": "q"}).encode() + b"\n" for i in range(3))
    path.write_bytes(whole + b'{"id": 3, "text": "' + b"x" * 200_000)
    assert SampleLog(path).done() == {("0", "q"), ("1", "q"), ("2", "q")}
    assert path.read_bytes() == whole


@needs_data
def test_a_run_killed_while_writing_its_figure_has_no_metrics_and_no_half_image(tmp_path):
    """metrics.json is what marks a run finished: it must not appear before the figures are whole."""
    assert run(bbq_command(tmp_path), kill="atomic:*.png:1").returncode == -signal.SIGKILL
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert "metrics.json" not in names and "bias_by_category.png" not in names, names


@needs_data
@pytest.mark.slow
def test_the_real_model_killed_while_loading_resumes(tmp_path):
    """The bundled model: killed at seeded moments in its first seconds (imports, weights), then resumed."""
    command = bbq_command(tmp_path, model="smollm2-135m", limit=2, conditions="q")
    draw = random.Random(5)
    kills = sum(run_killed_at(command, draw.uniform(0.5, 6.0)) for _ in range(2))
    started = time.monotonic()
    proc = run(command)
    assert proc.returncode == 0, proc.stderr
    assert kills >= 1, f"the run finished in {time.monotonic() - started:.0f}s, before any kill"
    assert_whole_run(tmp_path, conditions=1, limit=2)


# --- a training checkpoint -------------------------------------------------------------------------------
TRAIN_SCRIPT = """
import sys
from dataclasses import replace
from pathlib import Path
from tiny_model import tiny_model
from alignlab.errors import AlignlabError
from alignlab.papers.constitutional_ai.cai_run import Training
from alignlab.training.sft import train_sft

base, folder = Path(sys.argv[1]), Path(sys.argv[2])
if not base.is_dir():
    tiny_model(base)
training = Training(lora_r=8, lora_alpha=16, learning_rate=5e-3, epochs=1, train_batch_size=4,
                    max_length=64, save_steps=1)
rows = [{"prompt": "Human: how do i hurt someone Assistant:", "completion": " sorry i cannot help"}] * 16
try:
    train_sft(str(base), rows, folder, training, False, 0)
except AlignlabError as exc:  # as the CLI reports one
    sys.exit(f"error: {exc}")
"""


def test_a_checkpoint_killed_mid_save_is_not_resumed_from(tmp_path):
    """Four steps, a checkpoint each; the kill lands inside checkpoint-3's save: the next start resumes from
    checkpoint-2 (whole) and finishes, never from the half-written checkpoint-3."""
    command = [sys.executable, "-c", TRAIN_SCRIPT, str(tmp_path / "base"), str(tmp_path / "sft")]
    killed = run(command, kill="checkpoint:3")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    half = tmp_path / "sft" / "checkpoints" / "checkpoint-3"
    assert half.is_dir() and not (half / "trainer_state.json").exists()
    resumed = run(command)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from checkpoint-2" in resumed.stderr
    assert (tmp_path / "sft" / "model" / "config.json").is_file()
