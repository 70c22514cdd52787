"""Run tests marked `isolated` in a child pytest process, so a native crash fails a test, not the suite.

A native library (llama.cpp's AMX kernels, for one) can segfault; in-process that kills pytest and every
result with it. Here the parent hands the isolated tests of one module to a child `python -m pytest` (one
child per module, so module fixtures such as a loaded model are shared as usual), which writes each report
as a JSON line the moment it is made. The parent replays those reports as its own. When the child dies,
the test it was running is reported failed with the signal and the tail of the child's output, and the
module's remaining tests go to a fresh child.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from _pytest.reports import TestReport

RESULTS_ENV = "ALIGNLAB_ISOLATED_RESULTS"  # set in the child: where it writes its reports
MARKER = "isolated"
PHASES = ("setup", "call", "teardown")


def register(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}: runs in a child process; a native crash fails only that test"
    )
    if os.environ.get(RESULTS_ENV):
        config.pluginmanager.register(_ChildReporter(config, os.environ[RESULTS_ENV]), "isolated-child")
    else:
        config.pluginmanager.register(_Isolator(config), "isolated-parent")


class _ChildReporter:
    """In the child: every test start and report, one JSON line each, flushed at once."""

    def __init__(self, config: pytest.Config, path: str) -> None:
        self.config = config
        self.out = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 (open for the session)

    def pytest_runtest_logstart(self, nodeid, location):
        self.out.write(json.dumps({"start": nodeid}) + "\n")

    def pytest_runtest_logreport(self, report):
        data = self.config.hook.pytest_report_to_serializable(config=self.config, report=report)
        self.out.write(json.dumps({"report": data}) + "\n")

    def pytest_unconfigure(self, config):
        self.out.close()


class _Isolator:
    """In the parent: runs isolated items in children and replays their reports."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.reports: dict[str, list[TestReport]] = {}

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem):
        if item.get_closest_marker(MARKER) is None:
            return None
        if item.nodeid not in self.reports:
            self._run_module_of(item)
        ihook = item.ihook
        ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        for report in self.reports.pop(item.nodeid):
            ihook.pytest_runtest_logreport(report=report)
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True

    def _run_module_of(self, item: pytest.Item) -> None:
        session_items = item.session.items
        start = session_items.index(item)
        batch = [
            other
            for other in session_items[start:]
            if other.path == item.path and other.get_closest_marker(MARKER) is not None
        ]
        while batch:
            done = self._run_child(batch)
            batch = [other for other in batch if other.nodeid not in done]

    def _run_child(self, items: list[pytest.Item]) -> set[str]:
        """Run `items` in one child; return the node ids it settled (reported, or crashed in)."""
        by_id = {item.nodeid: item for item in items}
        with tempfile.TemporaryDirectory(prefix="alignlab-isolated-") as tmp:
            results, log = Path(tmp) / "results.jsonl", Path(tmp) / "output.txt"
            env = dict(os.environ, **{RESULTS_ENV: str(results)})
            command = [
                sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                "--rootdir", str(self.config.rootpath),
            ]  # fmt: skip
            if self.config.inipath is not None:
                command += ["-c", str(self.config.inipath)]
            command += [item.nodeid for item in items]
            with log.open("wb") as output:
                code = subprocess.run(
                    command, cwd=self.config.rootpath, env=env, stdout=output, stderr=subprocess.STDOUT
                ).returncode
            events = _read_events(results)
            tail = log.read_text(errors="replace")[-3000:]

        settled: set[str] = set()
        running = None
        for event in events:
            if "start" in event:
                running = event["start"]
                continue
            report = self.config.hook.pytest_report_from_serializable(
                config=self.config, data=event["report"]
            )
            self.reports.setdefault(report.nodeid, []).append(report)
            if report.when == "teardown":
                settled.add(report.nodeid)
                running = None
        if running is not None and running in by_id:  # the child died inside this test
            self._fail(by_id[running], f"the test process {_describe(code)} while running this test", tail)
            settled.add(running)
        if code < 0 and running is None and settled:  # died after its last test (e.g. in a finalizer)
            last = next(item for item in reversed(items) if item.nodeid in settled)
            self._fail(last, f"the test process {_describe(code)} after this test", tail, when="teardown")
        if not settled:  # nothing ran at all (the child could not start or collect): say so once each
            for item in items:
                self._fail(
                    item, f"the isolated test process {_describe(code)} before running this test", tail
                )
                settled.add(item.nodeid)
        return settled

    def _fail(self, item: pytest.Item, why: str, output: str, when: str | None = None) -> None:
        reports = self.reports.setdefault(item.nodeid, [])
        seen = {report.when for report in reports}
        when = when or next((phase for phase in PHASES if phase not in seen), "teardown")
        message = f"{why}\n--- last output of the child process ---\n{output}"
        reports.append(
            TestReport(
                nodeid=item.nodeid,
                location=item.location,
                keywords={name: 1 for name in item.keywords},
                outcome="failed",
                longrepr=message,
                when=when,
                sections=[],
                duration=0.0,
            )
        )


def _read_events(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by the crash
            break
    return events


def _describe(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name} (exit {code})"
    return f"exited with code {code}"
