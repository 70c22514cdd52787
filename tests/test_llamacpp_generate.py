"""Continuous batched generation in the llama.cpp backend (llamacpp_generate.py) on the bundled SmolLM2.

The property everything rests on: a request's text depends only on its prompt and seed, bit for bit, not on
the requests it is batched with, the slot it lands in, or whether its prompt's keys/values were decoded
or copied. Every test here runs in a child process (`isolated`, see crash_isolation.py).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from alignlab.models import bundled, load_model
from alignlab.models.base import Chat, GenerateRequest
from alignlab.models.llamacpp_sampling import choose_token

pytestmark = [
    pytest.mark.isolated,
    pytest.mark.slow,
    pytest.mark.llamacpp,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None,
        reason="llama-cpp-python is not installed (pip install 'alignlab[llamacpp]')",
    ),
    pytest.mark.skipif(
        not bundled.is_installed(bundled.BUNDLED["smollm2-135m"]),
        reason="the bundled smollm2-135m is not installed (alignlab models install smollm2-135m)",
    ),
]

SPEC = "llamacpp:smollm2-135m"
COUNT = Chat(messages=(("user", "Count from 1 to 20, one number per line."),))
QUESTION = Chat(messages=(("user", "Is the sky blue? Answer in one sentence."),))
STORY = "Once upon a time"


@pytest.fixture(scope="module")
def llama():
    backend = load_model(SPEC)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def two_slots(llama):
    backend = load_model(SPEC, gen_width=2)
    yield backend
    backend.close()


def sample(prompt, seed, max_tokens=16, **kw):
    return GenerateRequest(prompt, max_tokens=max_tokens, temperature=1.0, seed=seed, **kw)


def alone(backend, requests):
    return [backend.generate([r])[0] for r in requests]


def test_a_sample_depends_on_its_seed_alone(llama):
    target = sample(QUESTION, seed=7)
    (by_itself,) = llama.generate([target])
    others = [
        sample(STORY, seed=1, max_tokens=8),
        GenerateRequest(COUNT, max_tokens=20),  # greedy
        GenerateRequest(QUESTION, max_tokens=5),  # greedy, same prompt: shares its keys/values
        sample(STORY, seed=3, max_tokens=12, top_p=0.9),
        sample(QUESTION, seed=8, max_tokens=24),
    ]
    first = llama.generate(others[:2] + [target] + others[2:])
    last = llama.generate(others[::-1] + [target])
    assert first[2] == last[-1] == by_itself
    assert by_itself.text.strip() and by_itself.finish_reason in ("stop", "length")
    assert llama.generate([sample(QUESTION, seed=9)])[0].text != by_itself.text


def test_rows_finish_at_their_own_stop_and_max_tokens(llama):
    requests = [
        GenerateRequest(COUNT, max_tokens=3),
        sample(STORY, seed=2, max_tokens=10),
        GenerateRequest(COUNT, max_tokens=20),
        GenerateRequest(COUNT, max_tokens=20, stop=("4",)),
        sample(QUESTION, seed=5, max_tokens=20, stop=("blue",)),
    ]
    results = llama.generate(requests)
    assert results == alone(llama, requests)
    short, story, long, stopped, _ = results
    assert short.finish_reason == "length" and len(llama.encode(short.text)) <= 3
    assert story.finish_reason == "length" and len(llama.encode(story.text)) <= 10
    assert long.finish_reason == "length" and long.text.startswith(short.text)
    assert stopped.finish_reason == "stop" and "4" not in stopped.text
    assert long.text[len(stopped.text)] == "4"  # cut exactly at the stop string


def test_a_prompt_that_does_not_fit_fails_alone():
    small = load_model(SPEC, n_ctx=256, gen_width=2)
    good = [sample(STORY, seed=1, max_tokens=12), GenerateRequest(COUNT, max_tokens=10)]
    requests = [good[0], GenerateRequest("word " * 300, max_tokens=8), good[1], GenerateRequest("")]
    results = small.generate(requests)
    too_long, empty = results[1], results[3]
    assert too_long.finish_reason == "error" and too_long.text == ""
    n_tokens = len(small.encode("word " * 300))
    assert f"{n_tokens} tokens" in too_long.error and "n_ctx=256" in too_long.error
    assert SPEC in too_long.error and "\n" not in too_long.error
    assert empty.finish_reason == "error" and "empty prompt" in empty.error and SPEC in empty.error
    assert [results[0], results[2]] == alone(small, good)
    assert all(r.error is None for r in alone(small, good))
    small.close()


def test_samples_of_one_prompt_decode_it_once(two_slots):
    """Seven requests for one question on two slots, after a short other one: the question's prompt is
    decoded once, then copied from a running sample (with its generated tokens dropped) or kept in the
    slot of a finished one; every request gets what it gets alone."""
    gen = two_slots
    samples = [sample(QUESTION, seed=s, max_tokens=4 + 3 * s) for s in range(6)]
    requests = [sample(STORY, seed=1, max_tokens=3)] + samples[:3]
    requests += [GenerateRequest(QUESTION, max_tokens=6)] + samples[3:]
    prompt_tokens = len(gen.encode(gen.render(QUESTION))) + len(gen.encode(STORY))
    expected = alone(gen, requests)
    before = (gen._gen.prompt_tokens_decoded, gen._gen.stream_copies)
    results = gen.generate(requests)
    decoded = gen._gen.prompt_tokens_decoded - before[0]
    copies = gen._gen.stream_copies - before[1]
    assert results == expected
    assert decoded == prompt_tokens and copies >= 1
    assert len({r.text for r in results}) == len(results)
    gen.share_prefixes = False  # the benchmarks' baseline: each request decodes its prompt
    try:
        assert gen.generate(requests) == expected
    finally:
        gen.share_prefixes = True


def test_more_requests_than_slots(llama, two_slots):
    """Two slots refilled five times over give what sixteen slots give (rows finishing at different
    times also move running rows down into freed slots there)."""
    requests = [
        GenerateRequest(COUNT, max_tokens=20),
        sample(STORY, seed=4, max_tokens=3),
        sample(QUESTION, seed=4, max_tokens=12),
        GenerateRequest(STORY, max_tokens=6),
        sample(COUNT, seed=1, max_tokens=18, stop=("5",)),
    ]
    copies = llama._gen.stream_copies if llama._gen else 0
    wide = llama.generate(requests)
    assert llama._gen.stream_copies > copies  # the early finishers left gaps below running rows
    assert two_slots.generate(requests) == wide


def reference(backend, request: GenerateRequest) -> str:
    """The old one-request loop over the scoring path's logits: each token decoded as a batch of one."""
    tokens = backend.encode(backend.render(request.prompt))
    segments = backend._plan(len(tokens), len(tokens))
    rng = np.random.default_rng(request.seed) if request.temperature > 0 else None
    out = b""
    for _ in range(request.max_tokens):
        if segments[-1][1] < len(tokens):
            segments.append((len(tokens) - 1, len(tokens)))
        logits = backend._eval(tokens, segments, [len(tokens) - 1])[len(tokens) - 1]
        token = choose_token(logits, request.temperature, request.top_p, rng)
        if backend._lib.llama_vocab_is_eog(backend._vocab, token):
            break
        tokens.append(token)
        out += backend._piece(token)
    return out.decode("utf-8", errors="replace")


def test_batched_generation_equals_the_single_sequence_loop(llama):
    requests = [
        GenerateRequest(COUNT, max_tokens=24),
        GenerateRequest(QUESTION, max_tokens=24),
        GenerateRequest(STORY, max_tokens=24),
        sample(STORY, seed=11, max_tokens=24),
    ]
    results = llama.generate(requests)
    assert [r.text for r in results] == [reference(llama, r) for r in requests]


def test_gen_width_option_and_batch_hint(two_slots):
    assert two_slots.info()["generate_width"] == 2 and two_slots.generate_batch_hint == 8
    assert two_slots.generate([GenerateRequest(STORY, max_tokens=0)])[0].finish_reason == "length"
