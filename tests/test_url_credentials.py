"""A key written into a model URL (user:password@, or ?api_key=) never leaves the process: every command that
takes a model spec refuses it in one line, before anything is loaded or written, and the secret is in no
stream and no file (issue 29)."""

from __future__ import annotations

import pytest

from alignlab.cli import main
from alignlab.models import parse_spec, shown_spec

SECRET = "sk-secretABC-4e1d"
URLS = [
    f"http://{SECRET}:pw@127.0.0.1:9/v1",
    f"http://user:{SECRET}@127.0.0.1:9/v1",
    f"http://{SECRET}@127.0.0.1:9/v1",
    f"http://127.0.0.1:9/v1?api_key={SECRET}",
    f"http://127.0.0.1:9/v1?x=1&Token={SECRET}",
    f"https://127.0.0.1:9/v1?access_token={SECRET}&y=2",
    f"http://127.0.0.1:9/v1;api_key={SECRET}",
    f"http://127.0.0.1:9/v1#{SECRET}",
]
COMMANDS = [  # (arguments before the spec's flag, the flag)
    (["eval", "bbq", "--limit", "1"], "--model"),
    (["eval", "p-true", "--limit", "1"], "--model"),
    (["generate", "evals", "--behavior", "b", "--description", "is b", "--n", "1"], "--judge"),
    (["cai", "revise"], "--feedback-model"),
    (["redteam", "--attacks", "zero-shot"], "--attacker"),
    (["redteam", "--attacks", "zero-shot"], "--target"),
]


@pytest.mark.parametrize("url", URLS)
def test_a_key_in_a_url_is_refused_naming_where_keys_go(url):
    for spec in (f"openai:m@{url}", f"inspect:openai-api/local/m@{url}"):
        with pytest.raises(Exception) as caught:
            parse_spec(spec)
        message = str(caught.value)
        assert SECRET not in message
        assert "bad server URL in model spec" in message and "put the key in" in message
        assert ("OPENAI_API_KEY" in message) == spec.startswith("openai:")


def test_a_plain_query_stays_and_keys_are_hidden_when_shown():
    assert parse_spec("openai:m@http://h:8000/v1?api-version=2024").url.endswith("?api-version=2024")
    shown = shown_spec(f"openai:m@http://h/v1?a=1&api_key={SECRET}#x")
    assert SECRET not in shown and "api_key=***" in shown and "a=1" in shown
    shown = shown_spec(f"openai:m@http://h/v1;session_token={SECRET};v=2#{SECRET}")
    assert SECRET not in shown and "session_token=***" in shown and ";v=2" in shown


@pytest.mark.parametrize(("before", "flag"), COMMANDS)
def test_every_command_refuses_it_before_writing_anything(before, flag, tmp_path, capsys, caplog):
    out = tmp_path / "run"
    spec = f"openai:m@{URLS[0]}"
    code = main([*before, flag, spec, "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 2
    assert "bad server URL" in captured.err and "put the key in" in captured.err
    for text in (captured.out, captured.err, caplog.text):
        assert SECRET not in text
    assert not out.exists()
    assert not any(SECRET.encode() in p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
