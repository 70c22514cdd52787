"""Constitutional AI end to end on stand-ins: scripted models sample and judge, a tiny random llama is trained
(SFT, preference model, DPO); every stage's artefacts, the AI labels' order-averaging and clamping, resume
after a kill, a finished run asking nothing more, and the report's Section. On the bundled model: a small
`cai all` from the command line."""

from __future__ import annotations

import json
import re

import pytest
from stub_backend import DATA, StubBackend, run_cli, scripted_models
from tiny_model import tiny_model

from alignlab import registry
from alignlab.errors import AlignlabError
from alignlab.experiments.base import DataSource
from alignlab.experiments.pipeline import PipelineRun, run_pipeline
from alignlab.experiments.run_options import RunOptions
from alignlab.models.base import GenerateResult, ScoreResult
from alignlab.papers.constitutional_ai import cai_prompts as P
from alignlab.papers.constitutional_ai.cai_run import STAGES, CAIRun

pytestmark = pytest.mark.heavy  # trains a tiny model

CAI = registry.pipeline("cai")

needs_data = pytest.mark.skipif(
    not (DATA / "hh-rlhf").is_dir() or not (DATA / "harmbench").is_dir(),
    reason="../shared/datasets not found",
)
_LAST_OPTIONS = re.compile(r"\(A\) \[\[\[(.*?)\]\]\]\n \(B\) \[\[\[(.*?)\]\]\]", re.S)


class Scripted(StubBackend):
    """Replies "reply N" (N from the request's seed); as a judge, P(" (A)") is 0.9 when option (A)'s number is
    the larger (the last options in the prompt: few-shot examples come first), else 0.1. Red-team judging
    prompts get the stub's hashed numbers."""

    def __init__(self, spec="scripted", fail_on_call=None):
        super().__init__(spec, fail_on_call=fail_on_call)

    def generate(self, requests):
        self.count_generate_call(requests)
        return [GenerateResult(f" reply {r.seed % 1000}") for r in requests]

    def score(self, requests):
        out = []
        for r in requests:
            found = _LAST_OPTIONS.findall(r.prompt) if isinstance(r.prompt, str) else []
            numbers = [re.findall(r"\d+", x) for x in found[-1]] if found else []
            if tuple(r.continuations) == P.OPTIONS and numbers and all(numbers):
                a, b = (int(n[-1]) for n in numbers)
                p = 0.9 if a > b else 0.1 if a < b else 0.5
                self.calls["score"] += 1
                out.append(ScoreResult([__import__("math").log(p), __import__("math").log(1 - p)], [1, 1]))
            else:
                out += super().score([r])
        return out


class Models(dict):
    """Every model spec resolves to one scripted backend, made on first use."""

    def __init__(self, fail_on_call=None):
        super().__init__()
        self.fail_on_call = fail_on_call

    def __missing__(self, spec):
        self[spec] = Scripted(spec, self.fail_on_call)
        return self[spec]


@pytest.fixture
def scripted(monkeypatch):
    backends = scripted_models(monkeypatch)
    return backends


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("tiny") / "base")


def _values(**changes) -> dict:
    small = {"n": 6, "eval_n": 3, "rounds": 2, "hhh_n": 4, "redteam_n": 2, "pm_eval_n": 4, "max_tokens": 8}
    small.update({"critique_tokens": 8, "training.lora_r": 4, "training.lora_alpha": 8})
    small.update({"training.train_batch_size": 4, "training.max_length": 48, "training.save_steps": 1000})
    return {**small, **changes}


def _opts(tmp_path) -> RunOptions:
    return RunOptions(
        out=tmp_path / "run",
        batch_size=4,
        use_cache=False,
        progress=False,
        data=DataSource(data_dir=str(DATA)),
    )


def _stage(tmp_path, tiny, stage, **changes) -> dict:
    """One stage through the pipeline runner, as `alignlab cai STAGE` runs it."""
    return run_pipeline(CAI, _values(**changes), {"model": f"hf:{tiny}"}, _opts(tmp_path), stage).result


def _run(tmp_path, tiny, **changes) -> CAIRun:
    """The run's folder opened under its identity, for calling a stage's function directly."""
    ctx = PipelineRun(
        CAI, CAI.settings(_values(**changes)), CAI.models({"model": f"hf:{tiny}"}), _opts(tmp_path)
    )
    ctx.open()
    return CAIRun(ctx)


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@needs_data
def test_every_stage_end_to_end(tmp_path, scripted, tiny, monkeypatch):
    import alignlab.models

    models = Models()
    monkeypatch.setattr(alignlab.models, "load_model", lambda spec, **_: models[spec])
    results = {stage: _stage(tmp_path, tiny, stage) for stage in STAGES}
    run = _run(tmp_path, tiny)
    root = tmp_path / "run"

    # revise: two rounds per prompt, each under a drawn pair, the revisions of both rounds in the SFT set
    chains = _rows(root / "revise" / "chains.jsonl")
    assert len(chains) == 6 and all(len(c["rounds"]) == 2 for c in chains)
    pairs = {p.id for p in run.constitution.critiques}
    assert all(r["pair"] in pairs for c in chains for r in c["rounds"])
    sft = _rows(root / "revise" / "sft.jsonl")
    assert len(sft) == 12 and all(
        r["prompt"].endswith("\n\nAssistant:") and r["completion"].startswith(" ") for r in sft
    )
    from datasets import load_from_disk

    assert load_from_disk(str(root / "revise" / "sft_dataset")).num_rows == 12
    train, held, _ = run.prompts()
    assert not set(train) & set(held) and len(held) == 3

    # label: P(reply 1 better) is 0.9 where its number is larger, both orders averaged
    prefs = _rows(root / "label" / "preferences.jsonl")
    assert len(prefs) == 6 and sum(p["held_out"] for p in prefs) == 1
    for p in prefs:
        a, b = (int(t.split()[-1]) for t in p["responses"])
        assert p["p_first"] == pytest.approx(0.9 if a > b else 0.1 if a < b else 0.5)
        assert p["by_principle"][0][0] == pytest.approx(0.9 if a > b else 0.1 if a < b else 0.5)

    # training: transformers folders for SFT, the RL-CAI policy and one DPO policy per kind of label; the
    # preference model tested on both kinds of pair, and saying it had no helpfulness comparisons to mix in
    assert (root / "sft" / "model" / "config.json").is_file() and (root / "policy" / "config.json").is_file()
    assert results["train-pm"]["hh_rlhf_harmless_base"]["n"] == 4
    assert results["train-pm"]["human_helpfulness_pairs"] == 0
    assert "helpful-base" in results["train-pm"]["helpfulness_source"]
    assert results["train-rl"]["prompts"] == 6 and results["train-rl"]["train"]["train_runtime"] > 0
    variants = results["train-dpo"]["variants"]
    assert set(variants) == {"hard", "soft", "clamped"}
    assert all(v["pairs"] == 6 - sum(p["p_first"] == 0.5 for p in prefs) for v in variants.values())
    assert variants["hard"]["train"]["swapped_pairs"] == 0
    assert all((root / f"dpo-{x}" / "model" / "config.json").is_file() for x in variants)

    # evaluate: every pair of models compared on each dimension, Elo anchored at the base model
    m = json.loads((root / "metrics.json").read_text())
    names = {"base", "sl-cai", "rl-cai", "dpo-hard", "dpo-soft", "dpo-clamped"}
    assert set(m["conditions"]) == names
    assert m["conditions"]["base"]["elo_harmlessness"]["value"] == 0.0
    assert m["conditions"]["rl-cai"]["hhh"]["n"] == 4
    assert all(m["conditions"][name]["redteam"]["n"] == 2 for name in names)
    comparisons = _rows(root / "evaluate" / "comparisons.jsonl")
    assert len(comparisons) == 3 * 15 * 2
    assert set(m["stages"]) == {"revise", "sft", "label", "pm", "rl", "dpo-hard", "dpo-soft", "dpo-clamped"}
    assert (root / "elo.png").stat().st_size > 1000

    # a finished run asks the models nothing more and trains nothing again
    stamp = (root / "policy" / "model.safetensors").stat().st_mtime_ns
    models.clear()
    for stage in STAGES:
        _stage(tmp_path, tiny, stage)
    assert all(b.calls["generate"] == 0 and b.calls["score"] == 0 for b in models.values())
    assert (root / "policy" / "model.safetensors").stat().st_mtime_ns == stamp

    # and the report shows the run in its own Section, model text escaped
    from alignlab.report import write_report

    write_report(tmp_path, tmp_path / "report.html")
    html = (tmp_path / "report.html").read_text()
    assert "Constitutional AI: before and after" in html and "Critique and revision chains" in html


@needs_data
def test_chain_of_thought_labels_are_clamped(tmp_path, scripted, tiny, monkeypatch):
    import alignlab.models
    from alignlab.papers.constitutional_ai.cai_label import label
    from alignlab.papers.constitutional_ai.cai_revise import revise

    models = Models()
    monkeypatch.setattr(alignlab.models, "load_model", lambda spec, **_: models[spec])
    run = _run(tmp_path, tiny, cot=True, constitution="published", feedback_shots=2)
    revise(run)
    label(run, policy="scripted-policy")
    prefs = _rows(tmp_path / "run" / "label" / "preferences.jsonl")
    for p in prefs:
        a, b = (int(t.split()[-1]) for t in p["responses"])
        assert p["p_first"] == pytest.approx(0.6 if a > b else 0.4 if a < b else 0.5)
    reasoning = [json.loads(x) for x in (tmp_path / "run" / "label" / "samples.jsonl").open()]
    assert sum(r["condition"] == "reasoning" for r in reasoning) == 6


@needs_data
def test_a_killed_revise_resumes_without_repeating_work(tmp_path, scripted, tiny, monkeypatch):
    import alignlab.models
    from alignlab.papers.constitutional_ai.cai_revise import revise

    models = Models(fail_on_call=3)
    monkeypatch.setattr(alignlab.models, "load_model", lambda spec, **_: models[spec])
    run = _run(tmp_path, tiny)
    with pytest.raises(RuntimeError, match="killed"):
        revise(run)
    logged = len((tmp_path / "run" / "revise" / "samples.jsonl").read_text().splitlines())
    assert 0 < logged < 6 * 5
    models.clear()
    models.fail_on_call = None
    summary = revise(_run(tmp_path, tiny))
    asked = sum(b.calls["generate"] for b in models.values())
    assert asked == 6 * 5 - logged  # a response, then two critiques and two revisions per prompt
    assert summary["sft_examples"] == 12


@needs_data
def test_stages_in_the_wrong_order_and_a_changed_setting_are_refused(tmp_path, tiny, scripted, monkeypatch):
    import alignlab.models

    models = Models()
    monkeypatch.setattr(alignlab.models, "load_model", lambda spec, **_: models[spec])
    with pytest.raises(AlignlabError, match=r"revise/sft.jsonl not found: run `alignlab cai revise"):
        _stage(tmp_path, tiny, "train-sft")
    with pytest.raises(AlignlabError, match="sft/model not found: run `alignlab cai train-sft"):
        _stage(tmp_path, tiny, "label")
    # a stage that failed before making anything takes its new folder back: no husk of an unfinished run
    assert not _opts(tmp_path).out.exists()
    with pytest.raises(AlignlabError, match="--n must be a positive number"):
        _stage(tmp_path, tiny, "revise", n=0)
    _stage(tmp_path, tiny, "revise")
    with pytest.raises(AlignlabError, match=r"differs in: max_tokens"):
        _stage(tmp_path, tiny, "revise", max_tokens=9)
    with pytest.raises(AlignlabError, match="sft/model not found"):  # a failing stage of a run with work
        _stage(tmp_path, tiny, "label")
    assert (_opts(tmp_path).out / "revise").is_dir()  # stays whole


def test_later_stages_read_the_settings_the_run_was_started_with(tmp_path):
    from alignlab.experiments.pipeline import stored_run

    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "experiment": "cai",
                "identity": {},
                "settings": {"n": 300, "training": {"lora_r": 4}},
                "models": {"model": "hf:x"},
            }
        )
    )
    stored, models = stored_run(CAI, tmp_path)
    s = CAI.settings({**stored, "eval_n": 10, "training.lora_r": 8})
    assert (models["model"], s.n, s.eval_n, s.training.lora_r, s.training.train_batch_size) == (
        "hf:x",
        300,
        10,
        8,
        16,
    )
    with pytest.raises(AlignlabError, match="unknown setting"):
        CAI.settings({"nonsense": 1})
    (tmp_path / "config.json").write_text(json.dumps({"experiment": "winogender", "identity": {}}))
    with pytest.raises(AlignlabError, match="holds a different run: a 'winogender' run, not a 'cai' one"):
        stored_run(CAI, tmp_path)


@needs_data
@pytest.mark.slow
def test_cai_all_on_the_bundled_model_from_the_command_line(tmp_path):
    out = tmp_path / "runs" / "cai"
    args = ["--n", "4", "--eval-n", "2", "--hhh-n", "4", "--redteam-n", "2", "--pm-eval-n", "4"]
    args += ["--max-tokens", "16", "--critique-tokens", "16", "--train-batch-size", "2", "--save-steps", "1"]
    args += ["--rounds", "1", "--dpo-labels", "soft", "--rl-generations", "2"]  # lighter than the paper's
    done = run_cli("cai", "all", *args, "--out", str(out), "--no-progress", "--no-cache", timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "before and after" in done.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["conditions"]["rl-cai"]["hhh"]["n"] == 4
    assert set(metrics["conditions"]) == {"base", "sl-cai", "rl-cai", "dpo-soft"}
    assert metrics["stages"]["rl"]["train"]["train_runtime"] > 0
    # the trained policy is a model spec everywhere else
    again = run_cli(
        "eval",
        "hhh",
        "--model",
        f"hf:{out / 'policy'}",
        "--limit",
        "4",
        "--out",
        str(tmp_path / "hhh"),
        "--no-cache",
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((tmp_path / "hhh" / "metrics.json").read_text())["conditions"]["both-orders"]["n"] == 4


@needs_data
def test_the_settings_a_run_stores_come_back_whole_for_a_later_stage(tmp_path, tiny, scripted, monkeypatch):
    import alignlab.models
    from alignlab.experiments.pipeline import stored_run

    models = Models()
    monkeypatch.setattr(alignlab.models, "load_model", lambda spec, **_: models[spec])
    run = _run(tmp_path, tiny, rounds=3)
    run.ctx.close()
    stored, roles = stored_run(CAI, tmp_path / "run")
    assert CAI.settings(stored) == run.settings  # the nested training settings too, not their repr
    assert roles["model"] == f"hf:{tiny}" and stored["training"]["lora_r"] == 4


def test_the_training_batch_and_the_engine_batch_are_separate_options():
    from alignlab.cli import build_parser

    def settings(args):
        return CAI.settings({k[8:]: v for k, v in vars(args).items() if k.startswith("setting_")})

    args = build_parser().parse_args(["cai", "train-sft", "--train-batch-size", "2", "--batch-size", "5"])
    assert settings(args).training.train_batch_size == 2 and args.batch_size == 5
    args = build_parser().parse_args(["cai", "train-sft"])
    assert settings(args).training.train_batch_size == 16 and args.batch_size == 16
    with pytest.raises(AlignlabError, match="unknown setting"):
        CAI.settings({"training": {"batch_size": 8}})


def test_human_helpfulness_comparisons_are_mixed_into_the_preference_data(tmp_path):
    import gzip
    from types import SimpleNamespace

    from alignlab.papers.constitutional_ai.cai_train import helpful_pairs

    folder = tmp_path / "data" / "hh-rlhf" / "helpful-base"
    folder.mkdir(parents=True)
    rows = [
        {
            "chosen": f"\n\nHuman: q{i}\n\nAssistant: a helpful answer",
            "rejected": f"\n\nHuman: q{i}\n\nAssistant: no",
        }
        for i in range(5)
    ] + [{"chosen": "same", "rejected": "same"}]
    with gzip.open(folder / "train.jsonl.gz", "wt") as handle:
        handle.write("".join(json.dumps(r) + "\n" for r in rows))
    run = SimpleNamespace(settings=SimpleNamespace(pm_helpful_n=3, seed=0), data_dir=str(tmp_path / "data"))
    pairs, source = helpful_pairs(run)
    assert len(pairs) == 3 and source.endswith("train.jsonl.gz")
    assert all(
        p["p"] == 1.0 and p["chosen"].endswith("a helpful answer") for p in pairs
    )  # human labels: hard
    run.settings.pm_helpful_n = 10
    assert len(helpful_pairs(run)[0]) == 5  # the identical pair teaches nothing
    run.settings.pm_helpful_n = 0
    assert helpful_pairs(run) == ([], "none asked for (--pm-helpful-n 0)")
    (folder / "train.jsonl.gz").unlink()
    run.settings.pm_helpful_n = 3
    pairs, source = helpful_pairs(run)
    assert pairs == [] and "not found" in source
