"""Shared pytest set-up: tests marked `isolated` run in a child process (see crash_isolation.py); the
`data_dir` fixture is the shared datasets' folder, or a clean skip where they are not (see datadir.py)."""

import crash_isolation
import pytest
from datadir import DATA, missing


def pytest_configure(config):
    crash_isolation.register(config)


@pytest.fixture
def data_dir(monkeypatch):
    """The shared datasets (ALIGNLAB_DATA_DIR set to them for the test), or a skip naming what is missing."""
    gone = missing()
    if gone:
        pytest.skip(f"shared datasets not found: {', '.join(gone)}")
    monkeypatch.setenv("ALIGNLAB_DATA_DIR", str(DATA))
    return DATA
