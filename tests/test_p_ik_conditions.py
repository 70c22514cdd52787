"""P(IK) as the paper sets it up (Kadavath et al. 2022 §5): the few-shot prompt as the probe's input, 30
samples, leave-one-task-out, and the probe read with source material (§5.3) and with hints (§5.4)."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pytest
from datadir import DATA, needs
from stub_backend import StubBackend, run_stubbed

from alignlab.data.open_ended import OpenQuestion, load_gsm8k, load_triviaqa
from alignlab.errors import AlignlabError
from alignlab.models.base import FeaturesResult, GenerateResult
from alignlab.papers.self_knowledge.p_ik import PIKSettings
from alignlab.papers.self_knowledge.p_ik_context import context_effects, cut, hint_variants, solution_hint


# --- the parts, by hand ---------------------------------------------------------------------------
def test_hints_are_the_solution_without_its_answer_line_cut_at_word_fractions():
    worked = "Betty has 30% more, so 65 points.\nTom has 35 points.\n#### 145"
    assert solution_hint(worked) == "Betty has 30% more, so 65 points.\nTom has 35 points."
    assert solution_hint("no marks at all") == "no marks at all"
    hint = solution_hint(worked)  # 11 words
    assert cut(hint, 0.25) == "Betty has 30%"  # ceil(2.75) = 3 words
    assert cut(hint, 0.5) == "Betty has 30% more, so 65"  # ceil(5.5) = 6
    assert cut(hint, 0.75) == "Betty has 30% more, so 65 points.\nTom has"  # 9, the line break kept
    assert cut(hint, 1.0) == hint


def test_hint_variants_take_a_wrong_own_solution_and_another_questions():
    q = OpenQuestion("gsm8k/0", "gsm8k", "How many?", ("3",), worked="1 + 2 = 3.\n#### 3")
    other = OpenQuestion("gsm8k/1", "gsm8k", "How few?", ("1",), worked="2 - 1 = 1.\n#### 1")
    hints = hint_variants(q, (q, other), ["1 + 2 = 3.\n#### 3", "1 + 2 = 4.\n#### 4"], [True, False], 0)
    assert hints == {
        "good-0.25": "1 +",  # ceil(1.25) = 2 of 5 words
        "good-0.5": "1 + 2",
        "good-0.75": "1 + 2 =",
        "good-1": "1 + 2 = 3.",
        "bad": "1 + 2 = 4.",
        "other": "2 - 1 = 1.",
    }
    assert "bad" not in hint_variants(q, (q, other), ["3"], [True], 0)  # no wrong solution: no bad hint


def test_context_gains_are_paired_over_the_questions_that_have_the_variant():
    class FirstFeature:  # P(IK) = the first feature: the arithmetic below is by hand
        def predict(self, x):
            return np.asarray(x, dtype=float)[..., 0]

    base = {"a": [0.2], "b": [0.4], "c": [0.9]}
    rows = [
        {"id": "a", "variants": {"good": [0.6], "bad": [0.1]}},
        {"id": "b", "variants": {"good": [0.8]}},  # no bad hint for b
        {"id": "gone", "variants": {"good": [1.0]}},  # not a probe question: left out
    ]
    m = context_effects(FirstFeature(), base, rows, seed=0, n_resamples=50)
    assert m["n"] == 2
    assert m["mean_p_ik"]["none"]["value"] == pytest.approx(0.3)  # a and b alone, c was not asked
    assert m["mean_p_ik"]["good"]["value"] == pytest.approx(0.7)
    assert m["gain"]["good"]["value"] == pytest.approx(0.4)
    # paired: bad's gain is over a alone (0.1 - 0.2), not against every question's mean (0.1 - 0.3)
    assert m["gain"]["bad"]["value"] == pytest.approx(-0.1) and m["gain"]["bad"]["n"] == 1


def test_the_papers_settings_are_the_defaults():
    s = PIKSettings()
    assert (s.samples, s.shots, s.train_tasks, s.probe_input) == (30, 10, ("triviaqa",), "prompt")


# --- runs with a model whose self-knowledge is known --------------------------------------------------
def _knows(question: str) -> bool:
    return hashlib.sha256(question.encode()).digest()[0] < 128


def _last_block(prompt: str) -> str:
    return prompt.rsplit("\n\n", 1)[-1]


class Knower(StubBackend):
    """Answers a TriviaQA question right iff it `_knows` it, every GSM8K question wrong. Its first feature is
    what the probe should find: 1 for a question it knows; with a hint, the share of the question's own
    solution the hint shows; with background material, 1 if the material states this question's answer
    (else, as without it, whether it knows the question)."""

    def __init__(self, spec="knower"):
        super().__init__(spec)
        self.answers = {
            q.question: q.golds[0] for q in load_triviaqa(DATA / "triviaqa" / "triviaqa_sm_sub.jsonl")
        }
        self.solutions = {
            q.question: solution_hint(q.worked) for q in load_gsm8k(DATA / "gsm8k" / "test.jsonl")
        }

    def generate(self, requests):
        self.calls["generate"] += len(requests)
        out = []
        for r in requests:
            question = re.search(r"Question: (.*)\nAnswer:$", _last_block(r.prompt), re.S).group(1)
            if question in self.solutions:
                out.append(GenerateResult(f" I think it is {len(question)}.\n#### {len(question)}", "stop"))
            elif not _knows(question):
                out.append(GenerateResult(" no idea", "stop"))
            elif question in self.answers:
                out.append(GenerateResult(f" {self.answers[question]}", "stop"))
            else:  # arithmetic: "What is a + b?"
                a, op, b = re.search(r"What is (\d+) ([-+*]) (\d+)\?", question).groups()
                out.append(GenerateResult(f" {eval(f'{a}{op}{b}')}", "stop"))  # digits and an operator only
        return out

    def features(self, requests):
        self.calls["features"] += len(requests)
        return [
            FeaturesResult([self._signal(_last_block(r.prompt)), (len(r.prompt) % 7) / 7, 0.5])
            for r in requests
        ]

    def _signal(self, block: str) -> float:
        if block.startswith("Here is some background information material: "):
            material, question = re.search(
                r"material: (.*)\nNow,.*\nQuestion: (.*)\nAnswer:$", block, re.S
            ).groups()
            return 1.0 if f'"{question}" is' in material or _knows(question) else 0.0
        question, _, hint = re.search(
            r"Question: (.*?)(\nHere is a hint: (.*))?\nAnswer:$", block, re.S
        ).groups()
        if question in self.solutions:
            words = self.solutions[question].split()
            return (
                len(hint.split()) / len(words) if hint and self.solutions[question].startswith(hint) else 0.0
            )
        return 1.0 if _knows(question) else 0.0


@needs("triviaqa", "gsm8k")
def test_the_probe_reads_the_few_shot_prompt_and_responds_to_sources_and_hints(tmp_path):
    backend = Knower()
    result = run_stubbed(
        "p-ik", backend, tmp_path / "run", 40, tasks=("triviaqa", "gsm8k"), samples=3, shots=2
    )
    samples = [json.loads(x) for x in (tmp_path / "run" / "samples.jsonl").open()]
    probe_rows = [s for s in samples if s["condition"] == "probe"]
    assert len(probe_rows) == 80
    # only the questions of its task: 40 TriviaQA for sources, 40 GSM8K for hints
    assert {s["task"] for s in samples if s["condition"] == "source"} == {"triviaqa"}
    assert sum(s["condition"] == "hints" for s in samples) == 40
    for s in probe_rows:  # the probe reads the answer prompt: two examples, then the question
        blocks = s["features_prompt"].split("\n\nQuestion: ")
        assert len(blocks) >= 3 and s["features_prompt"].endswith(f"Question: {s['question']}\nAnswer:")
    m = result.metrics["conditions"]
    assert m["probe"]["auroc"]["value"] == pytest.approx(1.0)  # held-out TriviaQA
    source = m["source"]
    assert source["n"] == 40
    assert source["gain"]["relevant"]["value"] > 0.2  # the material that states the answer lifts P(IK)
    assert abs(source["gain"]["irrelevant"]["value"]) < 0.05  # another question's does not
    hints = m["hints"]
    gains = [hints["gain"][f"good-{f:g}"]["value"] for f in (0.25, 0.5, 0.75, 1.0)]
    assert gains == sorted(gains) and gains[-1] > 0.2  # more of the hint shown, higher P(IK)
    assert abs(hints["gain"]["other"]["value"]) < 0.05 and abs(hints["gain"]["bad"]["value"]) < 0.05
    assert hints["mean_p_ik"]["bad"]["n"] == 40  # every GSM8K answer of this model is wrong


@needs("triviaqa", "gsm8k")
def test_the_bare_question_input_and_a_probe_condition_is_required(tmp_path):
    run_stubbed(
        "p-ik",
        Knower(),
        tmp_path / "q",
        6,
        tasks=("triviaqa",),
        samples=2,
        shots=2,
        probe_input="question",
        conditions=("probe",),
    )
    rows = [json.loads(x) for x in (tmp_path / "q" / "samples.jsonl").open()]
    assert all(s["features_prompt"] == f"Question: {s['question']}\nAnswer:" for s in rows)
    with pytest.raises(AlignlabError, match="read the probe that 'probe' trains"):
        run_stubbed("p-ik", Knower(), tmp_path / "h", 6, tasks=("gsm8k",), conditions=("hints",))


@needs("triviaqa")
def test_leave_one_task_out_trains_on_the_other_tasks_and_tests_all_of_the_one_left_out(tmp_path):
    result = run_stubbed(
        "p-ik",
        Knower(),
        tmp_path / "l",
        30,
        tasks=("triviaqa", "arithmetic"),
        samples=2,
        shots=1,
        train_tasks=("triviaqa", "arithmetic"),
        conditions=("probe",),
    )
    m = result.metrics["conditions"]["probe"]
    assert set(m["by_task"]) == {"triviaqa (held out)", "arithmetic (held out)"}
    assert m["n"] == 30  # both tasks' held-out halves
    loo = m["leave_one_out"]
    assert set(loo) == {"triviaqa", "arithmetic"} and loo["arithmetic"]["n"] == 30 == loo["triviaqa"]["n"]


@needs("triviaqa", "gsm8k")
def test_source_articles_from_a_file_are_asked_for_the_questions_that_have_one(tmp_path):
    trivia = load_triviaqa(DATA / "triviaqa" / "triviaqa_sm_sub.jsonl")
    sources = tmp_path / "articles.jsonl"
    with_article = {q.question for q in trivia if hashlib.sha256(q.id.encode()).digest()[1] % 2}
    sources.write_text(
        "".join(
            json.dumps(
                {"question": q.question, "material": f'Long article. "{q.question}" is {q.golds[0]}. ' * 10}
            )
            + "\n"
            for q in trivia
            if q.question in with_article
        )
    )
    result = run_stubbed(
        "p-ik",
        Knower(),
        tmp_path / "s",
        30,
        tasks=("triviaqa",),
        samples=2,
        shots=1,
        conditions=("probe", "source"),
        sources=str(sources),
        source_max_chars=200,
    )
    rows = [json.loads(x) for x in (tmp_path / "s" / "samples.jsonl").open()]
    asked = [s for s in rows if s["condition"] == "source"]
    probed = [s for s in rows if s["condition"] == "probe"]
    assert asked and len(asked) == sum(s["question"] in with_article for s in probed) < len(probed)
    for s in asked:  # the question's own article, cut at 200 characters; another question's as the control
        relevant = s["context"]["relevant"]
        assert (
            f'"{s["question"]}" is' in relevant
            and len(relevant.split("material: ", 1)[1].split("\nNow,")[0]) == 200
        )
        assert f'"{s["question"]}" is' not in s["context"]["irrelevant"]
    assert result.metrics["conditions"]["source"]["gain"]["relevant"]["value"] > 0.2
    sources.write_text('{"question": "q", "material": ""}\n')
    with pytest.raises(AlignlabError, match=r"articles\.jsonl:1: a row needs \"question\" and a non-empty"):
        run_stubbed("p-ik", Knower(), tmp_path / "bad", 4, tasks=("triviaqa",), sources=str(sources))


def test_the_command_line_leaves_sources_empty_unless_given_and_checks_the_file(tmp_path, capsys):
    from alignlab.cli import _setting_values, build_parser, main

    args = build_parser().parse_args(["eval", "p-ik", "--limit", "1"])
    assert _setting_values(args)["sources"] == ""  # argparse passes the default through the type too
    articles = tmp_path / "a.jsonl"
    articles.write_text('{"question": "q", "material": "m"}\n')
    args = build_parser().parse_args(
        ["eval", "p-ik", "--sources", str(articles), "--train-tasks", "triviaqa,gsm8k"]
    )
    assert _setting_values(args)["sources"] == str(articles)
    assert _setting_values(args)["train_tasks"] == ("triviaqa", "gsm8k")
    with pytest.raises(SystemExit):
        main(["eval", "p-ik", "--sources", str(tmp_path / "none.jsonl")])
    assert "no such file or folder" in capsys.readouterr().err
