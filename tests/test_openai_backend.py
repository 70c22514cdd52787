"""The openai: backend against `alignlab serve` (fake and real models) and against scripted fake servers."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from datadir import needs

from alignlab.cli import main
from alignlab.errors import AlignlabError, UnsupportedRequest
from alignlab.models.base import (
    BackendBase,
    Chat,
    GenerateRequest,
    GenerateResult,
    ScoreRequest,
    ScoreResult,
)
from alignlab.models.openai import PROBE_TEXT, OpenAIBackend
from alignlab.serve import serve

SECRET = "sk-test-SECRET-0123456789"


# ---- a tiny deterministic "model": one token per character ---------------------------------------------


def char_logprob(char: str) -> float:
    return -(1 + ord(char) % 5) / 10


class CharBackend(BackendBase):
    """Tokens are characters; logprob(c) = -(1 + ord(c) % 5) / 10, whatever came before.

    `bos`: prepend a "<s>" token (text not in the input, as vLLM reports it). `wide`: non-ASCII characters
    come back as two-character token texts (as byte-level BPE token strings do), so offsets drift.
    """

    capabilities = frozenset({"score", "generate"})

    def __init__(self, bos: bool = False, wide: bool = False, spec: str = "char-model") -> None:
        self.spec, self.bos, self.wide = spec, bos, wide
        self.seen: list[GenerateRequest] = []

    def fingerprint(self) -> str:
        return "char-fingerprint"

    def info(self) -> dict:
        return {"backend": "char"}

    def score(self, requests: list[ScoreRequest]) -> list[ScoreResult]:
        return [
            ScoreResult(
                logprobs=[sum(char_logprob(c) for c in cont) for cont in r.continuations],
                num_tokens=[len(cont) for cont in r.continuations],
            )
            for r in requests
        ]

    def generate(self, requests: list[GenerateRequest]) -> list[GenerateResult]:
        self.seen.extend(requests)
        out = []
        for r in requests:
            if isinstance(r.prompt, Chat):
                text = f"[{r.prompt.messages[-1][1]}|{r.prompt.prefill}]"
            else:
                text = r.prompt[::-1]
            finish = "length" if len(text) > r.max_tokens else "stop"
            out.append(GenerateResult(text=text[: r.max_tokens], finish_reason=finish))
        return out

    def features(self, requests):
        raise UnsupportedRequest("no features")

    def render(self, prompt) -> str:
        """A chat as text, for the logprobs of what was generated after it."""
        return "".join(f"<{role}>{text}" for role, text in prompt.messages) + "<assistant>" + prompt.prefill

    def token_logprobs(self, text: str) -> list[tuple[str, float | None]]:
        pieces = [("<s>", None)] if self.bos else []
        for i, c in enumerate(text):
            shown = c + "~" if self.wide and ord(c) > 127 else c
            pieces.append((shown, None if i == 0 and not self.bos else char_logprob(c)))
        return pieces


@pytest.fixture
def served():
    """Start `alignlab serve` around a backend; yields a function backend -> base URL."""
    servers = []

    def start(backend, **kwargs) -> str:
        server = serve(backend, **kwargs)
        servers.append(server)
        return server.base_url

    yield start
    for server in servers:
        server.close()


def client(url: str, model: str = "char-model", **options) -> OpenAIBackend:
    options.setdefault("backoff", 0.01)
    return OpenAIBackend(f"openai:{model}@{url}", model=model, base_url=url, **options)


# ---- through alignlab serve (fast) ---------------------------------------------------------------------

SCORE_CASES = [
    ScoreRequest(prompt="Question: 2+2=?\nAnswer:", continuations=(" 4", " five", "")),
    ScoreRequest(prompt="Human: hi\n\nAssistant:", continuations=(" Hello there!",)),
]


@pytest.mark.parametrize("bos", [False, True])
def test_score_through_serve_equals_direct(served, bos):
    direct = CharBackend(bos=bos)
    remote = client(served(direct))
    got = remote.score(SCORE_CASES)
    want = direct.score(SCORE_CASES)
    for g, w in zip(got, want, strict=True):
        assert g.num_tokens == w.num_tokens
        assert g.logprobs == pytest.approx(w.logprobs, abs=1e-12)
    # hand-computed: " 4" -> ' ' (32 % 5 = 2) and '4' (52 % 5 = 2): -(0.3 + 0.3)
    assert got[0].logprobs[0] == pytest.approx(-0.6)
    assert got[0].num_tokens == [2, 5, 0]


def test_score_when_token_texts_do_not_add_up_matches_prompt_tokens(served):
    # Token texts of 'é' are two characters wide, so text_offset drifts; the backend falls back to
    # echoing the prompt alone and matching its tokens.
    direct = CharBackend(wide=True)
    remote = client(served(direct))
    requests = [ScoreRequest(prompt="Café au", continuations=(" lait crème", " thé"))]
    got = remote.score(requests)[0]
    assert got.num_tokens == [11, 4]
    assert got.logprobs == pytest.approx(direct.score(requests)[0].logprobs, abs=1e-12)


def test_score_empty_prompt_needs_a_first_token_logprob(served):
    remote = client(served(CharBackend(bos=True)))
    assert remote.score([ScoreRequest(prompt="", continuations=("ab",))])[0].num_tokens == [2]
    remote = client(served(CharBackend(bos=False)))
    with pytest.raises(AlignlabError, match="non-empty prompt"):
        remote.score([ScoreRequest(prompt="", continuations=("ab",))])


def test_generate_through_serve(served):
    direct = CharBackend()
    remote = client(served(direct))
    requests = [
        GenerateRequest(prompt="abc", max_tokens=10, temperature=0.7, top_p=0.9, stop=("\n",), seed=3),
        GenerateRequest(prompt="abcdef", max_tokens=4),
        GenerateRequest(prompt=Chat(messages=(("system", "be brief"), ("user", "hi")), prefill="Sure,")),
        GenerateRequest(prompt=Chat(messages=(("user", "yo"),))),
    ]
    got = remote.generate(requests)
    assert [(g.text, g.finish_reason) for g in got] == [
        ("cba", "stop"),
        ("fedc", "length"),
        ("[hi|Sure,]", "stop"),
        ("[yo|]", "stop"),
    ]
    seen = sorted(direct.seen, key=repr)
    assert sorted(requests, key=repr) == seen  # every field crossed the wire unchanged


def test_server_rejects_other_model_and_missing_token_logprobs(served):
    class NoLogprobs(CharBackend):
        token_logprobs = BackendBase.token_logprobs  # the default: unsupported

    url = served(NoLogprobs())
    with pytest.raises(AlignlabError, match=r"does not serve model 'other' \(it serves: 'char-model'\)"):
        client(url, model="other").check()
    answer = httpx.post(f"{url}/completions", json={"model": "other", "prompt": "a"})
    assert answer.status_code == 404
    remote = client(url)
    with pytest.raises(AlignlabError, match="answered 400.*cannot give token logprobs"):
        remote.score([ScoreRequest(prompt="a", continuations=("b",))])
    assert remote.generate([GenerateRequest(prompt="xy", max_tokens=5)])[0].text == "yx"


def test_top_logprobs_read_as_lm_evaluation_harness_reads_them(served, tmp_path):
    """`logprobs: k` gives the k most likely tokens at each position; lm-evaluation-harness's
    local-completions parser turns the answer into the same log-likelihood alignlab scores directly, and
    calls a continuation greedy exactly when each of its tokens is the most likely one."""
    lm_eval = pytest.importorskip("lm_eval.models.openai_completions")
    from tiny_model import tiny_model

    from alignlab.models.hf import HFBackend

    backend = HFBackend("tiny", str(tiny_model(tmp_path / "tiny")))
    url = served(backend)
    context, continuation = "Human : how do i", " hurt someone"
    body = {"model": "tiny", "prompt": context + continuation, "echo": True, "logprobs": 2, "max_tokens": 0}
    answer = httpx.post(f"{url}/completions", json=body).json()["choices"][0]["logprobs"]
    tops, chosen = answer["top_logprobs"], answer["token_logprobs"]
    assert tops[0] is None and all(1 <= len(t) <= 2 for t in tops[1:])
    assert all(max(t.values()) >= lp - 1e-6 for t, lp in zip(tops[1:], chosen[1:], strict=True))
    ctxlen = len(backend.encode(context))
    # the harness drops the last entry (the token it asked to be generated): give it one to drop
    answer = {
        "choices": [{"index": 0, "logprobs": {"token_logprobs": chosen + [0.0], "top_logprobs": tops + [{}]}}]
    }
    ((total, greedy),) = lm_eval.LocalCompletionsAPI.parse_logprobs(answer, ctxlens=[ctxlen])
    direct = backend.score([ScoreRequest(prompt=context, continuations=(continuation,))])[0].logprobs[0]
    assert total == pytest.approx(direct, abs=1e-4)
    ids = backend.encode(context + continuation)
    import torch

    with torch.no_grad():
        logits = backend.model(input_ids=torch.tensor([ids])).logits[0]
    argmax = [int(logits[i - 1].argmax()) == ids[i] for i in range(ctxlen, len(ids))]
    assert greedy == all(argmax)
    assert httpx.post(f"{url}/completions", json={**body, "logprobs": 9}).status_code == 400


def test_served_model_card_carries_backend_fingerprint(served):
    url = served(CharBackend())
    card = httpx.get(f"{url}/models").json()["data"][0]
    assert card["id"] == "char-model" and card["alignlab_fingerprint"] == "char-fingerprint"
    other = served(CharBackend(), model_name="char-model")
    assert client(url).fingerprint() != client(other).fingerprint()  # the URL is part of it
    assert client(url).fingerprint() == client(url).fingerprint()


def test_chat_prompt_cannot_be_scored_from_prompt_logprobs_and_constructor_does_no_io(served):
    remote = client(f"http://127.0.0.1:{free_port()}/v1")  # nothing listens: constructing must not fail
    assert remote.capabilities == frozenset({"score", "generate"})
    with pytest.raises(UnsupportedRequest):
        remote.features([])
    exact = client(served(CharBackend()), scoring="prompt-logprobs")
    with pytest.raises(UnsupportedRequest, match="--format raw, or --scoring top-logprobs"):
        exact.score([ScoreRequest(prompt=Chat(messages=(("user", "q"),)), continuations=(" a",))])


# ---- scripted fake servers -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeServer:
    """Answers POSTs with `respond(path, body, n)` -> (status, payload, headers); counts requests in flight.

    `check()`'s probe (scoring PROBE_TEXT) is answered with prompt logprobs, unrecorded, unless
    `answer_probe` is False (then it goes to `respond` like any request)."""

    def __init__(self, respond, delay: float = 0.0, models=("m",), answer_probe: bool = True) -> None:
        self.respond, self.delay = respond, delay
        self.posts: list[tuple[str, dict]] = []
        self.auth: list[str | None] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self, status, payload, headers=()):
                data = json.dumps(payload).encode()
                self.send_response(status)
                for key, value in dict(headers).items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                fake.auth.append(self.headers.get("Authorization"))
                self.reply(200, {"object": "list", "data": [{"id": m, "owned_by": "fake"} for m in models]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if answer_probe and body.get("prompt") == PROBE_TEXT and body.get("echo"):
                    self.reply(*echo_answer(["Hello", ",", " world"], [None, -1.0, -2.0], [0, 5, 6]))
                    return
                with fake.lock:
                    fake.posts.append((self.path, body))
                    fake.auth.append(self.headers.get("Authorization"))
                    n = len(fake.posts)
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    time.sleep(fake.delay)
                    answer = fake.respond(self.path, body, n)
                finally:
                    # Counted out before the reply is written: a client that sends its next request as soon
                    # as it reads this answer must not find this one still counted in flight.
                    with fake.lock:
                        fake.in_flight -= 1
                self.reply(*answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake():
    made = []

    def start(respond, **kwargs) -> FakeServer:
        made.append(FakeServer(respond, **kwargs))
        return made[-1]

    yield start
    for server in made:
        server.close()


def text_answer(text: str, finish: str = "stop") -> tuple[int, dict, dict]:
    return 200, {"choices": [{"index": 0, "text": text, "finish_reason": finish}]}, {}


def echo_answer(tokens, logprobs, offsets, generated: int = 0) -> tuple[int, dict, dict]:
    lp = {"tokens": tokens, "token_logprobs": logprobs, "text_offset": offsets, "top_logprobs": None}
    usage = {"prompt_tokens": len(tokens) - generated, "completion_tokens": generated}
    return 200, {"choices": [{"index": 0, "text": "".join(tokens), "logprobs": lp}], "usage": usage}, {}


def test_retries_429_then_500_then_succeeds(fake):
    def respond(path, body, n):
        if n == 1:
            return 429, {"error": {"message": "slow down"}}, {"Retry-After": "0"}
        if n == 2:
            return 500, {"error": {"message": "oops"}}, {}
        return text_answer("ok")

    server = fake(respond)
    result = client(server.url, model="m").generate([GenerateRequest(prompt="p", max_tokens=3)])
    assert result[0].text == "ok"
    assert len(server.posts) == 3
    path, body = server.posts[-1]
    assert path == "/v1/completions"
    assert body["prompt"] == "p" and body["max_tokens"] == 3 and body["temperature"] == 0.0


def test_retry_after_is_honoured_over_backoff(fake):
    def respond(path, body, n):
        if n <= 2:
            return 429, {"error": "busy"}, {"Retry-After": "0"}
        return text_answer("ok")

    server = fake(respond)
    start = time.monotonic()
    result = client(server.url, model="m", backoff=20.0).generate([GenerateRequest(prompt="p")])
    assert result[0].text == "ok" and len(server.posts) == 3
    assert time.monotonic() - start < 5  # a 20 s base backoff would have taken 30 s or more


def test_always_503_fails_after_max_retries(fake):
    server = fake(lambda path, body, n: (503, {"error": {"message": "overloaded"}}, {}))
    remote = client(server.url, model="m", max_retries=3, api_key=SECRET)
    with pytest.raises(AlignlabError) as info:
        remote.generate([GenerateRequest(prompt="p")])
    message = str(info.value)
    assert f"server at {server.url}/completions answered 503 after 4 tries" in message
    assert "\n" not in message and SECRET not in message
    assert len(server.posts) == 4


def test_client_errors_are_not_retried_and_key_is_scrubbed(fake):
    server = fake(lambda path, body, n: (401, {"error": {"message": f"bad key {SECRET}"}}, {}))
    remote = client(server.url, model="m", api_key=SECRET)
    with pytest.raises(AlignlabError, match="answered 401") as info:
        remote.generate([GenerateRequest(prompt="p")])
    assert SECRET not in str(info.value) and "***" in str(info.value)
    assert len(server.posts) == 1
    assert set(server.auth) == {f"Bearer {SECRET}"}  # the key is sent, to the server only


def test_closed_port_names_the_url_fast(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    url = f"http://127.0.0.1:{free_port()}/v1"
    remote = client(url, model="m", backoff=10.0)
    start = time.monotonic()
    with pytest.raises(AlignlabError, match=f"cannot reach server at {url}/models") as info:
        remote.check()
    assert time.monotonic() - start < 5
    with pytest.raises(AlignlabError, match="cannot reach"):
        remote.generate([GenerateRequest(prompt="p")])
    for text in (str(info.value), repr(remote), json.dumps(remote.info()), repr(vars(remote))):
        assert SECRET not in text
    assert remote.info() == {"backend": "openai", "model": "m", "base_url": url}


def test_credentials_in_url_stay_out_of_messages():
    url = f"http://user:{SECRET}@127.0.0.1:{free_port()}/v1"
    remote = OpenAIBackend("openai:m@x", model="m", base_url=url, backoff=0.01)
    with pytest.raises(AlignlabError) as info:
        remote.check()
    assert SECRET not in str(info.value) and SECRET not in repr(remote) and SECRET not in str(remote.info())


@pytest.mark.parametrize("limit", [1, 3])
def test_max_concurrency_is_honoured(fake, limit):
    server = fake(lambda path, body, n: text_answer(body["prompt"]), delay=0.1)
    remote = client(server.url, model="m", max_concurrency=limit)
    prompts = [f"p{i}" for i in range(6)]
    results = remote.generate([GenerateRequest(prompt=p) for p in prompts])
    assert [r.text for r in results] == prompts  # order kept
    assert server.max_in_flight <= limit
    if limit > 1:
        assert server.max_in_flight > 1


def test_max_tokens_zero_rejected_falls_back_to_one_and_drops_generated_token(fake):
    # "Q: x\nA: yes" tokenized as Q, :, " x", \n, A, :, " yes"; with max_tokens=1 one token " ok" follows.
    tokens = ["Q", ":", " x", "\n", "A", ":", " yes", " ok"]
    offsets = [0, 1, 2, 4, 5, 6, 7, 11]
    logprobs = [None, -1.0, -2.0, -0.5, -0.25, -0.125, -3.0, -0.01]

    def respond(path, body, n):
        if body["max_tokens"] == 0:
            return 400, {"object": "error", "message": "max_tokens must be at least 1"}, {}
        assert body["echo"] is True and body["logprobs"] == 1 and body["temperature"] == 0.0
        return echo_answer(tokens, logprobs, offsets, generated=1)

    server = fake(respond)
    remote = client(server.url, model="m")
    result = remote.score([ScoreRequest(prompt="Q: x\nA:", continuations=(" yes",))])[0]
    assert result.num_tokens == [1] and result.logprobs == [-3.0]
    result = remote.score([ScoreRequest(prompt="Q: x", continuations=("\nA: yes",))])[0]
    assert result.num_tokens == [4] and result.logprobs == pytest.approx([-3.875])
    assert [body["max_tokens"] for _, body in server.posts] == [0, 1, 1]  # 0 is tried once only


def test_bos_string_counted_in_offsets_is_discounted(fake):
    # vLLM counts the BOS token's text ("<s>") in text_offset.
    tokens, offsets = ["<s>", "Hi", " there"], [0, 3, 5]
    server = fake(lambda path, body, n: echo_answer(tokens, [None, -1.5, -0.75], offsets))
    result = client(server.url, model="m").score([ScoreRequest(prompt="Hi", continuations=(" there",))])[0]
    assert result.logprobs == [-0.75] and result.num_tokens == [1]


def test_trailing_prompt_whitespace_moves_into_the_continuation(fake):
    # as in lm-evaluation-harness and the hf backend: "Answer: " + "Paris" scores " Paris"
    server = fake(lambda path, body, n: echo_answer(["Answer", ":", " Paris"], [None, -1.0, -2.5], [0, 6, 7]))
    result = client(server.url, model="m").score([ScoreRequest(prompt="Answer: ", continuations=("Paris",))])
    assert result[0].logprobs == [-2.5] and result[0].num_tokens == [1]


def test_continuation_inside_a_token_is_an_error(fake):
    server = fake(lambda path, body, n: echo_answer(["Hel", "lo"], [None, -1.0], [0, 3]))
    with pytest.raises(AlignlabError, match="token boundary"):
        client(server.url, model="m").score([ScoreRequest(prompt="He", continuations=("llo",))])


def test_server_without_prompt_logprobs_is_an_error(fake):
    # like llama.cpp server: logprobs only for the generated token; or none at all.
    answers = [
        echo_answer([" a"], [-0.5], [0], generated=1),
        (200, {"choices": [{"index": 0, "text": "x", "logprobs": None}]}, {}),
    ]
    for answer in answers:
        server = fake(lambda path, body, n, answer=answer: answer)
        with pytest.raises(AlignlabError, match="gives no prompt logprobs"):
            client(server.url, model="m").score([ScoreRequest(prompt="p", continuations=(" q",))])


def test_chat_generation_sends_prefill_as_continued_assistant_message(fake):
    def respond(path, body, n):
        message = {"role": "assistant", "content": " 4."}
        return 200, {"choices": [{"index": 0, "message": message, "finish_reason": "length"}]}, {}

    server = fake(respond)
    chat = Chat(messages=(("user", "2+2?"),), prefill="The answer is")
    result = client(server.url, model="m").generate([GenerateRequest(prompt=chat, stop=("\n",))])[0]
    assert (result.text, result.finish_reason) == (" 4.", "length")
    path, body = server.posts[0]
    assert path == "/v1/chat/completions"
    assert body["messages"] == [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "The answer is"},
    ]
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    assert body["stop"] == ["\n"] and body["seed"] == 0


def test_works_inside_a_running_event_loop(served):
    import asyncio

    remote = client(served(CharBackend()))

    async def inside():
        return remote.generate([GenerateRequest(prompt="ab")])

    assert asyncio.run(inside())[0].text == "ba"


# ---- the real bundled model behind alignlab serve -------------------------------------------------------


@pytest.mark.slow
def test_real_model_through_serve_matches_direct(served):
    from alignlab.models import load_model

    direct = load_model("smollm2-135m")
    remote = client(served(direct), model=direct.spec, max_concurrency=4)
    requests = [
        ScoreRequest(prompt="The capital of France is", continuations=(" Paris", " London", " a big city.")),
        ScoreRequest(
            prompt="Human: Is the sky blue?\n\nAssistant:", continuations=(" Yes", " No, it is green.")
        ),
        ScoreRequest(prompt="Answer: ", continuations=("Paris", "Café crème")),
    ]
    got, want = remote.score(requests), direct.score(requests)
    for g, w in zip(got, want, strict=True):
        assert g.num_tokens == w.num_tokens
        assert g.logprobs == pytest.approx(w.logprobs, abs=1e-4)
    assert got[0].logprobs[0] > got[0].logprobs[1]  # Paris beats London

    gens = [
        GenerateRequest(prompt="Human: Name a fruit.\n\nAssistant:", max_tokens=12, stop=("\n",)),
        GenerateRequest(prompt=Chat(messages=(("user", "Say hello."),), prefill="Hello"), max_tokens=8),
    ]
    assert [(r.text, r.finish_reason) for r in remote.generate(gens)] == [
        (r.text, r.finish_reason) for r in direct.generate(gens)
    ]


# ---- what the server can do, and how hard it can be pushed ---------------------------------------------


@needs("bbq")
def test_server_without_any_logprobs_samples_answers_and_raw_scoring_runs_stop_before_work(
    fake, tmp_path, capsys
):
    def respond(path, body, n):  # like llama.cpp server: echo ignored, logprobs of the generated token only
        if body.get("echo"):
            return echo_answer([" a"], [-0.5], [0], generated=1)
        return text_answer("generated")

    server = fake(respond, answer_probe=False)
    remote = client(server.url, model="m")
    remote.check()
    assert remote.scoring == "sampling"  # no prompt logprobs, no top logprobs on chat: counted answers
    assert remote.info()["scoring"] == {"path": "sampling", "samples": 20, "temperature": 1.0}
    assert remote.generate([GenerateRequest(prompt="p", max_tokens=3)])[0].text == "generated"
    with pytest.raises(UnsupportedRequest, match="gives no prompt logprobs.*use --format chat"):
        remote.score([ScoreRequest(prompt="p", continuations=(" q",))])
    refusal = remote.raw_scoring_refusal()
    assert "gives no prompt logprobs" in refusal and "--format chat" in refusal

    out = tmp_path / "run"
    code = main(["eval", "bbq", "--model", f"openai:m@{server.url}", "--limit", "2", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "gives no prompt logprobs" in err and "--format chat" in err
    assert not out.exists()  # stopped before the run folder was made
    code = main(
        ["eval", "bbq", "--model", f"openai:m@{server.url}", "--scoring", "top-logprobs", "--out", str(out)]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "gives no top logprobs" in err and not out.exists()


def test_chat_only_server_generates_chats_and_refuses_the_rest_in_one_line(fake):
    def respond(path, body, n):
        if path.endswith("/chat/completions"):
            message = {"role": "assistant", "content": "hi"}
            return 200, {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}, {}
        return 404, {"error": {"message": "Not Found"}}, {}

    remote = client(fake(respond, answer_probe=False).url, model="m")
    chat = Chat(messages=(("user", "hello"),))
    assert remote.generate([GenerateRequest(prompt=chat)])[0].text == "hi"
    assert remote.scoring == "sampling"
    with pytest.raises(UnsupportedRequest, match="chat only.*use --format chat"):
        remote.generate([GenerateRequest(prompt="raw text")])
    with pytest.raises(UnsupportedRequest, match="no /completions endpoint.*use --format chat"):
        remote.score([ScoreRequest(prompt="p", continuations=(" q",))])
    # a chat prompt is scored from 20 sampled answers ("hi" each: none matches " q" or " h", "hi" all)
    scored = remote.score([ScoreRequest(prompt=chat, continuations=("hi", " q"))])[0]
    assert scored.reading["counts"] == [20, 0] and scored.logprobs == [0.0, -9999.0]


@pytest.mark.heavy
def test_concurrency_backs_off_when_the_server_is_overloaded(fake, monkeypatch):
    refused = []

    def respond(path, body, n):
        if server.in_flight > 2:  # this server takes two at a time
            refused.append(n)
            return 429, {"error": {"message": "too many requests"}}, {}
        return text_answer(body["prompt"])

    server = fake(respond, delay=0.05)
    prompts = [f"p{i}" for i in range(40)]

    def run() -> tuple[int, OpenAIBackend]:
        refused.clear()
        remote = client(server.url, model="m", max_concurrency=8, max_retries=30)
        assert [r.text for r in remote.generate([GenerateRequest(prompt=p) for p in prompts])] == prompts
        return len(refused), remote

    adaptive, remote = run()
    assert remote.concurrency <= 4  # learned: halved on each 429, grown by one per window of successes
    monkeypatch.setattr("alignlab.models.openai._AdaptiveLimit.observe", lambda self, status: None)
    fixed, remote = run()
    assert remote.concurrency == 8
    # The same work without adapting (8 in flight against a server that takes 2) is refused far more often;
    # a ratio in the same run, so a slow machine moves both counts alike.
    assert 2 * adaptive < fixed, f"{adaptive} refused adapting, {fixed} without"


def test_serve_answers_as_a_chat_only_api_and_as_one_without_logprobs(served):
    body = {
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 2,
        "logprobs": True,
        "top_logprobs": 2,
    }
    chat_only = served(CharBackend(), api="chat-only")
    assert httpx.post(f"{chat_only}/completions", json={"prompt": "a"}).status_code == 404
    content = httpx.post(f"{chat_only}/chat/completions", json=body).json()["choices"][0]["logprobs"][
        "content"
    ]
    assert [c["token"] for c in content] == ["[", "h"]
    assert content[0]["logprob"] == pytest.approx(char_logprob("["))
    remote = client(chat_only)
    remote.check()
    assert remote.scoring == "top-logprobs" and remote.info()["scoring"]["continues_prefill"] is True

    bare = served(CharBackend(), api="no-logprobs")
    assert httpx.post(f"{bare}/completions", json={"prompt": "a"}).status_code == 404
    choice = httpx.post(f"{bare}/chat/completions", json=body).json()["choices"][0]
    assert choice["logprobs"] is None and choice["message"]["content"] == "[h"
    remote = client(bare, answer_samples=7)
    remote.check()
    assert remote.scoring == "sampling" and remote.info()["scoring"]["samples"] == 7
    # the run's identity changes with the path: a sampled run never resumes a top-logprob one
    assert client(chat_only).fingerprint() != client(chat_only, scoring="sampling").fingerprint()
    with pytest.raises(AlignlabError, match="unknown API shape"):
        served(CharBackend(), api="grpc")
