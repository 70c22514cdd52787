"""Find and read run folders: config.json and metrics.json (samples.jsonl only when asked for).

A folder with config.json is a run; without metrics.json it is incomplete (still running, or killed).
Unreadable files are reported, not fatal: one bad folder must not hide a thousand good ones.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from alignlab import registry
from alignlab.data.jsonl import read_json
from alignlab.engine.samples import read_located_jsonl
from alignlab.errors import AlignlabError
from alignlab.report.metric_checks import metric_problems
from alignlab.runfolder import CONFIG, METRICS, SAMPLES, read_config

INT64_LIMIT = 2**63


@dataclass
class Run:
    path: Path
    name: str  # the folder relative to the root it was found under
    config: dict
    metrics: dict | None  # None: the run has not finished

    @property
    def experiment(self) -> str:
        return str(self.config.get("experiment") or self.config.get("identity", {}).get("experiment") or "?")

    @property
    def model(self) -> str:
        model = self.config.get("model")
        if isinstance(model, dict):
            return str(model.get("spec") or "?")
        return str(self.config.get("identity", {}).get("model") or model or "?")

    @property
    def parameters(self) -> int | None:
        model = self.config.get("model")
        value = model.get("parameters") if isinstance(model, dict) else None
        ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < INT64_LIMIT
        return int(value) if ok else None  # not NaN, inf or 10**400: the index keeps it in an Int64 column

    @property
    def axes(self) -> dict[str, float]:
        """What the model spec declared for a ladder's axes (`@NAME=VALUE`), finite numbers only."""
        model = self.config.get("model")
        axes = model.get("axes") if isinstance(model, dict) else None
        if not isinstance(axes, dict):
            return {}
        return {
            str(k): float(v)
            for k, v in axes.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        }

    @property
    def config_hash(self) -> str:
        return str(self.config.get("config_hash") or "")

    @property
    def fingerprint(self) -> str:
        return str(self.config.get("identity", {}).get("model_fingerprint") or "")

    @property
    def date(self) -> str:
        return str(self.config.get("started") or "")

    @property
    def complete(self) -> bool:
        return self.metrics is not None

    def samples(self, limit: int | None = None) -> Iterator[dict]:
        """The run's first `limit` samples (all by default) in file order; a line that is not JSON raises.
        Reads only as far as it yields."""
        yield from (sample for _, sample in itertools.islice(self.located_samples(), limit))

    def located_samples(self) -> Iterator[tuple[str, dict]]:
        """("samples.jsonl:line", sample) for each sample, for checks whose message names the line."""
        path = self.path / SAMPLES
        if path.is_file():
            yield from read_located_jsonl(path)


@dataclass
class RunSet:
    runs: list[Run] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one line per folder that could not be read
    left_out: list[str] = field(default_factory=list)  # those folders, as names under the root

    def summary(self) -> str | None:
        """One line naming the runs left out, for after their warnings (None: none was)."""
        if not self.left_out:
            return None
        names = ", ".join(self.left_out[:10]) + (
            f" and {len(self.left_out) - 10} more" if len(self.left_out) > 10 else ""
        )
        return f"left out {len(self.left_out)} run folder(s) that could not be read: {names}"


def find_runs(root: Path | str) -> RunSet:
    """Every run folder under root (root itself may be one), sorted by name."""
    root = Path(root).expanduser()
    if not root.exists():
        raise AlignlabError(f"{root}: no such folder")
    if not root.is_dir():
        raise AlignlabError(f"{root}: not a folder")
    found = RunSet()
    folders, orphans = [], set()
    # os.walk, not rglob: it lets us stop descending into a run (its subfolders are its own business).
    for current, dirs, files in os.walk(root):
        if CONFIG in files:
            folders.append(Path(current))
            dirs.clear()
        else:
            if METRICS in files:  # a run whose config.json was deleted: named, never silently skipped
                orphans.add(Path(current))
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    for folder in sorted([*folders, *orphans]):
        name = folder.relative_to(root).as_posix() if folder != root else folder.name
        try:
            if folder in orphans:
                raise AlignlabError(f"{folder}: {METRICS} without {CONFIG}, so not read as a run")
            found.runs.append(read_run(folder, name))
        except AlignlabError as exc:
            found.problems.append(str(exc))
            found.left_out.append(name)
    return found


def read_run(folder: Path, name: str | None = None) -> Run:
    config = read_config(folder / CONFIG)
    if not isinstance(config.get("identity"), dict):
        raise AlignlabError(f"{folder / CONFIG}: not an alignlab run config (no 'identity' object)")
    if (folder / METRICS).exists() and not (folder / METRICS).is_file():
        raise AlignlabError(f"{folder / METRICS}: not a file")  # not "not finished": it never will be
    metrics = read_json(folder / METRICS) if (folder / METRICS).is_file() else None
    if metrics is not None and not isinstance(metrics, dict):
        raise AlignlabError(f"{folder / METRICS}: expected a JSON object")
    run = Run(path=folder, name=name or folder.name, config=config, metrics=metrics)
    if metrics is not None:
        section = registry.section(run.experiment)  # its own ranges, if it declares any
        problems = metric_problems(metrics, getattr(section, "ranges", None))
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise AlignlabError(f"{folder / METRICS}: {problems[0]}{more}")
    return run
