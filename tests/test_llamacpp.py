"""The llama.cpp backend (gguf:/llamacpp: specs) on the bundled SmolLM2, checked against the transformers backend.

Every test here runs in a child process (`isolated`, see crash_isolation.py): a crash inside llama.cpp fails
the test it happened in, and the rest of the suite runs on.
"""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest
from datadir import DATA as SHARED

from alignlab.errors import AlignlabError
from alignlab.models import llamacpp_load, load_model
from alignlab.models.base import Chat, FeaturesRequest, GenerateRequest, ScoreRequest
from alignlab.models.llamacpp import LlamaCppBackend
from alignlab.models.text import split_continuation

pytestmark = pytest.mark.isolated

AGE = SHARED / "bbq" / "data" / "Age.jsonl"
CONTINUATIONS = (" (a)", " (b)", " (c)")

# hf dequantizes the Q4_1 weights to fp32; llama.cpp multiplies in quantized kernels (activations
# rounded to 8 bits). Measured on 200 BBQ prompts (150 Age + 50 Gender_identity): max |d logprob| of a
# 3-token continuation 0.35 (mean 0.077), max |d normalised 3-way probability| 0.089 (mean 0.017),
# argmax agreement 200/200 (49/50 on another 50 Age prompts). The bounds leave margin for other CPUs.
MAX_LOGPROB_DIFF = 0.6
MAX_PROB_DIFF = 0.15

needs_bbq = pytest.mark.skipif(not AGE.is_file(), reason=f"{AGE} not present")
needs_llama_cpp = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None,
    reason="llama-cpp-python is not installed (pip install 'alignlab[llamacpp]')",
)


def amx_cpu_and_build() -> bool:
    """This CPU has AMX and the installed llama.cpp has AMX kernels: where repacking crashes."""
    import llama_cpp

    flags = llamacpp_load.cpu_flags() or set()
    built = llamacpp_load.build_has_amx(llama_cpp.llama_print_system_info().decode())
    return built and any(flag in flags for flag in llamacpp_load.AMX_CPU_FLAGS)


def model_test(test):
    """Loads the bundled model in llama.cpp: slow, and skipped where llama-cpp-python is missing."""
    return pytest.mark.slow(pytest.mark.llamacpp(needs_llama_cpp(test)))


def bbq_requests(n: int) -> list[ScoreRequest]:
    rows = [json.loads(line) for line in AGE.read_text().splitlines() if line.strip()]
    # spread over the file: both context conditions, many question templates
    rows = rows[:: max(1, len(rows) // n)][:n]
    return [
        ScoreRequest(
            f"Human: {r['context']} {r['question']} (a) {r['ans0']} (b) {r['ans1']} (c) {r['ans2']}."
            "\n\nAssistant: The answer is",
            CONTINUATIONS,
        )
        for r in rows
    ]


@pytest.fixture(scope="module")
def llama():
    return load_model("gguf:smollm2-135m")


@pytest.fixture(scope="module")
def hf():
    return load_model("smollm2-135m")


def normalised(logprobs: np.ndarray) -> np.ndarray:
    return np.exp(logprobs - np.logaddexp.reduce(logprobs, axis=1, keepdims=True))


# --- errors that need no model ---------------------------------------------------------------------
def test_missing_gguf_is_a_user_error(tmp_path):
    missing = tmp_path / "nope.gguf"
    with pytest.raises(AlignlabError, match="nope.gguf"):
        load_model(f"gguf:{missing}")
    with pytest.raises(AlignlabError, match="nope.gguf"):
        LlamaCppBackend("gguf:x", missing)


def test_a_file_that_is_not_gguf_is_a_user_error(tmp_path):
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(AlignlabError, match=r"not a GGUF file.*fake\.gguf"):
        LlamaCppBackend("gguf:x", fake)


@pytest.mark.llamacpp
@needs_llama_cpp
def test_a_corrupt_gguf_is_a_user_error(tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + bytes(60))
    with pytest.raises(AlignlabError, match=r"cannot load model file .*broken\.gguf"):
        LlamaCppBackend("gguf:x", broken)


# --- agreement with transformers -------------------------------------------------------------------
@model_test
@needs_bbq
def test_same_tokens_as_transformers(llama, hf):
    texts = [r.prompt for r in bbq_requests(6)] + [
        "émoji 😀 日本語",
        "<|im_start|>user\nHi<|im_end|>\n",
        "a  b\t\n\nc",
        "",
    ]
    for text in texts:
        assert llama.encode(text) == hf.encode(text), text
    # the lm-evaluation-harness split, including a trailing space moved into the continuation
    for prompt, cont in [("Q: 3 or 5?\n\nA: ", "5"), ("The answer is", " (a)"), ("x ", " y")]:
        assert split_continuation(llama.encode, prompt, cont) == split_continuation(hf.encode, prompt, cont)


@model_test
@needs_bbq
def test_bbq_logprobs_match_transformers(llama, hf):
    requests = bbq_requests(12)
    ours, theirs = llama.score(requests), hf.score(requests)
    assert [r.num_tokens for r in ours] == [r.num_tokens for r in theirs] == [[3, 3, 3]] * 12
    a = np.array([r.logprobs for r in ours])
    b = np.array([r.logprobs for r in theirs])
    logprob_diff = np.abs(a - b).max()
    prob_diff = np.abs(normalised(a) - normalised(b)).max()
    agree = int((a.argmax(1) == b.argmax(1)).sum())
    assert logprob_diff < MAX_LOGPROB_DIFF, f"max |d logprob| {logprob_diff:.3f}"
    assert prob_diff < MAX_PROB_DIFF, f"max |d prob| {prob_diff:.3f}"
    assert agree >= 10, f"argmax agrees on {agree}/12"
    assert np.all(a < 0) and np.all(np.isfinite(a))


@model_test
def test_next_token_logprobs_equal_llama_cpp_all_logits_path(llama):
    """Our per-position logits (no logits_all) are llama-cpp-python's own full-logits numbers."""
    import llama_cpp

    text = "Human: Who was not comfortable using the phone?\n\nAssistant: The answer is (c)"
    ids = llama.encode(text)
    # loaded with the same weight buffers as ours (llama-cpp-python's default crashes on AMX CPUs)
    with llamacpp_load.loading(llama_cpp, llama.info()["extra_buffers"]):
        reference = llama_cpp.Llama(
            str(llama.path), n_ctx=256, logits_all=True, verbose=False, n_threads=1, n_threads_batch=1
        )
    reference.eval(ids)
    expected = reference.logits_to_logprobs(reference.scores[: len(ids)])
    got = llama.token_logprobs(text)
    assert [piece for piece, _ in got][:3] == ["Human", ":", " Who"]
    for i in range(1, len(ids)):
        assert got[i][1] == pytest.approx(float(expected[i - 1, ids[i]]), abs=1e-4)
    reference.close()


@model_test
def test_features_match_transformers_hidden_states(llama, hf):
    prompt = "Human: Who was not comfortable using the phone?\n\nAssistant:"
    for layer in (0, 7, -1):
        ours = np.array(llama.features([FeaturesRequest(prompt, layer=layer)])[0].vector)
        theirs = np.array(hf.features([FeaturesRequest(prompt, layer=layer)])[0].vector)
        assert ours.shape == theirs.shape == (576,)
        cosine = ours @ theirs / np.linalg.norm(ours) / np.linalg.norm(theirs)
        assert cosine > 0.999, (layer, cosine)
    with pytest.raises(AlignlabError, match="layer 31 out of range"):
        llama.features([FeaturesRequest(prompt, layer=31)])


# --- the KV cache ----------------------------------------------------------------------------------
@model_test
@needs_bbq
def test_a_score_depends_on_the_request_alone(llama):
    """Reusing the KV cache across requests must not change numbers (llama.cpp's differ by batch shape)."""
    requests = bbq_requests(4) + [
        ScoreRequest("Human: Which is larger, 3 or 5?\n\nAssistant: ", ("5", "3 is larger than 5")),
        ScoreRequest("Human: Which is larger, 3 or 5?\n\nAssistant: It is", (" 5", " 3")),
        ScoreRequest("Human: Which is larger, 3 or 5?\n\nAssistant: It is clearly", (" 5", " 3")),
    ]
    batched = [r.logprobs for r in llama.score(requests)]
    reversed_ = [r.logprobs for r in llama.score(requests[::-1])][::-1]
    alone = []
    for request in requests:
        llama._truncate(0, force_clear=True)  # an empty cache
        alone.append(llama.score([request])[0].logprobs)
    assert batched == alone == reversed_  # exactly


@model_test
def test_bad_score_requests(llama):
    with pytest.raises(AlignlabError, match="empty continuation"):
        llama.score([ScoreRequest("Hello", ("",))])
    assert llama.score([ScoreRequest("Hello", ())])[0].logprobs == []


@model_test
def test_prompt_longer_than_the_context_window_is_a_user_error(llama):
    small = LlamaCppBackend("gguf:small", llama.path, n_ctx=256)
    with pytest.raises(AlignlabError, match="does not fit the context window.*n_ctx=256"):
        small.score([ScoreRequest("word " * 400, (" x",))])
    small.close()


# --- chat templates --------------------------------------------------------------------------------
@model_test
def test_chat_prompt_renders_like_transformers_and_scores(llama, hf):
    chat = Chat(
        messages=(("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello."), ("user", "2+2?")),
        prefill="The answer is",
    )
    assert llama.render(chat) == hf.render(chat)
    assert llama.render(chat).endswith("<|im_start|>assistant\nThe answer is")
    plain = Chat(messages=(("user", "Is the sky blue?"),))
    assert "You are a helpful AI assistant named SmolLM" in llama.render(plain)  # the template's default
    request = ScoreRequest(plain, ("Yes", "No"))
    result, expected = llama.score([request])[0], hf.score([request])[0]
    assert all(math.isfinite(x) and x < 0 for x in result.logprobs)
    assert result.num_tokens == expected.num_tokens == [2, 2]  # the template's "\n" moves into them
    assert result.logprobs == pytest.approx(expected.logprobs, abs=MAX_LOGPROB_DIFF)


@model_test
def test_no_chat_template_is_a_user_error(llama):
    bare = LlamaCppBackend("gguf:bare", llama.path)
    bare._template_source = None  # as for a base model's GGUF (e.g. Gemma 3 270M)
    with pytest.raises(AlignlabError, match="no chat template: use --format raw"):
        bare.render(Chat(messages=(("user", "Hi"),)))
    assert bare.render("raw text") == "raw text"
    bare.close()


# --- generation ------------------------------------------------------------------------------------
COUNT = Chat(messages=(("user", "Count from 1 to 20, one number per line."),))


@model_test
def test_greedy_generation_max_tokens_and_stop_strings(llama):
    long, short, stopped = llama.generate(
        [
            GenerateRequest(COUNT, max_tokens=24),
            GenerateRequest(COUNT, max_tokens=6),
            GenerateRequest(COUNT, max_tokens=24, stop=("4",)),
        ]
    )
    assert long.text.strip() and long.finish_reason == "length"
    assert "1" in long.text and "4" in long.text
    assert short.finish_reason == "length" and long.text.startswith(short.text)
    assert len(llama.encode(short.text)) <= 6 < len(llama.encode(long.text))
    assert stopped.finish_reason == "stop"
    assert "4" not in stopped.text and long.text.startswith(stopped.text)
    assert long.text[len(stopped.text)] == "4"  # cut exactly at the stop string


@model_test
def test_generation_ends_at_end_of_turn(llama):
    result = llama.generate([GenerateRequest(Chat(messages=(("user", "Say hi."),)), max_tokens=64)])[0]
    assert result.finish_reason == "stop" and result.text.strip()
    assert "<|im_end|>" not in result.text


@model_test
def test_seeded_sampling_reproduces(llama):
    def sample(seed, **kw):
        return GenerateRequest("Once upon a time", max_tokens=16, temperature=1.0, seed=seed, **kw)

    first = llama.generate([sample(1), sample(2), sample(3)])
    again = llama.generate([sample(3)]) + llama.generate([sample(1)])
    assert first[2].text == again[0].text and first[0].text == again[1].text
    assert len({r.text for r in first}) > 1  # different seeds, different samples
    # a nucleus of one token is greedy decoding, whatever the seed
    greedy = llama.generate([GenerateRequest("Once upon a time", max_tokens=16)])[0].text
    assert llama.generate([sample(5, top_p=1e-6)])[0].text == greedy


@model_test
def test_identity(llama, hf):
    from alignlab.models import bundled

    fingerprint = llama.fingerprint()
    assert fingerprint == "llamacpp:gguf-sha256:" + bundled.BUNDLED["smollm2-135m"].sha256
    assert fingerprint != hf.fingerprint()
    info = llama.info()
    assert info["backend"] == "llamacpp" and info["chat_template"] is True
    assert 130e6 < info["parameters"] < 140e6 and info["n_ctx"] >= 2048


# --- weight buffers: no AMX repacking where it crashes (issue 8) -------------------------------------
@model_test
def test_no_amx_repacking_buffers_on_an_amx_cpu(llama, monkeypatch):
    buffers = llama.info()["weight_buffers"]
    # the load log was read: the weights are somewhere, about the file's size (98.4 MB, less the header)
    assert 80 < sum(buffers.values()) < 200, buffers
    if amx_cpu_and_build():
        assert llama.info()["extra_buffers"] is False
        assert "AMX" not in buffers and "CPU_REPACK" not in buffers, buffers
    else:
        assert llama.info()["extra_buffers"] is True
    # the environment can switch repacking off anywhere
    monkeypatch.setenv(llamacpp_load.REPACK_ENV, "off")
    plain = LlamaCppBackend("gguf:plain", llama.path)
    assert plain.info()["extra_buffers"] is False and set(plain.info()["weight_buffers"]) == {"CPU_Mapped"}
    plain.close()


@model_test
def test_repack_on_is_what_puts_weights_in_amx_buffers(llama):
    """The guard above is not vacuous: forced on, an AMX CPU's weights go to the AMX buffer (loaded only;
    decoding would crash)."""
    if not amx_cpu_and_build():
        pytest.skip("needs an AMX CPU and a llama.cpp build with AMX kernels")
    forced = LlamaCppBackend("gguf:forced", llama.path, repack="on")
    assert forced.info()["extra_buffers"] is True and forced.info()["weight_buffers"].get("AMX", 0) > 50
    forced.close()
