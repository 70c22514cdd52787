"""`inspect:PROVIDER/MODEL` through Inspect's model API, against `alignlab serve` (Inspect's OpenAI-compatible
provider, `openai-api/SERVICE/MODEL`, with $SERVICE_API_KEY): BBQ equals the `openai:` path (issue 28)."""

from __future__ import annotations

import json
import sys

import pytest
from test_openai_backend import CharBackend

from alignlab.cli import main
from alignlab.errors import AlignlabError, UnsupportedRequest
from alignlab.models import load_model, parse_spec
from alignlab.models.base import Chat, GenerateRequest, ScoreRequest
from alignlab.serve import serve

pytest.importorskip("inspect_ai")


@pytest.fixture
def server():
    """A chat-only `alignlab serve` (top logprobs, no prompt logprobs) around the character model."""
    servers = []

    def start(api: str = "chat-only"):
        servers.append(serve(CharBackend(), api=api))
        return servers[-1].base_url

    yield start
    for running in servers:
        running.close()


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("LOCAL_API_KEY", "not-a-real-key")  # Inspect's openai-api/local reads $LOCAL_API_KEY


def test_inspect_specs_are_parsed_and_checked():
    spec = parse_spec("inspect:openai-api/local/m@http://127.0.0.1:9/v1")
    assert (spec.kind, spec.target, spec.url) == ("inspect", "openai-api/local/m", "http://127.0.0.1:9/v1")
    assert parse_spec("inspect:anthropic/claude-x").url == ""
    for bad in ("inspect:claude", "inspect:a/b@c", "inspect:a/b@http://"):
        with pytest.raises(AlignlabError, match="inspect:PROVIDER/MODEL|bad server URL"):
            parse_spec(bad)


def test_a_missing_extra_or_key_is_one_line(monkeypatch, server):
    monkeypatch.setitem(sys.modules, "inspect_ai.model", None)  # as if inspect-ai were not installed
    with pytest.raises(AlignlabError, match=r"pip install 'alignlab\[inspect\]'"):
        load_model("inspect:openai-api/local/m@http://127.0.0.1:9/v1").check()
    monkeypatch.delitem(sys.modules, "inspect_ai.model")  # installed again
    import inspect_ai.model  # noqa: F401

    monkeypatch.delenv("LOCAL_API_KEY")
    with pytest.raises(AlignlabError, match="LOCAL_API_KEY") as caught:
        load_model(f"inspect:openai-api/local/char-model@{server()}").check()
    assert "\n" not in str(caught.value)


def test_top_logprobs_generation_and_sampling_through_inspect(server):
    url = server()
    backend = load_model(f"inspect:openai-api/local/char-model@{url}")
    backend.check()
    assert backend.info()["scoring"] == {"path": "top-logprobs", "top_k": 20, "continues_prefill": True}
    chat = Chat((("user", "hi"),), "Yo")
    assert backend.generate([GenerateRequest(prompt=chat, max_tokens=40)])[0].text == "[hi|Yo]"
    # the character model's chat answer starts with "[" (log-probability -(1 + 91 % 5) / 10)
    scored = backend.score([ScoreRequest(prompt=chat, continuations=("[", "x"))])[0]
    assert scored.logprobs[0] == pytest.approx(-0.2) and scored.reading["outside"] == [False, True]
    with pytest.raises(UnsupportedRequest, match="--format chat"):
        backend.score([ScoreRequest(prompt="raw text", continuations=(" a",))])

    sampled = load_model(f"inspect:openai-api/local/char-model@{server('no-logprobs')}", answer_samples=5)
    sampled.check()
    assert sampled.scoring == "sampling"
    counted = sampled.score([ScoreRequest(prompt=chat, continuations=("[h", "x"))])[0]
    assert counted.reading["counts"] == [5, 0] and counted.logprobs[0] == 0.0


@pytest.mark.slow
def test_bbq_through_inspect_equals_the_openai_path(server, tmp_path, capsys):
    url = server()
    common = ["--format", "chat", "--limit", "4", "--conditions", "q", "--no-cache", "--no-progress"]
    runs = {
        "openai": [f"openai:char-model@{url}", "--scoring", "top-logprobs"],
        "inspect": [f"inspect:openai-api/local/char-model@{url}"],
    }
    for name, (model, *more) in runs.items():
        assert main(["eval", "bbq", "--model", model, *more, *common, "--out", str(tmp_path / name)]) == 0
    capsys.readouterr()
    samples = {
        name: sorted(
            (json.loads(line) for line in (tmp_path / name / "samples.jsonl").read_text().splitlines()),
            key=lambda s: s["id"],
        )
        for name in runs
    }
    assert len(samples["openai"]) == 4
    for mine, theirs in zip(samples["openai"], samples["inspect"], strict=True):
        assert mine["logprobs"] == pytest.approx(theirs["logprobs"], abs=1e-9)
        assert mine["scoring"] == theirs["scoring"]
    metrics = {name: json.loads((tmp_path / name / "metrics.json").read_text()) for name in runs}
    assert metrics["openai"]["conditions"] == metrics["inspect"]["conditions"]
    assert metrics["inspect"]["scoring"]["path"] == "top-logprobs"
    config = json.loads((tmp_path / "inspect" / "config.json").read_text())
    assert config["model"]["backend"] == "inspect" and config["model"]["scoring"]["path"] == "top-logprobs"
    # raw prompts cannot be scored through a chat API: said before any work
    out = tmp_path / "raw"
    code = main(["eval", "bbq", "--model", runs["inspect"][0], "--limit", "2", "--out", str(out)])
    assert code == 2 and "--format chat" in capsys.readouterr().err and not out.exists()
