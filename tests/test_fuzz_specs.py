"""Fuzzing the model-spec grammar (issue 17): a spec either parses, or is an AlignlabError of one line that
names it (credentials in a URL hidden); never a ValueError such as "Port out of range" from deep inside."""

from __future__ import annotations

import pytest
from datadir import needs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alignlab.errors import AlignlabError
from alignlab.models import ModelSpec, bundled, load_model, parse_spec, shown_spec

FUZZ = settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
PREFIXES = ("hf:", "gguf:", "llamacpp:", "openai:", "", "nosuch:", "HF:")
HOSTS = st.sampled_from(["127.0.0.1", "localhost", "[::1]", "", "[::1", "h st", "user:pw@host", "ex.com"])
PORTS = st.one_of(st.none(), st.integers(-5, 100_000).map(str), st.sampled_from(["", "x", "80a", "０"]))


@st.composite
def openai_specs(draw) -> str:
    model = draw(st.sampled_from(["m", "", " ", "org/model@v1", "a:b"]))
    scheme = draw(st.sampled_from(["http://", "https://", "ftp://", "", "http:/"]))
    host, port = draw(HOSTS), draw(PORTS)
    path = draw(st.sampled_from(["/v1", "", "/", "/v1?x=1", "/v 1"]))
    return f"openai:{model}@{scheme}{host}{'' if port is None else ':' + port}{path}"


SPECS = st.one_of(
    openai_specs(),
    st.tuples(st.sampled_from(PREFIXES), st.text(max_size=40)).map("".join),
    st.tuples(st.sampled_from(PREFIXES), st.sampled_from(sorted(bundled.BUNDLED))).map("".join),
    st.text(max_size=20),
)


def check(spec: str) -> ModelSpec | None:
    try:
        parsed = parse_spec(spec)
    except AlignlabError as exc:
        message = str(exc)
        assert "\n" not in message and "\r" not in message, message
        if spec.strip() and spec.isprintable():
            assert shown_spec(spec) in message, message
        assert "pw@" not in message, message  # a password never reaches a message
        return None
    assert parsed.kind in ("bundled", "hf", "llamacpp", "openai")
    assert parsed.target.strip()
    if parsed.kind == "openai":
        assert parsed.url.startswith(("http://", "https://"))
    return parsed


@FUZZ
@given(SPECS)
def test_every_spec_parses_or_is_one_line_naming_it(spec):
    check(spec)


@FUZZ
@given(openai_specs())
def test_openai_specs_build_a_backend_or_fail_on_one_line(spec):
    """The backend's constructor does no network I/O: building it shows the URL is usable."""
    if check(spec) is None:
        with pytest.raises(AlignlabError):
            load_model(spec)
    else:
        backend = load_model(spec)
        assert "pw" not in backend.base_url


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("openai:m@http://127.0.0.1:99999/v1", "'openai:m@http://127.0.0.1:99999/v1': Port out of range"),
        ("openai:m@http://127.0.0.1:x/v1", "'openai:m@http://127.0.0.1:x/v1': Port could not be cast"),
        ("openai:m@http://127.0.0.1:0/v1", "port 0"),
        ("openai:m@http://:8000/v1", "no host name"),
        ("openai:m@http://[::1/v1", "Invalid IPv6 URL"),
        ("openai:@http://127.0.0.1:8000/v1", "expected openai:MODEL@http://HOST:PORT/v1"),
        ("openai:m", "expected openai:MODEL@http://HOST:PORT/v1"),
        ("openai:m@ftp://h/v1", "expected openai:MODEL@http://HOST:PORT/v1"),
        ("openai:m@http://u:secret@h:99999/v1", "'openai:m@http://***@h:99999/v1'"),
        ("hf:", "names nothing after 'hf:'"),
        ("gguf:  ", "names nothing after 'gguf:'"),
        ("", "empty model spec"),
        ("smollm2-135m\n", "control characters"),
        ("nosuch:thing", "unknown model spec 'nosuch:thing'"),
        ("gguf:/no/such/file.gguf", "model file not found: /no/such/file.gguf"),
        ("gguf:" + "a" * 5000, "model file not found"),
    ],
)
def test_bad_specs_name_themselves_on_one_line(spec, fragment):
    with pytest.raises(AlignlabError) as caught:
        load_model(spec)
    message = str(caught.value)
    assert fragment in message and "\n" not in message and "secret" not in message


def test_good_specs_take_apart():
    assert parse_spec("smollm2-135m") == ModelSpec("bundled", "smollm2-135m")
    assert parse_spec("hf:org/name") == ModelSpec("hf", "org/name")
    assert parse_spec("gguf:smollm2-135m") == ModelSpec("llamacpp", "smollm2-135m")
    assert parse_spec("llamacpp:/m.gguf") == ModelSpec("llamacpp", "/m.gguf")
    assert parse_spec("openai:org/m@v2@http://h:8/v1") == ModelSpec("openai", "org/m@v2", "http://h:8/v1")


@needs("bbq")
def test_the_cli_says_one_line_for_a_bad_port(tmp_path, capsys):
    from alignlab.cli import main

    code = main(
        ["eval", "bbq", "--model", "openai:m@http://127.0.0.1:99999/v1", "--out", str(tmp_path / "r")]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert [line for line in err.splitlines() if line.strip()] == [
        "error: bad server URL in model spec 'openai:m@http://127.0.0.1:99999/v1': Port out of range 0-65535"
    ]
