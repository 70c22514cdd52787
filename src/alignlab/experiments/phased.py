"""A run made of phases over one sample log: each phase hands the engine only the tasks the log lacks, so a
killed run resumes where it stopped (red teaming, Constitutional AI's stages).

Tasks are the engine's generator tasks keyed by (id, step); each returns a sample dict with "id" and
"condition" (the step), appended to the log as it finishes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Runtime:
    """How models run: batch size, backend options, the response cache, progress bars."""

    batch_size: int = 16
    backend_options: dict = field(default_factory=dict)
    use_cache: bool = True
    cache_path: Path | None = None
    progress: bool = True


class PhasedRun:
    def __init__(self, runtime) -> None:
        self.runtime = runtime  # a Runtime, or anything with its fields
        self.backends: dict[str, object] = {}
        self.log = None
        self.cache = None
        self.done: dict[tuple[str, str], dict] = {}

    def backend(self, spec: str):
        if spec not in self.backends:
            from alignlab.models import load_model

            self.backends[spec] = load_model(
                spec, batch_size=self.runtime.batch_size, **(self.runtime.backend_options or {})
            )
        return self.backends[spec]

    def open_log(self, run, identity: dict, extra: dict) -> None:
        """Open (or resume) `run`'s sample log and the response cache."""
        from alignlab.engine import ResponseCache
        from alignlab.paths import cache_dir

        self.log, _ = run.open(identity, extra=extra)
        self.done = {(x["id"], x["condition"]): x for x in self.log.read()}
        r = self.runtime
        self.cache = ResponseCache(r.cache_path or cache_dir() / "responses.sqlite") if r.use_cache else None

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
        if self.cache is not None:
            self.cache.close()

    def release(self, spec: str) -> None:
        """Free a model's memory once its phases are over (training loads its own copy)."""
        self.backends.pop(spec, None)

    def run_phase(self, spec: str, tasks: dict, description: str) -> None:
        from alignlab.engine import Engine

        tasks = {k: t for k, t in tasks.items() if k not in self.done}
        if not tasks:
            return
        engine = Engine(
            self.backend(spec),
            cache=self.cache,
            batch_size=self.runtime.batch_size,
            show_progress=self.runtime.progress,
        )

        def keep(sample: dict) -> None:
            self.log.append(sample)
            self.done[(sample["id"], sample["condition"])] = sample

        engine.run_tasks(tasks, on_sample=keep, description=description)

    def got(self, key: str, step: str) -> dict:
        return self.done[(key, step)]
