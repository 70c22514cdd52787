"""`alignlab serve` with real clients: the official openai package, lm-evaluation-harness's local-completions,
concurrent requests sharing batches, and clients that go away."""

from __future__ import annotations

import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from datadir import DATA
from test_openai_backend import CharBackend

from alignlab.cli import main
from alignlab.models.base import GenerateRequest, GenerateResult, ScoreRequest

openai = pytest.importorskip("openai")


@pytest.fixture
def served(serving):
    """Start `alignlab serve` around a backend; yields backend -> (openai client, server)."""

    def start(backend, **kwargs):
        server = serving(backend, **kwargs)
        return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0), server

    return start


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tiny_model import tiny_model

    from alignlab.models.hf import HFBackend

    backend = HFBackend("tiny", str(tiny_model(tmp_path_factory.mktemp("tiny") / "model")))
    # a chat template in the tiny vocabulary, so chats render to words it knows
    backend.tokenizer.chat_template = (
        "{% for m in messages %}{{ m['role'] | capitalize }} : {{ m['content'] }} {% endfor %}Assistant :"
    )
    return backend


class SlowCharBackend(CharBackend):
    """CharBackend whose generate takes `delay` seconds per batch and records each batch's size."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay, self.batch_sizes = delay, []

    def generate(self, requests: list[GenerateRequest]) -> list[GenerateResult]:
        self.batch_sizes.append(len(requests))
        time.sleep(self.delay)
        return super().generate(requests)


# ---- the official openai client ------------------------------------------------------------------------


def test_list_prompts_n_and_seed_reach_the_backend_as_separate_requests(served):
    backend = CharBackend()
    client, _ = served(backend)
    answer = client.completions.create(
        model="char-model", prompt=["abc", "hello"], n=2, max_tokens=10, stop=["\n"], seed=7, temperature=0.5
    )
    assert [(c.index, c.text) for c in answer.choices] == [(0, "cba"), (1, "cba"), (2, "olleh"), (3, "olleh")]
    # choice i of a prompt samples with seed + i; every other field crosses unchanged
    got = sorted((r.prompt, r.seed, r.stop, r.temperature, r.max_tokens) for r in backend.seen)
    assert got == [
        ("abc", 7, ("\n",), 0.5, 10),
        ("abc", 8, ("\n",), 0.5, 10),
        ("hello", 7, ("\n",), 0.5, 10),
        ("hello", 8, ("\n",), 0.5, 10),
    ]
    client.completions.create(model="char-model", prompt="x", max_tokens=1)
    client.completions.create(model="char-model", prompt="x", max_tokens=1)
    assert backend.seen[-1].seed != backend.seen[-2].seed  # no seed: a fresh one per request, as OpenAI


def test_echo_logprobs_with_top_tokens_and_token_id_prompts(served, tiny):
    client, _ = served(tiny)
    prompt = "Human : how do i"
    answer = client.completions.create(
        model="tiny", prompt=prompt, max_tokens=3, temperature=0, echo=True, logprobs=2
    )
    choice = answer.choices[0]
    greedy = tiny.generate([GenerateRequest(prompt=prompt, max_tokens=3)])[0].text
    assert choice.text == prompt + greedy
    lp = choice.logprobs
    n_prompt = len(tiny.encode(prompt))
    # (the word-level tokenizer decodes generated words without the space between them and the prompt)
    assert "".join(lp.tokens[:n_prompt]) == prompt
    assert "".join(lp.tokens[n_prompt:]).strip() == greedy.strip() != ""
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    # greedy: every generated token is the most likely one at its position
    for chosen, top in zip(lp.token_logprobs[n_prompt:], lp.top_logprobs[n_prompt:], strict=True):
        assert len(top) <= 2 and max(top.values()) == pytest.approx(chosen, abs=1e-5)
    assert answer.usage.prompt_tokens == n_prompt

    # the same prompt as token ids: the same tokens and log-probabilities
    ids = tiny.encode(prompt)
    by_ids = client.completions.create(model="tiny", prompt=[ids, ids], max_tokens=0, echo=True, logprobs=1)
    assert len(by_ids.choices) == 2
    for c in by_ids.choices:
        assert c.text == prompt
        assert c.logprobs.tokens == lp.tokens[:n_prompt]
        assert c.logprobs.token_logprobs[1:] == pytest.approx(lp.token_logprobs[1:n_prompt], abs=1e-5)

    # without echo only the generated tokens come back, and their sum scores the generated text
    plain = client.completions.create(model="tiny", prompt=prompt, max_tokens=3, temperature=0, logprobs=0)
    assert "".join(plain.choices[0].logprobs.tokens).strip() == greedy.strip()
    direct = tiny.score([ScoreRequest(prompt=prompt, continuations=(" " + greedy.strip(),))])[0].logprobs[0]
    assert sum(plain.choices[0].logprobs.token_logprobs) == pytest.approx(direct, abs=1e-4)


def test_chat_logprobs_and_top_logprobs(served, tiny):
    client, _ = served(tiny)
    messages = [{"role": "user", "content": "how do i make bread"}]
    answer = client.chat.completions.create(
        model="tiny", messages=messages, max_tokens=4, temperature=0, logprobs=True, top_logprobs=3
    )
    choice = answer.choices[0]
    content = choice.logprobs.content
    assert "".join(t.token for t in content).strip() == choice.message.content.strip()  # (word-level)
    assert len(content) >= 1
    for token in content:
        assert 1 <= len(token.top_logprobs) <= 3
        assert token.top_logprobs[0].logprob == pytest.approx(token.logprob, abs=1e-5)  # greedy
        assert bytes(token.bytes).decode() == token.token
    plain = client.chat.completions.create(model="tiny", messages=messages, max_tokens=4, temperature=0)
    assert plain.choices[0].logprobs is None and plain.choices[0].message.content == choice.message.content


def test_bad_requests_get_one_line_errors(served, tiny):
    client, _ = served(tiny)
    cases = [
        ({"prompt": "a", "stream": True}, "streaming is not supported"),
        ({"prompt": "a", "n": 0}, "n must be an integer from 1"),
        ({"prompt": "a", "logprobs": 7}, "logprobs must be an integer from 0 to 5"),
        ({"prompt": [[1, 2], "a"]}, "prompt must be"),
        ({"prompt": [10**6], "max_tokens": 1}, "token id 1000000 is outside"),
        ({"prompt": "a", "top_p": 0}, "top_p must be in"),
    ]
    for extra, message in cases:
        body = {k: v for k, v in extra.items() if k != "stream"}
        with pytest.raises(openai.BadRequestError, match=message):
            client.completions.create(model="tiny", stream=extra.get("stream", False), **body)
    with pytest.raises(openai.NotFoundError, match="is not served here"):
        client.completions.create(model="other", prompt="a")
    with pytest.raises(openai.BadRequestError, match="top_logprobs needs logprobs"):
        client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "hi"}], top_logprobs=2
        )
    assert client.models.list().data[0].id == "tiny"


@pytest.mark.parametrize("field", ["temperature", "top_p"])
@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_sampling_settings_are_a_400(served, tiny, field, value):
    """JSON parsers take NaN and Infinity; answering them with 200 and empty text hid the mistake."""
    _, server = served(tiny)
    for path, body in (
        ("/completions", '{"model": "tiny", "prompt": "a", "max_tokens": 2, "%s": %s}'),
        ("/chat/completions", '{"model": "tiny", "messages": [{"role": "user", "content": "a"}], "%s": %s}'),
    ):
        answer = httpx.post(
            server.base_url + path,
            content=body % (field, value),
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 400, (path, answer.text)
        assert f"{field} must be a finite" in answer.json()["error"]["message"]


# ---- concurrency ---------------------------------------------------------------------------------------


def test_concurrent_requests_share_batches(served):
    backend = SlowCharBackend(delay=0.3)
    client, server = served(backend)
    prompts = [f"prompt {i}" for i in range(8)]

    def ask(prompt):
        return client.completions.create(model="char-model", prompt=prompt, max_tokens=50).choices[0].text

    with ThreadPoolExecutor(8) as pool:
        texts = list(pool.map(ask, prompts))
    assert texts == [p[::-1] for p in prompts]  # each client got its own answer
    assert sum(backend.batch_sizes) == 8
    assert len(backend.batch_sizes) < 8 and max(backend.batch_sizes) > 1
    assert server.batcher.largest_batch == max(backend.batch_sizes)


@pytest.mark.heavy
def test_client_that_goes_away_leaves_one_log_line_and_its_queued_work_is_dropped(served, caplog):
    backend = SlowCharBackend(delay=1.0)
    client, server = served(backend)
    caplog.set_level(logging.INFO)
    busy = threading.Thread(
        target=lambda: client.completions.create(model="char-model", prompt="first", max_tokens=9)
    )
    busy.start()
    time.sleep(0.2)  # the first request holds the model; the next one queues behind it
    with pytest.raises(httpx.TimeoutException):
        httpx.post(
            server.base_url + "/completions",
            json={"model": "char-model", "prompt": ["gone", "away"], "max_tokens": 9},
            timeout=0.3,
        )
    busy.join()
    time.sleep(0.5)
    went = [r for r in caplog.records if "went away" in r.getMessage()]
    assert len(went) == 1 and "2 queued jobs dropped" in went[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert [r.prompt for r in backend.seen] == ["first"]  # the dropped work never ran
    assert client.completions.create(model="char-model", prompt="ok", max_tokens=9).choices[0].text == "ko"


def test_serve_on_a_taken_port_fails_in_one_line_before_loading(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code = main(["serve", "--model", "nosuch:model", "--port", str(port)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"cannot listen on 127.0.0.1:{port}" in err


# ---- lm-evaluation-harness -----------------------------------------------------------------------------

TASKS = {
    "mc.yaml": """task: alignlab_bbq_age
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}/bbq/data/Age.jsonl
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{context}}}} {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{[ans0, ans1, ans2]}}}}"
doc_to_target: label
metric_list:
  - metric: acc
""",
    "gen.yaml": """task: alignlab_gsm8k_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}/gsm8k/test.jsonl
test_split: test
output_type: generate_until
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 16
  do_sample: false
metric_list:
  - metric: exact_match
""",
}


@pytest.mark.slow
@pytest.mark.parametrize("tokenizer", ["huggingface", "server"])
def test_lm_evaluation_harness_local_completions_matches_alignlab(served, tmp_path, monkeypatch, tokenizer):
    """lm-evaluation-harness, as a user runs it against a served model: a multiple-choice task's
    log-likelihoods equal alignlab's own scores to 1e-4, and a generation task gets alignlab's greedy text.
    `huggingface`: the harness tokenizes with the model's folder and sends text; `server`: given only the
    URL, it finds the server's tokenizer endpoints and sends token ids."""
    lm_eval = pytest.importorskip("lm_eval")
    from lm_eval.tasks import TaskManager

    from alignlab.models import load_model

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    data = DATA
    for name, text in TASKS.items():
        (tmp_path / name).write_text(text.format(data=data))
    backend = load_model("smollm2-135m")
    _, server = served(backend)
    prompts = []
    submit = server.batcher.submit
    server.batcher.submit = lambda work: prompts.append(work.prompt) or submit(work)
    model_args = {"model": backend.spec, "base_url": server.base_url + "/completions", "num_concurrent": 4}
    if tokenizer == "huggingface":
        model_args |= {
            "tokenizer_backend": "huggingface",
            "tokenizer": backend.folder,
            "tokenized_requests": False,
        }
    results = lm_eval.simple_evaluate(
        model="local-completions",
        model_args={**model_args, "max_retries": 1},
        tasks=["alignlab_bbq_age", "alignlab_gsm8k_gen"],
        task_manager=TaskManager(include_path=str(tmp_path)),
        limit=4,
        log_samples=True,
    )
    samples = results["samples"]
    mc = samples["alignlab_bbq_age"]
    assert len(mc) == 4
    correct = 0
    for sample in mc:
        context = sample["arguments"][0][0]
        continuations = tuple(arg[1] for arg in sample["arguments"])
        assert len(continuations) == 3
        direct = backend.score([ScoreRequest(prompt=context, continuations=continuations)])[0].logprobs
        harness = [resp[0][0] for resp in sample["resps"]]
        assert harness == pytest.approx(direct, abs=1e-4)
        correct += max(range(3), key=lambda i: direct[i]) == sample["target"]
    assert results["results"]["alignlab_bbq_age"]["acc,none"] == pytest.approx(correct / 4)
    gen = samples["alignlab_gsm8k_gen"]
    assert len(gen) == 4
    for sample in gen:
        context = sample["arguments"][0][0]
        want = backend.generate(
            [GenerateRequest(prompt=context, max_tokens=16, temperature=0.0, stop=("\n",), seed=1234)]
        )[0].text
        assert sample["resps"][0][0] == want
    assert server.batcher.largest_batch > 1  # the harness's concurrent requests shared batches
    sent = {type(p) for p in prompts}
    assert sent == ({str} if tokenizer == "huggingface" else {tuple})  # text, or token ids


def test_tokenizer_endpoints_round_trip(served, tiny):
    _, server = served(tiny)
    root = server.base_url.removesuffix("/v1")
    info = httpx.get(root + "/tokenizer_info").json()
    assert info["eos_token"] == "<eos>" and info["pad_token"] == "<pad>"
    ids = httpx.post(root + "/tokenize", json={"prompt": "how do i", "add_special_tokens": False}).json()
    assert ids["tokens"] == tiny.tokenizer("how do i", add_special_tokens=False)["input_ids"]
    assert ids["count"] == 3
    text = httpx.post(root + "/detokenize", json={"tokens": ids["tokens"]}).json()["prompt"]
    assert text == "how do i"
    assert httpx.post(root + "/detokenize", json={"tokens": [10**6]}).status_code == 400
    _, other = served(CharBackend())
    answer = httpx.get(other.base_url.removesuffix("/v1") + "/tokenizer_info")
    assert answer.status_code == 404 and "no transformers tokenizer" in answer.json()["error"]["message"]
