"""The engine with a fake backend: caching, batching, task driving, the sample log's crash repair."""

from __future__ import annotations

import json

import pytest

from alignlab.engine import Engine, ResponseCache, SampleLog
from alignlab.errors import AlignlabError, UnsupportedRequest
from alignlab.models.base import (
    BackendBase,
    GenerateRequest,
    GenerateResult,
    ScoreRequest,
    ScoreResult,
    request_key,
    require,
)


class FakeBackend(BackendBase):
    spec = "fake"
    capabilities = frozenset({"score", "generate"})

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.seen: list = []

    def fingerprint(self) -> str:
        return "fake-1"

    def info(self) -> dict:
        return {"backend": "fake"}

    def score(self, requests):
        self.calls.append(("score", len(requests)))
        self.seen.extend(requests)
        # log-prob = -len(continuation) - len(prompt)/1000: deterministic and checkable
        return [
            ScoreResult(
                logprobs=[-len(c) - len(r.prompt) / 1000 for c in r.continuations], num_tokens=[1] * 3
            )
            for r in requests
        ]

    def generate(self, requests):
        self.calls.append(("generate", len(requests)))
        self.seen.extend(requests)
        return [GenerateResult(text=f"<{r.prompt}|{r.seed}>") for r in requests]


def two_stage(i: int):
    reasoning = yield GenerateRequest(prompt=f"p{i}", seed=i)
    scored = yield ScoreRequest(prompt=reasoning.text + "?", continuations=("a", "bb", "ccc"))
    return {"id": str(i), "condition": "c", "reasoning": reasoning.text, "logprobs": scored.logprobs}


def test_tasks_run_in_waves_and_return_their_samples(tmp_path):
    backend = FakeBackend()
    engine = Engine(backend, batch_size=4, max_concurrency=1, show_progress=False)
    samples = []
    count = engine.run_tasks({i: two_stage(i) for i in range(10)}, on_sample=samples.append)
    assert count == 10
    by_id = {s["id"]: s for s in samples}
    assert by_id["3"]["reasoning"] == "<p3|3>"
    assert by_id["3"]["logprobs"][1] == pytest.approx(-2 - len("<p3|3>?") / 1000)
    # the ten tasks are one block (4 chunks of 4): each step in chunks, longest prompt first
    assert backend.calls == [
        ("generate", 4),
        ("generate", 4),
        ("generate", 2),
        ("score", 4),
        ("score", 4),
        ("score", 2),
    ]


def test_samples_stream_out_before_every_first_stage_is_done():
    backend = FakeBackend()
    finished_after_calls = []
    engine = Engine(backend, batch_size=4, max_concurrency=1, show_progress=False)
    engine.run_tasks(
        {i: two_stage(i) for i in range(40)},
        on_sample=lambda s: finished_after_calls.append(len(backend.calls)),
    )
    # blocks of 16 tasks: the first samples arrive after the first block's 4 generate batches and one score
    # batch, long before the other 6 generate batches
    assert finished_after_calls[0] == 5
    assert len(finished_after_calls) == 40


def padded(i: int):
    scored = yield ScoreRequest(prompt="x" * (i % 7 + 1) + str(i), continuations=("a",))
    return {"id": str(i), "condition": "c", "logprob": scored.logprobs[0]}


class BatchSensitive(FakeBackend):
    """Scores that move with the batch's size and longest prompt, as a local model's do."""

    def score(self, requests):
        results = super().score(requests)
        shift = 1e-6 * (len(requests) + max(len(r.prompt) for r in requests))
        return [ScoreResult([lp + shift for lp in r.logprobs], r.num_tokens) for r in results]


@pytest.mark.parametrize("kept", [[0, 1, 2], [5, 17, 30, 31], list(range(16)), [39]])
def test_a_resumed_run_batches_as_an_uninterrupted_one(kept):
    whole: dict = {}
    Engine(BatchSensitive(), batch_size=4, max_concurrency=1, show_progress=False).run_tasks(
        {i: padded(i) for i in range(40)}, lambda s: whole.update({s["id"]: s})
    )
    backend, resumed = BatchSensitive(), {}
    new = Engine(backend, batch_size=4, max_concurrency=1, show_progress=False).run_tasks(
        {i: padded(i) for i in range(40)}, lambda s: resumed.update({s["id"]: s}), done={*kept}
    )
    assert new == 40 - len(kept) and not {str(k) for k in kept} & set(resumed)
    assert resumed == {k: v for k, v in whole.items() if int(k) not in kept}  # to the last digit
    # blocks of 16: one whose samples are all kept is not asked again; the rest run whole
    whole_blocks_kept = sum(all(i in kept for i in range(b, min(b + 16, 40))) for b in (0, 16, 32))
    assert len(backend.seen) == 40 - 16 * whole_blocks_kept


def test_a_batch_invariant_backend_is_asked_only_what_is_not_done():
    backend = FakeBackend()
    backend.batch_invariant = True
    out = []
    Engine(backend, batch_size=4, show_progress=False).run_tasks(
        {i: padded(i) for i in range(40)}, out.append, done={0, 1, 2, 39}
    )
    assert len(out) == len(backend.seen) == 36


def test_cache_answers_repeated_requests_without_the_backend(tmp_path):
    cache = ResponseCache(tmp_path / "r.sqlite")
    first = FakeBackend()
    Engine(first, cache=cache, show_progress=False).run_tasks(
        {i: two_stage(i) for i in range(5)}, lambda s: None
    )
    second = FakeBackend()
    out = []
    Engine(second, cache=cache, show_progress=False).run_tasks(
        {i: two_stage(i) for i in range(7)}, out.append
    )
    assert len(out) == 7
    assert sum(n for _, n in second.calls) == 4  # only the 2 new tasks' 2 requests each
    assert len(cache) == 14


def test_cache_is_keyed_by_model_fingerprint(tmp_path):
    cache = ResponseCache(tmp_path / "r.sqlite")
    request = ScoreRequest(prompt="x", continuations=("a",))
    cache.put_many("model-a", [(request_key(request), "score", ScoreResult([-1.0], [1]))])
    assert cache.get_many("model-b", [request_key(request)]) == {}
    assert cache.get_many("model-a", [request_key(request)])[request_key(request)].logprobs == [-1.0]


def test_request_key_depends_on_every_field():
    base = GenerateRequest(prompt="x", seed=1)
    assert request_key(base) == request_key(GenerateRequest(prompt="x", seed=1))
    assert request_key(base) != request_key(GenerateRequest(prompt="x", seed=2))
    assert request_key(base) != request_key(GenerateRequest(prompt="x", seed=1, temperature=0.5))
    assert request_key(ScoreRequest("x", ("a",))) != request_key(ScoreRequest("x", ("b",)))


def test_duplicate_requests_in_a_chunk_are_computed_once():
    backend = FakeBackend()
    results = Engine(backend, show_progress=False).run_requests([ScoreRequest("same", ("a",))] * 5)
    assert len(results) == 5
    assert backend.calls == [("score", 1)]


def test_batches_are_sorted_by_prompt_length():
    backend = FakeBackend()
    prompts = ["x" * n for n in (5, 50, 1, 20, 30, 2)]
    Engine(backend, batch_size=2, max_concurrency=1, show_progress=False).run_requests(
        [ScoreRequest(p, ("a",)) for p in prompts]
    )
    assert [len(r.prompt) for r in backend.seen] == [50, 30, 20, 5, 2, 1]


def test_require_fails_before_work_for_a_missing_kind():
    backend = FakeBackend()
    with pytest.raises(UnsupportedRequest, match="features"):
        require(backend, {"score", "features"})


def test_sample_log_drops_a_half_written_last_line(tmp_path):
    path = tmp_path / "samples.jsonl"
    path.write_text(json.dumps({"id": "1", "condition": "q"}) + "\n" + '{"id": "2", "cond')
    log = SampleLog(path)
    assert log.done() == {("1", "q")}
    log.append({"id": "2", "condition": "q"})
    log.close()
    lines = path.read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["1", "2"]


def test_a_task_yielding_a_list_gets_the_list_of_results_batched_with_the_others():
    backend = FakeBackend()

    def fan_out(i: int):
        reasons = yield [GenerateRequest(prompt=f"p{i}-{j}", seed=j) for j in range(3)]
        scores = yield [ScoreRequest(prompt=r.text, continuations=("a", "bb", "ccc")) for r in reasons]
        nothing = yield []  # an empty list is answered at once
        single = yield ScoreRequest(prompt=f"q{i}", continuations=("a", "bb", "ccc"))
        return {"id": str(i), "condition": "c", "reasons": [r.text for r in reasons], "n": len(scores),
                "nothing": nothing, "single": single.logprobs}  # fmt: skip

    engine = Engine(backend, cache=None, batch_size=64, show_progress=False)
    samples = {}
    engine.run_tasks({i: fan_out(i) for i in range(4)}, on_sample=lambda s: samples.update({s["id"]: s}))
    assert samples["2"]["reasons"] == ["<p2-0|0>", "<p2-1|1>", "<p2-2|2>"]  # in the order asked
    assert samples["2"]["n"] == 3 and samples["2"]["nothing"] == [] and len(samples["2"]["single"]) == 3
    # all 4 tasks' 3 generations in one batch, their 12 scores in one, then the 4 single scores
    assert backend.calls == [("generate", 12), ("score", 12), ("score", 4)]


class FailingOnLongPrompts(FakeBackend):
    """Answers every generate request but those whose prompt is too long, which fail alone."""

    generate_batch_hint = 40

    def generate(self, requests):
        self.calls.append(("generate", len(requests)))
        return [
            GenerateResult(text="", finish_reason="error", error=f"prompt {r.prompt!r} is too long")
            if len(r.prompt) > 3
            else GenerateResult(text=f"<{r.prompt}>")
            for r in requests
        ]


def test_a_failed_request_stops_the_run_after_the_rest_of_its_batch_is_cached(tmp_path):
    cache = ResponseCache(tmp_path / "r.sqlite")
    backend = FailingOnLongPrompts()
    tasks = {i: two_stage(i) for i in range(5)} | {"long": two_stage(12345)}
    with pytest.raises(AlignlabError, match="generate request failed: prompt 'p12345' is too long"):
        Engine(backend, cache=cache, show_progress=False).run_tasks(tasks, lambda s: None)
    assert backend.calls == [("generate", 6)]  # one call: the hint is above the 16-request chunk
    assert len(cache) == 5  # the five good answers, not the error
    rerun = FailingOnLongPrompts()
    out = []
    Engine(rerun, cache=cache, show_progress=False).run_tasks({i: two_stage(i) for i in range(5)}, out.append)
    assert len(out) == 5
    assert [kind for kind, _ in rerun.calls] == ["score"]  # nothing generated twice


def test_generate_chunks_follow_the_backends_hint():
    backend = FailingOnLongPrompts()
    Engine(backend, show_progress=False).run_tasks({i: two_stage(i) for i in range(100)}, lambda s: None)
    # blocks of 64 tasks (4 chunks of 16), each block's generation in chunks of the hint
    assert [n for kind, n in backend.calls if kind == "generate"] == [40, 24, 36]
    assert max(n for kind, n in backend.calls if kind == "score") == 16
