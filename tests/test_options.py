"""Every option of every command is checked before any work: a bad value is one line naming the option,
exit 2, no traceback, and nothing written (no run folder, no output file)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest
from stub_backend import DATA, StubBackend

from alignlab.cli import build_parser, main

needs_data = pytest.mark.skipif(not (DATA / "bbq").is_dir(), reason="../shared/datasets not found")

# Placeholders in a case's argv: FILE is an existing plain file, UNDER_FILE a path below it (cannot be made).
CASES = [
    # eval: the options every experiment takes
    ("eval bbq --batch-size 0", "--batch-size"),
    ("eval bbq --batch-size 0 --max-concurrency 0", "--batch-size"),
    ("eval bbq --max-concurrency 0", "--max-concurrency"),
    ("eval bbq --seed -1", "--seed"),
    ("eval bbq --seed 4294967296", "--seed"),
    ("eval bbq --seed 1.5", "--seed"),
    ("eval bbq --limit 0", "--limit"),
    ("eval bbq --limit -3", "--limit"),
    ("eval bbq --workers 0", "--workers"),
    ("eval bbq --gpus-per-worker -1", "--gpus-per-worker"),
    ("eval bbq --gpus-per-worker nan", "--gpus-per-worker"),
    ("eval bbq --bootstrap -5", "--bootstrap"),
    ("eval bbq --bootstrap 0", "--bootstrap"),
    ("eval bbq --gen-width 0", "--gen-width"),
    ("eval bbq --gen-dtype nonsense", "--gen-dtype"),
    ("eval bbq --out FILE", "--out"),
    ("eval bbq --out UNDER_FILE", "--out"),
    ("eval bbq --cache UNDER_FILE", "--cache"),
    ("eval bbq --report UNDER_FILE", "--report"),
    ("eval bbq --report .", "--report"),
    ("eval bbq --data-file missing.jsonl", "--data-file"),
    ("eval bbq --format yaml", "--format"),
    # eval: each experiment's own options
    ("eval bbq --cot-temperature -1", "--cot-temperature"),
    ("eval bbq --cot-temperature inf", "--cot-temperature"),
    ("eval bbq --cot-max-tokens -5", "--cot-max-tokens"),
    ("eval bbq --cot-max-tokens 0", "--cot-max-tokens"),
    ("eval winogender --cot-temperature -1", "--cot-temperature"),
    ("eval law-school --cot-max-tokens 0", "--cot-max-tokens"),
    ("eval discrim-eval --cot-max-tokens x", "--cot-max-tokens"),
    ("eval calibration --shots -1", "--shots"),
    ("eval calibration --bins 0", "--bins"),
    ("eval calibration --binning odd", "--binning"),
    ("eval calibration --arithmetic-n 0", "--arithmetic-n"),
    ("eval calibration --tasks nosuch", "--tasks"),
    ("eval p-true --samples 0", "--samples"),
    ("eval p-true --answer-temperature -1", "--answer-temperature"),
    ("eval p-ik --train-share 1", "--train-share"),
    ("eval p-ik --layer top", "--layer"),
    ("eval p-ik --train-task nosuch", "--train-task"),
    ("eval mwe --limit-per-dataset 0", "--limit-per-dataset"),
    ("eval mwe --suite nosuch", "--suite"),
    ("eval mwe-judge --limit-per-dataset -1", "--limit-per-dataset"),
    ("eval mwe-judge --calibration odd", "--calibration"),
    ("eval hhh --limit 0", "--limit"),
    ("eval harm-judge --seed -1", "--seed"),
    # a suite
    ("eval self-correction --limit 0", "--limit"),
    ("eval self-correction --cot-max-tokens -5", "--cot-max-tokens"),
    ("eval self-correction --out FILE", "--out"),
    # generate evals
    ("generate evals --behavior b --description d --n 0", "--n"),
    ("generate evals --behavior b --description d --temperature -1", "--temperature"),
    ("generate evals --behavior b --description d --top-p 0", "--top-p"),
    ("generate evals --behavior b --description d --max-tokens 0", "--max-tokens"),
    ("generate evals --behavior b --description d --max-similarity 1.5", "--max-similarity"),
    ("generate evals --behavior b --description d --threshold 2", "--threshold"),
    ("generate evals --behavior b --description d --per-label 0", "--per-label"),
    ("generate evals --behavior b --description d --seed -1", "--seed"),
    ("generate evals --behavior b --description d --gen-width 0", "--gen-width"),
    ("generate evals --behavior b --description d --gen-dtype int3", "--gen-dtype"),
    ("generate evals --behavior b --description d --dataset .", "--dataset"),
    ("generate evals --behavior b --description d --out FILE", "--out"),
    # redteam
    ("redteam --n 0", "--n"),
    ("redteam --turns 0", "--turns"),
    ("redteam --rejection-n 0", "--rejection-n"),
    ("redteam --max-tokens -1", "--max-tokens"),
    ("redteam --judge-check -1", "--judge-check"),
    ("redteam --judge-check 100000", "--judge-check"),  # more than HarmfulVsEthical holds: not silently fewer
    ("redteam --turns 100000", "--turns"),
    ("redteam --seed -1", "--seed"),
    ("redteam --bootstrap 0", "--bootstrap"),
    ("redteam --batch-size 0", "--batch-size"),
    ("redteam --out FILE", "--out"),
    ("redteam --cache UNDER_FILE", "--cache"),
    ("redteam --published missing.jsonl", "--published"),
    ("redteam --published FOLDER", "is a folder: name a file in it"),
    # cai, every stage shares the options
    ("cai revise --n -1", "--n"),
    ("cai all --n -1", "--n"),
    ("cai revise --rounds 0", "--rounds"),
    ("cai revise --critique-shots 1000", "--critique-shots"),  # the constitution has 5
    ("cai label --feedback-shots 6", "--feedback-shots"),
    ("cai label --cot --feedback-shots 7", "--feedback-shots"),
    ("cai revise --eval-n -1", "--eval-n"),
    ("cai revise --temperature -1", "--temperature"),
    ("cai revise --top-p 0", "--top-p"),
    ("cai label --ensemble 0", "--ensemble"),
    ("cai label --held-out 1", "--held-out"),
    ("cai train-sft --lora-r 0", "--lora-r"),
    ("cai train-sft --learning-rate 0", "--learning-rate"),
    ("cai train-sft --epochs -1", "--epochs"),
    ("cai train-dpo --beta 0", "--beta"),
    ("cai train-pm --save-steps 0", "--save-steps"),
    ("cai evaluate --hhh-n -1", "--hhh-n"),
    ("cai all --seed -1", "--seed"),
    ("cai all --batch-size 0", "--batch-size"),
    ("cai all --out FILE", "--out"),
    ("cai all --report UNDER_FILE", "--report"),
    # serve, popcode, index, report, datasets, p-ik predict, mwe trends
    ("serve --port 70000", "--port"),
    ("serve --port -1", "--port"),
    ("popcode --out pc --neurons 0", "--neurons"),
    ("popcode --out pc --spikes 0", "--spikes"),
    ("popcode --out pc --time-window -1", "--time-window"),
    ("popcode --out pc --tuning-width 0", "--tuning-width"),
    ("popcode --out pc --grid 10", "--grid"),
    ("popcode --out pc --trials 1", "--trials"),
    ("popcode --out pc --bandwidth 0", "--bandwidth"),
    ("popcode --out pc --seed -1", "--seed"),
    ("popcode --out FILE", "--out"),
    ("index . --format bad", "--format"),
    ("index . -o .", "--output"),
    ("index missing-folder", "root"),
    ("report . --samples-per-run -1", "--samples-per-run"),
    ("report . --detail-runs -1", "--detail-runs"),
    ("report . -o UNDER_FILE", "--output"),
    ("report missing-folder", "root"),
    ("datasets --base-url ftp:/x", "--base-url"),
    ("p-ik predict --probe missing --model m q", "--probe"),
    ("mwe trends missing-folder", "runs"),
    ("models install nosuch", "nosuch"),
]


def _argv(case: str, tmp_path: Path) -> list[str]:
    placeholders = {
        "FILE": str(tmp_path / "FILE"),
        "UNDER_FILE": str(tmp_path / "FILE" / "x" / "out.html"),
        "FOLDER": str(tmp_path),
    }
    argv = [placeholders.get(word, word) for word in case.split()]
    if argv[0] == "eval":  # small and quiet should a check be missing (the case's own values come last)
        argv[2:2] = ["--limit", "2", "--no-cache", "--no-progress"]
    return argv


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's usage errors
        return int(exc.code)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty folder to run in, holding only FILE; a model load would get a stub, not a real model."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALIGNLAB_DATA_DIR", str(DATA))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the default response cache goes nowhere real
    # matplotlib's font cache, written by whichever case first imports it, is not the command's doing
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path.parent / f"{tmp_path.name}-matplotlib"))
    (tmp_path / "FILE").write_text("a file, not a folder\n")
    import alignlab.evaluate
    import alignlab.models

    monkeypatch.setattr(alignlab.models, "load_model", lambda spec, **_: StubBackend(spec))
    return tmp_path


@pytest.mark.parametrize(("case", "option"), CASES, ids=[c for c, _ in CASES])
def test_a_bad_value_is_one_line_naming_the_option_and_writes_nothing(case, option, workdir, capsys):
    before = sorted(os.listdir(workdir))
    code = _exit_code(_argv(case, workdir))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1, err
    assert err.strip().splitlines()[-1] == errors[0], err  # the error ends the output: nothing after it
    assert option in errors[0], err
    assert sorted(os.listdir(workdir)) == before  # no run folder, report, cache or dataset


def test_a_run_with_no_items_stops_before_its_run_folder(workdir, capsys, monkeypatch):
    from alignlab import experiments
    from alignlab.experiments.base import Experiment, Items

    class Nothing(Experiment):
        name, help, conditions = "nothing-here", "loads no items", ("plain",)

        def load(self, source, limit, seed):
            return Items([])

    from alignlab import registry

    monkeypatch.setattr(registry, "_EXPERIMENTS", {**experiments.available(), "nothing-here": Nothing()})
    code = _exit_code(["eval", "nothing-here", "--no-cache", "--out", "run"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "no items to run" in err and "Traceback" not in err
    assert not (workdir / "run").exists()


def _unchecked(action: argparse.Action, outputs: set[str]) -> bool:
    loose = action.type in (int, float) or (action.dest in outputs and action.type in (None, Path))
    return loose and action.choices is None and action.nargs != 0


def test_every_numeric_or_output_option_has_a_checking_parser():
    """No command takes a bare int/float (unbounded: 0 batch sizes hung) or an unchecked output Path."""
    unchecked = []
    outputs = {"out", "cache", "report", "output", "run_dir"}

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, f"{path} {name}")
            elif _unchecked(action, outputs):
                unchecked.append(f"{path} {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), "alignlab")
    assert unchecked == []


def test_every_experiment_option_is_typed():
    from alignlab import experiments

    loose = [
        f"{name} {option.flag}"
        for name, experiment in experiments.available().items()
        for option in experiment.options
        if option.type in (int, float) or (option.type is str and option.choices is None)
    ]
    assert loose == []


@needs_data
def test_a_prompt_longer_than_the_context_names_its_item(tmp_path, capsys, monkeypatch):
    """A BBQ row with a huge context: one line naming the item, not a tensor too large to allocate."""
    rows = [json.loads(line) for line in (DATA / "bbq" / "data" / "Age.jsonl").open().readlines()[:2]]
    rows[1]["context"] += " The weather was fine that day." * 1500  # about 10,000 tokens
    data = tmp_path / "big.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    monkeypatch.chdir(tmp_path)
    argv = ["eval", "bbq", "--data-file", str(data), "--conditions", "q", "--no-cache", "--no-progress"]
    code = _exit_code([*argv, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    expected = f"item Age-{rows[1]['example_id']} (condition q)"
    assert expected in err and "does not fit the context window" in err, err
    assert not (tmp_path / "run" / "metrics.json").exists()
