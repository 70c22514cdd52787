"""The Ray executor: the same answers as the local backend, spread over two workers."""

from __future__ import annotations

import pytest

ray = pytest.importorskip("ray", reason="ray is an extra: pip install 'alignlab[ray]'")

from alignlab.engine import Engine  # noqa: E402
from alignlab.engine.ray_backend import RayBackend  # noqa: E402
from alignlab.models import load_model  # noqa: E402
from alignlab.models.base import GenerateRequest, ScoreRequest  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_backend():
    backend = RayBackend("smollm2-135m", workers=2, batch_size=4)
    yield backend
    backend.close()
    ray.shutdown()


def test_ray_workers_answer_like_the_local_backend(ray_backend):
    local = load_model("smollm2-135m", batch_size=4)
    assert ray_backend.fingerprint() == local.fingerprint()
    assert ray_backend.parallelism == 2
    requests = [
        ScoreRequest(
            f"Human: Question {i}? (a) yes (b) no (c) maybe.\n\nAssistant: The answer is",
            (" (a)", " (b)", " (c)"),
        )
        for i in range(6)
    ]
    engine = Engine(ray_backend, batch_size=2, max_concurrency=1, show_progress=False)
    assert engine.chunk_size == 4  # a full batch for each worker
    remote = engine.run_requests(requests)
    here = local.score(requests)
    for r, h in zip(remote, here, strict=True):
        assert r.logprobs == pytest.approx(h.logprobs, abs=1e-4)
    gen = GenerateRequest("Human: Say hi.\n\nAssistant:", max_tokens=8, temperature=1.0, seed=3)
    assert ray_backend.generate([gen])[0].text == local.generate([gen])[0].text
