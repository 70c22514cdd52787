"""An option that would do nothing for the run asked is refused in one line, before any model loads: Ray's
options without --executor ray, a local model's generation options for a served model or a GGUF file."""

from __future__ import annotations

import pytest

import alignlab.models
from alignlab.cli import main


@pytest.fixture
def loads(monkeypatch) -> list[str]:
    loaded: list[str] = []
    monkeypatch.setattr(alignlab.models, "_load", lambda spec, bare, **_: loaded.append(spec))
    return loaded


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--workers", "8"], "--workers: for --executor ray only"),
        (
            ["--ray-address", "ray://h:10001", "--gpus-per-worker", "1"],
            "--ray-address, --gpus-per-worker: for",
        ),
        (["--model", "openai:m@http://127.0.0.1:9/v1", "--gen-width", "8"], "--gen-width: for local models"),
        (["--model", "gguf:smollm2-135m", "--gen-dtype", "bfloat16"], "--gen-dtype: for transformers models"),
    ],
)
def test_an_option_that_would_do_nothing_is_refused(flags, says, loads, tmp_path, capsys):
    assert main(["eval", "law-school", "--limit", "1", *flags, "--out", str(tmp_path / "run")]) == 2
    assert says in capsys.readouterr().err
    assert not loads and not (tmp_path / "run").exists()
