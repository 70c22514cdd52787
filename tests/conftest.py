"""Shared pytest set-up: tests marked `isolated` run in a child process (see crash_isolation.py)."""

import crash_isolation


def pytest_configure(config):
    crash_isolation.register(config)
