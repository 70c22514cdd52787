"""One protocol for every run: a new experiment and a new two-model pipeline are each one module in a package
of the user's own (nothing in alignlab edited), run from the command line into the index and the report;
every pipeline refuses to resume a folder made with another model (any role's fingerprint) or another
prompt; a torn line in any pipeline's files leaves the report whole, with one warning."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
from stub_backend import DATA, BagOfWords, StubBackend

import alignlab.models
import alignlab.models.embeddings
from alignlab import registry
from alignlab.cli import main
from alignlab.errors import AlignlabError
from alignlab.experiments.base import DataSource
from alignlab.experiments.pipeline import PipelineRun
from alignlab.experiments.run_options import RunOptions

needs_data = pytest.mark.skipif(not (DATA / "harmbench").is_dir(), reason="../shared/datasets not found")

TOY_EXPERIMENT = '''
"""A toy experiment: is each number even, asked of one model."""
from dataclasses import dataclass

from alignlab.experiments import Experiment, Item, Items, Option, Settings, register
from alignlab.models.base import ScoreRequest
from alignlab.report.sections import Section


@dataclass(frozen=True)
class ParitySettings(Settings):
    numbers: int = 6


class ParitySection(Section):
    experiment = "parity"
    title = "Parity: even numbers"
    headline = ("yes_rate",)


class Parity(Experiment):
    name, help, conditions = "parity", "is N even?", ("plain",)
    settings_class = ParitySettings
    options = (Option("--numbers", "numbers", int, "numbers asked"),)
    prompts = {"QUESTION": "Is {n} even?"}
    limit_unit = "numbers"

    def items(self, source, limit, settings):
        return Items([Item(str(n), n) for n in range(limit or settings.numbers)])

    def task(self, item, condition, settings):
        scored = yield ScoreRequest(self.prompts["QUESTION"].format(n=item.value), (" Yes", " No"))
        return {"id": item.id, "condition": condition, "yes": scored.logprobs[0] > scored.logprobs[1]}

    def metrics(self, samples, settings, seed, n_resamples):
        rate = sum(s["yes"] for s in samples) / len(samples)
        return {"plain": {"n": len(samples), "yes_rate": {"value": rate, "ci": [0.0, 1.0], "n": len(samples)}}}

    def report_section(self):
        return ParitySection()


register(Parity())
'''

TOY_PIPELINE = '''
"""A toy pipeline with two models: a writer writes a line on each topic, a judge scores each line."""
from dataclasses import dataclass

from alignlab.experiments import Option, register
from alignlab.experiments.pipeline import Pipeline, PipelineSettings, Role
from alignlab.models.base import GenerateRequest, ScoreRequest
from alignlab.report.sections import Figure, Section, Table


@dataclass(frozen=True)
class EchoSettings(PipelineSettings):
    topics: int = 3


class EchoSection(Section):
    experiment = "echo"
    title = "Echo: written and judged"
    headline = ("mean_p_good",)

    def across_runs(self, runs):
        from alignlab.data.jsonl import read_jsonl

        newest = max(runs, key=lambda r: r.date)
        rows = [(row["topic"], row["text"]) for _, row in read_jsonl(newest.path / "lines.jsonl")]
        return [Table("Lines written", ("topic", "text"), rows)]


class Echo(Pipeline):
    name = "echo"
    help = "a writer writes, a judge scores"
    roles = (Role("writer", "who writes"), Role("judge", "who scores", default=None, fallback="writer"))
    settings_class = EchoSettings
    options = (Option("--topics", "topics", int, "topics to write on"),)
    prompts = {"WRITE": "Write one line about topic {k}.", "JUDGE": "Is this line good? {text}"}
    files = ("lines.jsonl", "metrics.json")

    def run(self, run, stage):
        s, m = run.settings, run.models

        def write(k):
            result = yield GenerateRequest(self.prompts["WRITE"].format(k=k), max_tokens=8, seed=s.seed + k)
            return {"id": str(k), "condition": "write", "text": result.text}

        def judge(k):
            text = run.got(str(k), "write")["text"]
            scored = yield ScoreRequest(self.prompts["JUDGE"].format(text=text), (" Yes", " No"))
            return {"id": str(k), "condition": "judge", "good": scored.logprobs[0] > scored.logprobs[1]}

        run.run_phase(m.writer, {(str(k), "write"): write(k) for k in range(s.topics)}, "write")
        run.run_phase(m.judge, {(str(k), "judge"): judge(k) for k in range(s.topics)}, "judge")
        lines = [{"topic": k, "text": run.got(str(k), "write")["text"]} for k in range(s.topics)]
        (run.path / "lines.jsonl").write_text("".join(__import__("json").dumps(x) + "\\n" for x in lines))
        share = sum(run.got(str(k), "judge")["good"] for k in range(s.topics)) / s.topics
        metrics = {"all": {"n": s.topics, "mean_p_good": {"value": share, "ci": [0.0, 1.0], "n": s.topics}}}
        run.finish(metrics)
        return metrics

    def report_section(self):
        return EchoSection()


register(Echo())
'''


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    """A package of the user's own holding the two modules, named in ALIGNLAB_PLUGINS; discovery starts anew."""
    package = tmp_path / "mine"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "parity.py").write_text(textwrap.dedent(TOY_EXPERIMENT))
    (package / "echo.py").write_text(textwrap.dedent(TOY_PIPELINE))
    monkeypatch.syspath_prepend(str(tmp_path))
    for module in ("mine", "mine.parity", "mine.echo"):  # imported afresh, so they register again
        monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setenv(registry.PLUGINS_ENV, "mine.parity,mine.echo")
    for name in ("_EXPERIMENTS", "_PIPELINES", "_SUITES", "_SECTIONS"):
        monkeypatch.setattr(registry, name, dict(getattr(registry, name)))
    monkeypatch.setattr(registry, "_discovered", False)
    return package


@pytest.fixture
def stubs(monkeypatch):
    """Every model spec loads a stub backend (its fingerprint "stub:SPEC")."""
    loaded = []

    def load(spec, **_):
        loaded.append(StubBackend(spec))
        return loaded[-1]

    monkeypatch.setattr(alignlab.models, "load_model", load)
    monkeypatch.setattr(alignlab.models.embeddings, "Embedder", BagOfWords)
    return loaded


def test_a_new_experiment_and_a_new_pipeline_are_one_module_each(tmp_path, plugins, stubs, capsys):
    runs = tmp_path / "runs"
    common = ["--no-progress", "--no-cache"]
    assert main(["eval", "parity", "--model", "stub-a", "--out", str(runs / "parity"), *common]) == 0
    code = main(
        [
            "echo",
            "--writer",
            "stub-w",
            "--judge",
            "stub-j",
            "--topics",
            "4",
            "--out",
            str(runs / "echo"),
            *common,
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert {b.spec for b in stubs} == {"stub-a", "stub-w", "stub-j"}
    config = json.loads((runs / "echo" / "config.json").read_text())
    assert config["identity"]["models"]["judge"] == {"spec": "stub-j", "fingerprint": "stub:stub-j"}
    assert config["identity"]["model_fingerprint"] == "stub:stub-w"
    assert config["models"] == {"writer": "stub-w", "judge": "stub-j"} and config["settings"]["topics"] == 4

    # the same command again resumes: nothing asked twice
    stubs.clear()
    assert main(["echo", "--out", str(runs / "echo"), *common]) == 0  # models and settings from the folder
    assert {b.spec for b in stubs} == {"stub-w", "stub-j"}
    assert all(b.calls["generate"] == b.calls["score"] == 0 for b in stubs)
    capsys.readouterr()

    assert main(["index", str(runs), "--format", "csv", "-o", str(tmp_path / "index.csv")]) == 0
    index = (tmp_path / "index.csv").read_text()
    assert "parity" in index and "echo" in index and "mean_p_good" in index and "yes_rate" in index
    assert main(["report", str(runs), "-o", str(tmp_path / "report.html")]) == 0
    html = (tmp_path / "report.html").read_text()
    assert "Parity: even numbers" in html and "Echo: written and judged" in html and "Lines written" in html
    assert "warning" not in capsys.readouterr().err


def test_a_pipeline_option_given_again_must_agree_with_the_folder(tmp_path, plugins, stubs, capsys):
    out = str(tmp_path / "echo")
    assert main(["echo", "--topics", "2", "--out", out, "--no-progress", "--no-cache"]) == 0
    capsys.readouterr()
    assert main(["echo", "--topics", "3", "--out", out, "--no-progress", "--no-cache"]) == 2
    assert "differs in: topics" in capsys.readouterr().err
    assert main(["eval", "parity", "--out", out, "--no-progress", "--no-cache"]) == 2
    assert "holds a different run: a 'echo' run, not a 'parity' one" in capsys.readouterr().err


class Refingered(StubBackend):
    """A stub whose weights changed: the same spec, another fingerprint."""

    def fingerprint(self) -> str:
        return f"stub:{self.spec}:retrained"


def _opened(pipeline, out, changed_role=None, monkeypatch=None):
    """Open `pipeline`'s folder under its identity, every role on a stub (`changed_role`'s retrained)."""
    models = pipeline.models({role.name: f"stub-{role.name}" for role in pipeline.roles})
    if monkeypatch is not None:
        monkeypatch.setattr(
            alignlab.models,
            "load_model",
            lambda spec, **_: (Refingered if spec == f"stub-{changed_role}" else StubBackend)(spec),
        )
    opts = RunOptions(out=out, use_cache=False, progress=False, data=DataSource(data_dir=str(DATA)))
    run = PipelineRun(
        pipeline,
        pipeline.settings(
            {"behavior": "kind", "description": "is kind"} if pipeline.name == "mwe-generate" else {}
        ),
        models,
        opts,
    )
    try:
        run.open()
    finally:
        run.close()


PIPELINES = sorted(registry.pipelines())


@needs_data
@pytest.mark.parametrize("name", PIPELINES)
def test_every_pipeline_refuses_a_folder_made_with_other_weights_in_any_role(
    name, tmp_path, stubs, monkeypatch
):
    pipeline = registry.pipeline(name)
    first = pipeline.roles[0].name
    _opened(pipeline, tmp_path / "run")
    _opened(pipeline, tmp_path / "run")  # the same models again: resumed
    for role in pipeline.roles:
        with pytest.raises(AlignlabError) as refused:
            _opened(pipeline, tmp_path / "run", role.name, monkeypatch)
        key = "model_fingerprint" if role.name == first else f"models.{role.name}.fingerprint"
        assert f"differs in: {key})" in str(refused.value)


@needs_data
@pytest.mark.parametrize("name", PIPELINES)
def test_every_pipeline_refuses_a_folder_made_with_another_prompt(name, tmp_path, stubs, monkeypatch):
    pipeline = registry.pipeline(name)
    _opened(pipeline, tmp_path / "run")
    prompts = dict(pipeline.prompts)
    edited = sorted(prompts)[0]
    prompts[edited] = f"{prompts[edited]} (edited)"
    monkeypatch.setattr(type(pipeline), "prompts", prompts)
    with pytest.raises(AlignlabError, match=rf"differs in: prompts\.{edited}\)"):
        _opened(pipeline, tmp_path / "run")


def _torn(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"id": "torn", "replies": [{"rep\n')


def _run_folder(root, name, metrics):
    root.mkdir(parents=True, exist_ok=True)
    config = {
        "config_hash": "x",
        "identity": {"experiment": name},
        "experiment": name,
        "started": "2026-01-01",
    }
    (root / "config.json").write_text(json.dumps(config))
    (root / "metrics.json").write_text(json.dumps({"experiment": name, "conditions": metrics}))


# the file each pipeline's Section reads beside metrics.json, and a line of it that is whole
READ_BY_SECTION = {
    "redteam": (
        "transcripts.jsonl",
        {
            "id": "plain/0",
            "outcome": "failure",
            "attack": "a",
            "turns": [],
            "replies": [{"reply": "r", "p_harmful": 0.1}],
        },
    ),
    "cai": (
        "revise/chains.jsonl",
        {"prompt": "p", "response": "r", "rounds": [{"pair": "x", "critique": "c", "revision": "v"}]},
    ),
    "mwe-generate": (
        "samples.jsonl",
        {"id": "agree/0", "condition": "generate", "label": "agree", "text": "s"},
    ),
}


@pytest.mark.parametrize("name", PIPELINES)
def test_a_torn_line_in_a_pipelines_files_leaves_the_report_whole_with_one_warning(name, tmp_path, capsys):
    assert name in READ_BY_SECTION, f"say which file the {name} Section reads"
    file, row = READ_BY_SECTION[name]
    runs = tmp_path / "runs"
    _run_folder(runs / name, name, {})
    _run_folder(runs / "other", "bbq", {"q": {"n": 3, "accuracy": {"value": 0.5, "ci": [0.1, 0.9], "n": 3}}})
    (runs / name / file).parent.mkdir(parents=True, exist_ok=True)
    (runs / name / file).write_text(json.dumps(row) + "\n")
    assert main(["report", str(runs), "-o", str(tmp_path / "whole.html")]) == 0
    assert "warning" not in capsys.readouterr().err
    _torn(runs / name / file)
    assert main(["report", str(runs), "-o", str(tmp_path / "report.html")]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1 and file.split("/")[-1] in warnings[0], warnings
    html = (tmp_path / "report.html").read_text()
    assert "What could not be read" in html and 'data-experiment="bbq"' in html  # the rest still renders
