"""Ray executor: a Backend that spreads each batch over N Ray actors, each holding its own model copy.

The engine sees one backend; the actors may live on this machine or across a Ray cluster
(`address="auto"` or `ray://host:port`). Requests and results are plain dataclasses, so they travel as is.

A worker that dies (its process killed, its node lost) costs only the part of the batch it held: that part
goes to the next free worker, and a replacement worker starts loading the model for the batches after. The
answers do not depend on which worker computed them (each request carries its own seed), so a run with a
dead worker ends with the same results as one without.
"""

from __future__ import annotations

import sys
from collections import deque

from alignlab.errors import AlignlabError
from alignlab.models.base import BackendBase


class _Worker:
    def __init__(self, spec: str, options: dict, threads: int | None) -> None:
        if threads:
            import torch

            torch.set_num_threads(threads)
        from alignlab.models import load_model

        self.backend = load_model(spec, **options)

    def describe(self) -> tuple[list[str], str, dict]:
        return sorted(self.backend.capabilities), self.backend.fingerprint(), self.backend.info()

    def call(self, kind: str, requests: list) -> list:
        return getattr(self.backend, kind)(requests)


class RayBackend(BackendBase):
    def __init__(
        self,
        spec: str,
        workers: int = 2,
        address: str | None = None,
        threads_per_worker: int | None = 1,
        gpus_per_worker: float = 0,
        **options,
    ) -> None:
        try:
            import ray
        except ImportError as exc:
            raise AlignlabError("the ray executor needs ray: pip install 'alignlab[ray]'") from exc
        if workers < 1:
            raise AlignlabError(f"--workers must be at least 1, got {workers}")
        self._ray = ray
        if not ray.is_initialized():
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise AlignlabError(
                    f"cannot start or reach Ray at {address or 'a local cluster'}: {exc}"
                ) from exc
        if gpus_per_worker < 0:
            raise AlignlabError(f"--gpus-per-worker must not be negative, got {gpus_per_worker:g}")
        # Ray sets CUDA_VISIBLE_DEVICES for a worker that reserves GPUs, so each copy lands on its own
        worker = ray.remote(num_cpus=threads_per_worker or 1, num_gpus=gpus_per_worker)(_Worker)
        self._new_actor = lambda: worker.remote(spec, options, threads_per_worker)
        self.spec = spec
        self._workers = workers
        self.actors = [self._new_actor() for _ in range(workers)]
        self.lost_workers = 0  # workers that died during the run (each replaced, up to a limit)
        self.retried_requests = 0  # requests whose worker died before answering, computed again
        try:
            described = ray.get([a.describe.remote() for a in self.actors])
        except ray.exceptions.RayActorError as exc:
            raise AlignlabError(f"a Ray worker could not load model {spec!r}: {exc}") from exc
        except ray.exceptions.RayTaskError as exc:
            raise AlignlabError(f"a Ray worker could not load model {spec!r}: {exc.cause}") from exc
        capabilities, self._fingerprint, self._info = described[0]
        if any(d[1] != self._fingerprint for d in described):
            raise AlignlabError(f"Ray workers loaded different models for {spec!r} (fingerprints differ)")
        self.capabilities = frozenset(capabilities)

    @property
    def parallelism(self) -> int:
        return self._workers

    def fingerprint(self) -> str:
        return self._fingerprint

    def info(self) -> dict:
        return {**self._info, "executor": "ray", "workers": len(self.actors)}

    def _spread(self, kind: str, requests: list) -> list:
        if not requests:
            return []
        ray = self._ray
        # Contiguous slices keep the engine's length-sorted order, so each actor's batches stay tight.
        size = -(-len(requests) // max(1, len(self.actors)))
        parts = [requests[i : i + size] for i in range(0, len(requests), size)]
        results: list = [None] * len(parts)
        todo, idle, running = deque(range(len(parts))), list(self.actors), {}
        while todo or running:
            while todo and idle:
                actor, index = idle.pop(0), todo.popleft()
                running[actor.call.remote(kind, parts[index])] = (actor, index)
            if not running:
                raise AlignlabError(
                    f"every Ray worker for {self.spec!r} died; what was answered is kept, and the run "
                    "resumes from there when started again"
                )
            (ref,), _ = ray.wait(list(running), num_returns=1)
            actor, index = running.pop(ref)
            try:
                results[index] = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
                todo.append(index)
                replacement = self._replace(actor, exc, len(parts[index]))
                if replacement is not None and not idle and not running:
                    idle.append(replacement)  # nobody else is left to take the part
                continue
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause
                if isinstance(cause, AlignlabError):
                    raise AlignlabError(str(cause)) from exc
                raise
            idle.append(actor)
        return [r for part in results for r in part]

    def _replace(self, dead, exc: Exception, lost: int):
        """Forget a dead worker and start another (at most as many replacements as workers, so a model
        that kills every worker that loads it stops the run instead of looping)."""
        self.actors = [a for a in self.actors if a is not dead]
        self.lost_workers += 1
        self.retried_requests += lost
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        replacement = None
        if self.lost_workers <= self._workers:
            replacement = self._new_actor()
            self.actors.append(replacement)
        print(
            f"warning: a Ray worker died ({reason[:160]}); its {lost} requests go to another worker"
            + (
                "; a replacement is starting" if replacement is not None else "; not replaced (too many lost)"
            ),
            file=sys.stderr,
            flush=True,
        )
        return replacement

    def score(self, requests):
        return self._spread("score", requests)

    def generate(self, requests):
        return self._spread("generate", requests)

    def features(self, requests):
        return self._spread("features", requests)

    def close(self) -> None:
        for actor in self.actors:
            self._ray.kill(actor)
        self.actors = []
