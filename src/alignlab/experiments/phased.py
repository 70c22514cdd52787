"""A run made of phases over one sample log: each phase hands the engine only the tasks the log lacks, so a
killed run resumes where it stopped (every pipeline's run, and the stages of Constitutional AI).

Tasks are the engine's generator tasks keyed by (id, step); each returns a sample dict with "id" and
"condition" (the step), appended to the log as it finishes.
"""

from __future__ import annotations

from alignlab.experiments.run_options import RunOptions, load_backend, make_engine


class PhasedRun:
    def __init__(self, runtime: RunOptions) -> None:
        self.runtime = runtime
        self.backends: dict[str, object] = {}
        self._fingerprints: dict[str, str] = {}
        self.log = None
        self.cache = None
        self.done: dict[tuple[str, str], dict] = {}

    def backend(self, spec: str):
        if spec not in self.backends:
            backend = load_backend(spec, self.runtime)
            backend.check()  # an unreachable server fails here, before any work
            self.backends[spec] = backend
        return self.backends[spec]

    def fingerprint_of(self, spec: str) -> str:
        """A model's fingerprint, loading it once (and remembered after the model is released)."""
        if spec not in self._fingerprints:
            self._fingerprints[spec] = self.backend(spec).fingerprint()
        return self._fingerprints[spec]

    def open_log(self, run, identity: dict, extra: dict, keep_metrics: bool = False) -> bool:
        """Open (or resume) `run`'s sample log (a RunFolder) and the response cache; returns resumed?"""
        from alignlab.experiments.run_options import cache_path, open_response_cache

        self.log, resumed = run.open(identity, extra=extra, keep_metrics=keep_metrics)
        self.done = {(x["id"], x["condition"]): x for x in self.log.read()}
        path = cache_path(self.runtime, run.path)  # with --no-cache, the run's own journal
        if path is not None and self.cache is None:
            self.cache = open_response_cache(path, journal=not self.runtime.use_cache)
        return resumed

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None
        if self.cache is not None:
            self.cache.close()
            self.cache = None
        if self.runtime.executor == "ray":
            for backend in self.backends.values():
                getattr(backend, "close", lambda: None)()  # its workers hold a CPU each until closed

    def release(self, spec: str) -> None:
        """Free a model's memory once its phases are over (training loads its own copy)."""
        self.backends.pop(spec, None)

    def run_phase(self, spec: str, tasks: dict, description: str) -> None:
        """Run a phase's tasks (every one, in order: the engine batches by position and skips what is
        done, so a resumed phase batches as a whole one)."""
        done = {k for k in tasks if k in self.done}
        if len(done) == len(tasks):
            return

        def keep(sample: dict) -> None:
            self.log.append(sample)
            self.done[(sample["id"], sample["condition"])] = sample

        make_engine(self.backend(spec), self.cache, self.runtime).run_tasks(
            tasks, on_sample=keep, description=description, done=done
        )

    def got(self, key: str, step: str) -> dict:
        return self.done[(key, step)]
