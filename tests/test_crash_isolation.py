"""A segfault in an `isolated` test fails that test; the rest of the suite still runs and reports."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.heavy  # crashes child processes

HERE = Path(__file__).parent

CONFTEST = """
import crash_isolation

def pytest_configure(config):
    crash_isolation.register(config)
"""

# The module fixture records each process that sets it up, to show children share it.
TESTS = """
import os, signal
import pytest

ISOLATED = pytest.mark.isolated

@pytest.fixture(scope="module")
def loaded():
    with open("fixture-pids.txt", "a") as f:
        f.write(f"{os.getpid()}\\n")
    return os.getpid()

@ISOLATED
def test_before(loaded):
    assert os.environ.get("ALIGNLAB_ISOLATED_RESULTS")  # in the child
    assert loaded == os.getpid()

@ISOLATED
def test_segfault(loaded):
    os.kill(os.getpid(), signal.SIGSEGV)

@ISOLATED
def test_after_the_crash(loaded):
    assert loaded == os.getpid()

@ISOLATED
def test_plain_failure(loaded):
    assert 1 + 1 == 3

@ISOLATED
@pytest.mark.parametrize("n", [1, 2])
def test_parametrized(loaded, n):
    assert n in (1, 2)

def test_in_the_parent():
    assert not os.environ.get("ALIGNLAB_ISOLATED_RESULTS")
"""


def run_suite(tmp_path: Path, tests: str) -> tuple[subprocess.CompletedProcess, dict[str, str], dict]:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_native.py").write_text(tests)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    env.pop("ALIGNLAB_ISOLATED_RESULTS", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--junitxml=junit.xml", "-rA"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    outcomes, messages = {}, {}
    for case in ET.parse(tmp_path / "junit.xml").getroot().iter("testcase"):
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        outcomes[case.get("name")] = "passed" if bad is None else "failed"
        if bad is not None:
            messages[case.get("name")] = f"{bad.get('message')}\n{bad.text}"
    return result, outcomes, messages


def test_a_segfault_fails_one_test_and_the_suite_goes_on(tmp_path):
    result, outcomes, messages = run_suite(tmp_path, TESTS)
    assert result.returncode == 1, result.stdout + result.stderr  # failures, not a crash of pytest
    assert outcomes == {
        "test_before": "passed",
        "test_segfault": "failed",
        "test_after_the_crash": "passed",
        "test_plain_failure": "failed",
        "test_parametrized[1]": "passed",
        "test_parametrized[2]": "passed",
        "test_in_the_parent": "passed",
    }
    assert "killed by SIGSEGV (exit -11) while running this test" in messages["test_segfault"]
    assert "assert (1 + 1) == 3" in messages["test_plain_failure"]  # the child's own report
    # one child up to the crash, one fresh child for the rest: the module fixture was set up twice,
    # never in the parent
    pids = (tmp_path / "fixture-pids.txt").read_text().split()
    assert len(pids) == 2 and str(os.getpid()) not in pids
    assert "2 failed, 5 passed" in result.stdout


def test_a_crash_in_a_module_fixture_fails_each_test_without_hanging(tmp_path):
    tests = """
import os, signal
import pytest

@pytest.fixture(scope="module")
def model():
    os.kill(os.getpid(), signal.SIGSEGV)

@pytest.mark.isolated
def test_one(model):
    pass

@pytest.mark.isolated
def test_two(model):
    pass

def test_unaffected():
    pass
"""
    result, outcomes, messages = run_suite(tmp_path, tests)
    assert result.returncode == 1, result.stdout + result.stderr
    assert outcomes == {"test_one": "failed", "test_two": "failed", "test_unaffected": "passed"}
    assert all("killed by SIGSEGV" in messages[name] for name in ("test_one", "test_two"))
