"""`@params=N` on any model spec: parsed by hand, refused when malformed, and kept in the backend's info (which
run configs, the index and the scaling figures read) without changing which model is loaded."""

from __future__ import annotations

from dataclasses import replace

import pytest
from datadir import DATA

import alignlab.models as models
from alignlab.errors import AlignlabError
from alignlab.models import declared_axes, declared_parameters, parse_spec


@pytest.mark.parametrize(
    ("spec", "bare", "count"),
    [
        ("smollm2-135m@params=135M", "smollm2-135m", 135_000_000),
        (
            "openai:llama-70b@http://127.0.0.1:8000/v1@params=70B",
            "openai:llama-70b@http://127.0.0.1:8000/v1",
            70 * 10**9,
        ),
        ("hf:/m/folder@params=7.5b", "hf:/m/folder", 7_500_000_000),
        ("gguf:/m.gguf@params=1.2T", "gguf:/m.gguf", 1_200_000_000_000),
        ("hf:x@params=350000", "hf:x", 350_000),
        ("openai:m@http://127.0.0.1:1/v1?q=a@b", "openai:m@http://127.0.0.1:1/v1?q=a@b", None),
    ],
)
def test_a_declared_count_by_hand(spec, bare, count):
    assert declared_parameters(spec) == (bare, count)
    axes = (("params", count),) if count else ()
    assert parse_spec(spec) == replace(parse_spec(bare), parameters=count, axes=axes)


def test_other_axes_and_several_at_once():
    bare, axes = declared_axes("hf:ckpt-500@params=13B@rlhf_steps=500@tokens=0.3T")
    assert bare == "hf:ckpt-500" and axes == {"params": 13 * 10**9, "rlhf_steps": 500.0, "tokens": 3e11}
    assert declared_axes("hf:x@RLHF_steps=0") == ("hf:x", {"rlhf_steps": 0.0})  # zero steps: the start
    with pytest.raises(AlignlabError, match="given twice"):
        declared_axes("hf:x@steps=1@steps=2")
    with pytest.raises(AlignlabError, match="is not a number"):
        declared_axes("hf:x@steps=many")


@pytest.mark.parametrize("text", ["", "lots", "-5B", "0", "7B7", "1e9"])
def test_a_malformed_count_is_one_line_naming_it(text):
    with pytest.raises(AlignlabError, match="is not a parameter count"):
        parse_spec(f"hf:x@params={text}")


def test_the_backend_reports_the_declared_count_and_loads_the_bare_spec(monkeypatch):
    loaded = []

    class Served:
        def __init__(self, spec, **_):
            self.spec = spec
            loaded.append(spec)

        def info(self):
            return {"backend": "openai", "model": "m"}

    monkeypatch.setattr("alignlab.models.openai.OpenAIBackend", lambda spec, **kw: Served(spec, **kw))
    backend = models.load_model("openai:m@http://127.0.0.1:9/v1@params=70B")
    assert backend.info() == {
        "backend": "openai",
        "model": "m",
        "parameters": 70 * 10**9,
        "parameters_from": "the model spec (@params=)",
    }
    assert loaded == ["openai:m@http://127.0.0.1:9/v1@params=70B"]  # named as typed
    plain = models.load_model("openai:m@http://127.0.0.1:9/v1")
    assert "parameters" not in plain.info()


def test_fine_tuning_reads_the_weights_whatever_count_is_declared():
    from alignlab.training.common import hf_folder

    with pytest.raises(AlignlabError, match="cannot fine-tune 'gguf:/x.gguf'"):
        hf_folder("gguf:/x.gguf@params=1B")


@pytest.mark.heavy  # a server on 127.0.0.1
@pytest.mark.skipif(not (DATA / "bbq").is_dir(), reason="../shared/datasets not found")
def test_a_ladder_of_served_models_with_declared_sizes_draws_a_scaling_figure(tmp_path):
    from test_openai_backend import CharBackend

    from alignlab import experiments
    from alignlab.evaluate import RunOptions, run_ladder
    from alignlab.experiments import DataSource
    from alignlab.report import write_report
    from alignlab.report.index import build_index
    from alignlab.report.runs import find_runs
    from alignlab.serve import serve

    server = serve(CharBackend())
    try:
        url = server.base_url
        specs = [f"openai:char-model@{url}@params={size}" for size in ("7B", "13B", "70B")]
        bbq = experiments.get("bbq")
        opts = RunOptions(
            out=tmp_path / "runs",
            limit=3,
            data=DataSource(data_dir=str(DATA)),
            use_cache=False,
            progress=False,
            bootstrap=50,
        )
        results = run_ladder(bbq, bbq.settings(), specs, opts)
    finally:
        server.close()
    assert [r.parameters for r in results] == [7 * 10**9, 13 * 10**9, 70 * 10**9]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        f"bbq-char-model-params-{size}" for size in ("13B", "70B", "7B")
    ]
    index = build_index(find_runs(tmp_path / "runs").runs)
    assert sorted(index["parameters"].dropna().unique()) == [7 * 10**9, 13 * 10**9, 70 * 10**9]
    write_report(tmp_path / "runs", tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "against parameter count" in page and "left out" not in page


def test_a_served_models_run_is_named_after_the_model_not_the_url():
    from alignlab.experiments.run_options import run_name

    assert (
        run_name("bbq", "openai:llama-3-70b@http://127.0.0.1:8000/v1@params=70B")
        == "bbq-llama-3-70b-params-70B"
    )
    assert run_name("bbq", "openai:meta/llama@https://api.example/v1") == "bbq-meta-llama"
    assert run_name("bbq", "hf:/models/ckpt@rlhf_steps=500") == "bbq-ckpt-rlhf_steps-500"
    assert run_name("bbq", "smollm2-135m") == "bbq-smollm2-135m"


@pytest.mark.heavy  # a server on 127.0.0.1
def test_a_model_served_by_alignlab_serve_reports_its_size_from_the_model_card():
    from test_openai_backend import CharBackend

    from alignlab.serve import serve

    class Counted(CharBackend):
        def info(self):
            return {"backend": "char", "parameters": 135_000_000}

    server = serve(Counted())
    try:
        backend = models.load_model(f"openai:char-model@{server.base_url}")
        backend.check()
        assert backend.info()["parameters"] == 135_000_000
        assert backend.info()["parameters_from"] == "the server's model card"
        declared = models.load_model(f"openai:char-model@{server.base_url}@params=7B")
        declared.check()
        assert declared.info()["parameters"] == 7 * 10**9  # what the user declares wins
    finally:
        server.close()
    plain = serve(CharBackend())  # a backend that cannot count: no count on the card, none made up
    try:
        backend = models.load_model(f"openai:char-model@{plain.base_url}")
        backend.check()
        assert "parameters" not in backend.info()
    finally:
        plain.close()
