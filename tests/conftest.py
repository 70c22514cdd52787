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


@pytest.fixture(autouse=True)
def _scripted_specs_skip_the_form_check(monkeypatch):
    """A test that scripts models by name (monkeypatching alignlab.models.load_model: "gen", "judge") skips
    the spec check that commands run before loading; with the real loader the real check runs."""
    import alignlab.models as models

    real_load, real_check = models.load_model, models.check_spec

    def check(spec):
        if models.load_model is real_load:
            real_check(spec)

    monkeypatch.setattr(models, "check_spec", check)


@pytest.fixture
def serving():
    """Start `alignlab serve` around a backend (backend, **options -> the running server); every server is
    closed after the test."""
    from alignlab.serve import serve

    servers = []

    def start(backend, **kwargs):
        server = serve(backend, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
