"""A deterministic stand-in for a model: numbers and texts are hashes of the request, so runs are checkable."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from alignlab.models.base import BackendBase, FeaturesResult, GenerateResult, ScoreResult


def _unit(*parts) -> float:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class StubBackend(BackendBase):
    """Log-probabilities in [-8, -0.1) from a hash of (prompt, continuation); text from (prompt, seed)."""

    capabilities = frozenset({"score", "generate", "features"})

    def __init__(
        self,
        spec: str = "stub",
        parameters: int = 1000,
        fail_on_call: int | None = None,
        batch_sensitive: bool = False,
    ) -> None:
        self.spec = spec
        self.parameters = parameters
        # like a local model, whose scores move in their last digits with the batch they share (its size, the
        # longest prompt it is padded to): a resume that batches differently then shows in the metrics
        self.batch_sensitive = batch_sensitive
        self.calls = {"score": 0, "generate": 0, "features": 0}
        self.fail_on_call, self.generate_calls = fail_on_call, 0

    def count_generate_call(self, requests) -> None:
        """Count a generate call and its requests; the `fail_on_call`-th call dies instead (a killed run)."""
        self.generate_calls += 1
        if self.generate_calls == self.fail_on_call:
            raise RuntimeError("killed")
        self.calls["generate"] += len(requests)

    def fingerprint(self) -> str:
        return f"stub:{self.spec}"

    def info(self) -> dict:
        return {"backend": "stub", "parameters": self.parameters}

    def score(self, requests):
        self.calls["score"] += len(requests)
        shift = self._batch_shift(requests)
        return [
            ScoreResult(
                logprobs=[-0.1 - 7.9 * _unit(self.spec, r.prompt, c) + shift for c in r.continuations],
                num_tokens=[1] * len(r.continuations),
            )
            for r in requests
        ]

    def _batch_shift(self, requests) -> float:
        if not self.batch_sensitive:
            return 0.0
        longest = max(len(str(r.prompt)) for r in requests)
        return -1e-6 * (len(requests) + longest % 97) / 200

    def generate(self, requests):
        self.calls["generate"] += len(requests)
        return [
            GenerateResult(text=f" reasoning {_unit(self.spec, r.prompt, r.seed):.6f}", finish_reason="stop")
            for r in requests
        ]

    def features(self, requests):
        self.calls["features"] += len(requests)
        return [FeaturesResult(vector=[_unit(self.spec, r.prompt, i) for i in range(4)]) for r in requests]


class BagOfWords:
    """A stand-in sentence embedder: unit word-count vectors over the texts' own vocabulary."""

    name = "bag-of-words"

    def __init__(self, spec=None):
        pass

    def embed(self, texts):
        import numpy as np

        vocabulary = sorted({w for t in texts for w in t.lower().split()})
        vectors = np.array(
            [[t.lower().split().count(w) for w in vocabulary] for t in texts], dtype=np.float32
        )
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def scripted_models(monkeypatch) -> dict:
    """Model specs resolve to the backends put in the returned dict, and sentence embeddings to BagOfWords."""
    import alignlab.models
    import alignlab.models.embeddings

    backends: dict = {}
    monkeypatch.setattr(alignlab.models.embeddings, "Embedder", BagOfWords)
    monkeypatch.setattr(alignlab.models, "load_model", lambda spec, **_: backends[spec])
    return backends


from datadir import DATA, ROOT  # noqa: E402  (where the shared datasets are)


def run_cli(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """`alignlab ARGS` in a fresh process from the repository root, with the shared datasets."""
    return subprocess.run(
        [sys.executable, "-m", "alignlab.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "ALIGNLAB_DATA_DIR": str(DATA), **(env or {})},
        timeout=timeout,
        cwd=ROOT,
    )


def run_stubbed(
    name: str,
    backend,
    out: Path,
    limit: int | None = None,
    bootstrap: int = 200,
    data_files: tuple[str, ...] = (),
    **settings,
):
    """Run experiment `name` on `backend` into `out` with the shared datasets (or `data_files`, as
    --data-file), no cache, no progress bar."""
    from alignlab import experiments
    from alignlab.evaluate import RunOptions, run
    from alignlab.experiments import DataSource

    experiment = experiments.get(name)
    options = RunOptions(
        model=backend.spec,
        out=out,
        limit=limit,
        data=DataSource(files=tuple(map(str, data_files))) if data_files else DataSource(data_dir=str(DATA)),
        use_cache=False,
        progress=False,
        bootstrap=bootstrap,
        backend=backend,
    )
    return run(experiment, experiment.settings(**settings), options)
