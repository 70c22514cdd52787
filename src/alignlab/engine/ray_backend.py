"""Ray executor: a Backend that spreads each batch over N Ray actors, each holding its own model copy.

The engine sees one backend; the actors may live on this machine or across a Ray cluster
(`address="auto"` or `ray://host:port`). Requests and results are plain dataclasses, so they travel as is.
"""

from __future__ import annotations

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
        actor = ray.remote(num_cpus=threads_per_worker or 1)(_Worker)
        self.spec = spec
        self.actors = [actor.remote(spec, options, threads_per_worker) for _ in range(workers)]
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
        return len(self.actors)

    def fingerprint(self) -> str:
        return self._fingerprint

    def info(self) -> dict:
        return {**self._info, "executor": "ray", "workers": len(self.actors)}

    def _spread(self, kind: str, requests: list) -> list:
        # Contiguous slices keep the engine's length-sorted order, so each actor's batches stay tight.
        n = len(self.actors)
        size = -(-len(requests) // n)
        parts = [requests[i : i + size] for i in range(0, len(requests), size)]
        futures = [actor.call.remote(kind, part) for actor, part in zip(self.actors, parts, strict=False)]
        try:
            results = self._ray.get(futures)
        except self._ray.exceptions.RayTaskError as exc:
            cause = exc.cause
            if isinstance(cause, AlignlabError):
                raise AlignlabError(str(cause)) from exc
            raise
        return [r for part in results for r in part]

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
