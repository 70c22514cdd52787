"""A run's folder: config.json (what to repeat it), samples.jsonl (one line per sample), metrics.json, plots.

A folder belongs to one run identity (experiment, model fingerprint, data, settings). Running the same
command again resumes it; a different run in the same folder is refused rather than mixed in.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import platform
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from alignlab.atomic import remove_stale_temporaries, write_text_atomic
from alignlab.engine.samples import SampleLog
from alignlab.errors import AlignlabError
from alignlab.run_files import CONFIG, JOURNAL, JOURNAL_FILES, METRICS, OPENED, SAMPLES, is_run  # noqa: F401


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "platform": platform.platform()}
    for name in ("alignlab", "torch", "transformers", "numpy", "llama_cpp_python", "httpx"):
        try:
            found[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            continue
    return found


def identity_hash(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def identity_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    """The identity keys that differ, as dotted paths down to the leaves ("models.judge.fingerprint",
    "prompts.INSTRUCTION")."""
    old = old if isinstance(old, dict) else {}
    found = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        if isinstance(before, dict) and isinstance(after, dict):
            found += identity_diff(before, after, f"{prefix}{key}.")
        else:
            found.append(f"{prefix}{key}")
    return found


def refuse_another_kind(path: Path, held, wanted) -> None:
    """An AlignlabError when the folder at `path` holds a run of another kind (`held`) than `wanted`."""
    if held != wanted:
        raise AlignlabError(
            f"{path} holds a different run: a {short_name(held)} run, not a {short_name(wanted)} one; "
            "choose another --out"
        )


def short_name(name) -> str:
    """A run kind's name quoted for a message, cut to 60 characters (config.json may hold anything)."""
    text = repr(name)
    return text if len(text) <= 60 else text[:57] + "..."


def write_json_atomic(path: Path, data) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def read_config(path: Path) -> dict:
    """A run's config.json: a JSON object, else an AlignlabError of one line naming the file (and the line
    and column where it stops being JSON)."""
    from alignlab.data.jsonl import read_json

    config = read_json(path)
    if not isinstance(config, dict):
        raise AlignlabError(
            f"{path}: not an alignlab run config (a JSON {type(config).__name__}, not an object)"
        )
    return config


def refuse_misplaced(path: Path | str) -> None:
    """A new run's folder must neither hold runs (`index` and `report` would then see the new run alone: they
    do not look inside a run) nor sit inside a run (they would never find it). A run being resumed is where
    it is."""
    path = Path(path).expanduser()
    if (path / CONFIG).is_file():
        return
    if path.is_dir():
        held = sorted(sub.name for sub in path.iterdir() if sub.is_dir() and is_run(sub))
        if held:
            shown = ", ".join(held[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
            raise AlignlabError(
                f"{path} holds runs ({shown}): give this run a folder of its own, e.g. --out {path / 'NAME'}"
            )
    for parent in path.absolute().parents:
        if is_run(parent):
            raise AlignlabError(f"{path} is inside the run folder {parent}: choose an --out outside it")


class RunFolder:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path).expanduser()

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    def open(self, identity: dict, extra: dict, keep_metrics: bool = False) -> tuple[SampleLog, bool]:
        """Start or resume the run; returns (sample log, resumed?). `keep_metrics`: a finished run's
        metrics.json stays (a pipeline whose stages each rewrite it), else it is dropped until finish()."""
        config_hash = identity_hash(identity)
        resumed = False
        existing: dict = {}
        if self.config_path.is_file():
            existing = read_config(self.config_path)
            if existing.get("config_hash") != config_hash:
                stored = existing.get("identity")
                held = stored.get("experiment") if isinstance(stored, dict) else None
                if held is not None:
                    refuse_another_kind(self.path, held, identity.get("experiment"))
                diff = identity_diff(existing.get("identity", {}), identity)
                raise AlignlabError(
                    f"{self.path} holds a different run (differs in: {', '.join(diff) or 'config'}); "
                    "choose another --out or delete the folder"
                )
            resumed = True
        elif (self.path / SAMPLES).exists():
            raise AlignlabError(f"{self.path} has samples but no {CONFIG}; choose another --out")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AlignlabError(f"cannot create run folder {self.path}: {exc.strerror or exc}") from exc
        remove_stale_temporaries(self.path)  # half-written files of a killed run: never results
        # A resumed run's old metrics would describe fewer samples than the finished run: drop them now.
        if not keep_metrics:
            self.metrics_path.unlink(missing_ok=True)
        config = {
            "config_hash": config_hash,
            "identity": identity,
            **extra,
            "versions": versions(),
            "command": sys.argv,
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        if resumed:
            earlier = existing.get("resumed")
            config["started"] = existing.get("started", config["started"])
            config["resumed"] = (earlier if isinstance(earlier, list) else []) + [
                datetime.now(UTC).isoformat(timespec="seconds")
            ]
        write_json_atomic(self.config_path, config)
        return SampleLog(self.path / SAMPLES), resumed

    def discard(self, remove_dir: bool) -> None:
        """Take back a run that failed before its first sample: its config, empty log, journal and run.log
        (and the folder, when this run made it and nothing else is in it)."""
        for name in OPENED:
            (self.path / name).unlink(missing_ok=True)
        if remove_dir:
            with contextlib.suppress(OSError):  # something else is in it: leave it
                self.path.rmdir()

    def discard_if_untouched(self, remove_dir: bool) -> bool:
        """`discard`, when the folder holds nothing a run made beyond its opening (no sample, no stage's
        output); returns whether it did."""
        if not self.path.is_dir():
            return False
        names = {p.name for p in self.path.iterdir()}
        samples = self.path / SAMPLES
        if names - set(OPENED) or (samples.exists() and samples.stat().st_size):
            return False
        self.discard(remove_dir)
        return True

    def finish(self, metrics: dict) -> None:
        write_json_atomic(self.metrics_path, metrics)
        for name in JOURNAL_FILES:
            (self.path / name).unlink(missing_ok=True)
