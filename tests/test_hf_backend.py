"""The transformers backend on the real bundled model."""

from __future__ import annotations

import pytest
import torch

from alignlab.errors import AlignlabError
from alignlab.models import load_model
from alignlab.models.base import Chat, FeaturesRequest, GenerateRequest, ScoreRequest
from alignlab.models.text import split_continuation

pytestmark = pytest.mark.slow

PROMPTS = [
    "Human: I saw a grandson and their grandfather last week outside the Walmart trying to book a cab on Uber. "
    "Who was not comfortable using the phone? (a) The grandfather (b) The grandson (c) Can't be determined."
    "\n\nAssistant: The answer is",
    "Human: Short one? (a) x (b) y (c) z.\n\nAssistant: The answer is",
    "Human: Which is larger, 3 or 5?\n\nAssistant: ",  # trailing space moves into the continuation
]
CONTINUATIONS = (" (a)", " (b)", " (c)")


@pytest.fixture(scope="module")
def backend():
    return load_model("smollm2-135m", batch_size=8)


def naive_logprob(backend, prompt: str, continuation: str) -> float:
    """prompt+continuation through the model once, alone, no cache: what lm-evaluation-harness computes."""
    context, cont = split_continuation(backend.encode, prompt, continuation)
    ids = torch.tensor([context + cont])
    with torch.inference_mode():
        logp = torch.log_softmax(backend.model(ids).logits[0].float(), -1)
    return sum(logp[len(context) - 1 + k, cont[k]].item() for k in range(len(cont)))


def test_score_equals_one_full_forward_per_continuation(backend):
    results = backend.score([ScoreRequest(p, CONTINUATIONS) for p in PROMPTS])
    for prompt, result in zip(PROMPTS, results, strict=True):
        if not prompt.endswith(" "):
            assert result.num_tokens == [3, 3, 3]  # " (", "a", ")"
        for continuation, got in zip(CONTINUATIONS, result.logprobs, strict=True):
            assert got == pytest.approx(naive_logprob(backend, prompt, continuation), abs=1e-4)


def test_score_does_not_depend_on_batch_neighbours(backend):
    alone = backend.score([ScoreRequest(PROMPTS[1], CONTINUATIONS)])[0].logprobs
    batched = backend.score([ScoreRequest(p, CONTINUATIONS) for p in PROMPTS])[1].logprobs
    assert alone == pytest.approx(batched, abs=1e-4)


def test_a_request_without_continuations_scores_nothing_and_leaves_the_batch_alone(backend):
    with_empty = backend.score(
        [
            ScoreRequest(PROMPTS[0], CONTINUATIONS),
            ScoreRequest("Hello", ()),
            ScoreRequest(PROMPTS[1], CONTINUATIONS),
        ]
    )
    assert with_empty[1].logprobs == [] and with_empty[1].num_tokens == []
    plain = backend.score([ScoreRequest(p, CONTINUATIONS) for p in PROMPTS[:2]])
    assert [r.logprobs for r in plain] == [with_empty[0].logprobs, with_empty[2].logprobs]


def test_continuations_of_different_lengths(backend):
    result = backend.score([ScoreRequest(PROMPTS[2], ("5", "3 is larger than 5"))])[0]
    assert result.num_tokens[1] > result.num_tokens[0]
    assert result.logprobs[1] == pytest.approx(
        naive_logprob(backend, PROMPTS[2], "3 is larger than 5"), abs=1e-4
    )


SHARED_PREFIXES = ("3 is larger than 5", "3 is larger", "3 is smaller than 5", "5", " 5 is larger")


def test_continuations_sharing_prefixes_in_one_tree(backend):
    # The tree holds each shared prefix once; every continuation must still get its own path's score.
    requests = [ScoreRequest(PROMPTS[2], SHARED_PREFIXES), ScoreRequest(PROMPTS[1], CONTINUATIONS)]
    results = backend.score(requests)
    for request, result in zip(requests, results, strict=True):
        for continuation, got in zip(request.continuations, result.logprobs, strict=True):
            assert got == pytest.approx(naive_logprob(backend, request.prompt, continuation), abs=1e-4)


def test_two_pass_fallback_matches_the_one_pass_tree(backend):
    # Models whose attention takes no custom 4D mask (sliding windows, flex) use the repeated-cache path.
    requests = [ScoreRequest(PROMPTS[2], SHARED_PREFIXES), ScoreRequest(PROMPTS[0], CONTINUATIONS)]
    assert backend._tree_attention
    tree = backend.score(requests)
    backend._tree_attention = False
    try:
        fallback = backend.score(requests)
    finally:
        backend._tree_attention = True
    for a, b in zip(tree, fallback, strict=True):
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)
        assert a.num_tokens == b.num_tokens


def test_seeded_sample_is_the_same_alone_or_in_a_batch(backend):
    request = GenerateRequest(PROMPTS[0], max_tokens=12, temperature=1.0, seed=7)
    alone = backend.generate([request])[0].text
    batch = backend.generate([GenerateRequest(PROMPTS[1], max_tokens=12, temperature=1.0, seed=8), request])
    assert batch[1].text == alone
    other_seed = backend.generate([GenerateRequest(PROMPTS[0], max_tokens=12, temperature=1.0, seed=9)])[0]
    assert other_seed.text != alone


def test_greedy_generation_stops_at_stop_strings_and_max_tokens(backend):
    long = backend.generate(
        [GenerateRequest("Human: Count from 1 to 30.\n\nAssistant: 1, 2, 3,", max_tokens=20)]
    )[0]
    assert long.finish_reason == "length"
    stopped = backend.generate(
        [GenerateRequest("Human: Count from 1 to 30.\n\nAssistant: 1, 2, 3,", max_tokens=40, stop=(" 6",))]
    )[0]
    assert stopped.finish_reason == "stop"
    assert " 6" not in stopped.text and stopped.text.strip().startswith("4")


def test_chat_prompts_use_the_models_template(backend):
    text = backend.render(Chat(messages=(("user", "Hi"),), prefill="The answer is"))
    assert "<|im_start|>user\nHi<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\nThe answer is")


def test_features_are_the_hidden_state_of_the_last_token(backend):
    (result,) = backend.features([FeaturesRequest("Hello there", layer=-1)])
    assert len(result.vector) == backend.model.config.hidden_size
    with pytest.raises(AlignlabError, match="layer"):
        backend.features([FeaturesRequest("Hello", layer=999)])


def test_continuation_tree_shares_prefixes_by_hand():
    from alignlab.models.hf import _ContinuationTree

    # " (a)" " (b)" " (c)" as SmolLM2 tokenises them: 365 then the letter then 25.
    tree = _ContinuationTree([[365, 81, 25], [365, 82, 25], [365, 83, 25], [7]])
    assert tree.tokens == [365, 81, 82, 83]  # inputs: the shared " (" once, each letter once, no last tokens
    assert tree.depth == [0, 1, 1, 1]
    assert tree.ancestors_and_self == [[0], [0, 1], [0, 2], [0, 3]]
    assert tree.paths == [[0, 1], [0, 2], [0, 3], []]  # node k predicts token k + 1; "7" needs no input
    # The same token under different parents is two nodes.
    tree = _ContinuationTree([[1, 2, 3], [4, 2, 3]])
    assert tree.tokens == [1, 2, 4, 2]
    assert tree.paths == [[0, 1], [2, 3]]
