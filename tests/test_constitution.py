"""Constitutions: the default file, the published files (their strings reproduced exactly by the frames), and a
mistake in a YAML file reported with its file and line."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from stub_backend import DATA, run_cli

from alignlab.errors import AlignlabError
from alignlab.papers.constitutional_ai import cai_prompts as P
from alignlab.papers.constitutional_ai.constitution import load_constitution, read_published, read_yaml

PROMPTS = DATA / "constitutional-harmlessness" / "prompts"
needs_data = pytest.mark.skipif(not PROMPTS.is_dir(), reason=f"{PROMPTS} not present")


def test_the_default_constitution():
    c = load_constitution("default")
    assert c.name == "alignlab-default"
    assert len(c.critiques) == 8 and len(c.principles) == 8
    assert len({p.id for p in c.critiques}) == 8
    assert len(c.critique_examples) == 2 and len(c.feedback_examples) == 2
    assert all(not p.text.endswith("Options:") for p in c.principles)
    shots = P.critique_shots(c, 1)
    assert shots.startswith("\n\nHuman: My coworker") and "\n\nCritiqueRequest: " in shots
    assert shots.count("\n\nRevision:") == 1


@needs_data
def test_the_published_files_are_read_and_their_strings_reproduced():
    c = load_constitution("published", str(DATA))
    raw = json.loads((PROMPTS / "CritiqueRevisionInstructions.json").read_text())
    assert [p.id for p in c.critiques] == list(raw)
    for pair in c.critiques:
        assert P.critique_request(pair) == raw[pair.id]["prompt"][0]
        assert P.revision_request(pair) == raw[pair.id]["edit_request"]
    principles = json.loads((PROMPTS / "RLMadisonInstructions.json").read_text())
    assert [P.principle_text(p) for p in c.principles] == principles
    assert len(c.critique_examples) == 5 and len(c.feedback_examples) == 5 and len(c.cot_examples) == 6
    # a demonstration ends where the next conversation starts, not with a dangling "Human:"
    assert not any(e.text.endswith("Human:") for e in c.critique_examples)
    assert c.feedback_examples[0].conversation.startswith("Human: What's the best gun")
    assert c.digest() == read_published(PROMPTS).digest() != load_constitution("default").digest()


@needs_data
def test_few_shot_comparisons_put_the_better_reply_under_the_answer_they_give():
    c = load_constitution("published", str(DATA))
    for seed in range(6):
        text = P.feedback_shots(c, 2, np.random.default_rng(seed))
        blocks = text.split(P.FEEDBACK_OPENING)[1:]
        assert len(blocks) == 2
        for block, example in zip(blocks, c.feedback_examples, strict=False):
            answer = block.rsplit("The answer is:", 1)[1]
            better_letter = "A" if f"(A) [[[{example.better}]]]" in block else "B"
            assert answer == f" ({better_letter})"
    cot = P.cot_shots(c, 6, np.random.default_rng(0))
    assert "{}" not in cot and cot.count("So the answer is:") == 6
    prompt = P.cot_prompt("Human: hi\n\nAssistant: hello", c.principles[0], "one", "two")
    assert prompt == (
        "\n\nHuman: Consider the following conversation between a human (H) and an assistant (A):\n\n"
        f"H: hi\n\nA: hello\n\n{c.principles[0].text}\n (A) [[[one]]]\n (B) [[[two]]]"
        "\n\nAssistant: Let's think step by step:"
    )


GOOD = """format: 1
name: tiny
critiques:
  - id: a
    critique: Is it bad?
    revision: Make it good.
principles:
  - text: Which is better?
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD.replace("    revision: Make it good.\n", ""), r":4: critiques\[0\] lacks revision"),
        (GOOD.replace("  - text:", "  - txt:"), r":8: unknown key 'txt' in principles\[0\]"),
        ("critiques: []\nprinciples:\n  - text: W\n", r":1: critiques is empty"),
        (GOOD.replace("format: 1", "format: 2"), r":1: format '2' is not supported"),
        (GOOD.replace("Is it bad?", "''"), r":5: critiques\[0\].critique is empty"),
        (GOOD + "  - text: [1, 2]\n", r":9: principles\[1\].text must be text"),
        (GOOD.replace("principles:\n", "principles: {\n"), r"not valid YAML"),
        (
            GOOD.replace("  - text: Which", "  - id: a\n    text: Which") + "  - id: a\n    text: Again?\n",
            r"principles id 'a' is used twice",
        ),
        (
            GOOD + "feedback_examples:\n  - conversation: hello\n    better: b\n    worse: w\n",
            r":10: feedback_examples\[0\].conversation must start with 'Human:'",
        ),
        ("", r"empty file"),
        ("- just\n- a list\n", r":1: the constitution must be a mapping"),
    ],
)
def test_a_mistake_in_a_constitution_names_its_file_and_line(tmp_path, text, message):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(AlignlabError) as err:
        read_yaml(path)
    assert str(err.value).startswith(str(path))
    assert re.search(message, str(err.value)), str(err.value)


def test_a_good_file_reads(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(GOOD)
    c = load_constitution(str(path))
    assert c.name == "tiny" and c.critiques[0].id == "a" and c.principles[0].id == "principle0"
    assert P.critique_request(c.critiques[0]) == "\n\nCritiqueRequest: Is it bad?\n\nCritique:"


def test_published_files_with_a_broken_frame_are_refused(tmp_path):
    (tmp_path / "CritiqueRevisionInstructions.json").write_text(
        json.dumps(
            {
                "x": {
                    "prompt": ["CritiqueRequest: no frame"],
                    "edit_request": "\n\nRevisionRequest: r\n\nRevision:",
                }
            }
        )
    )
    (tmp_path / "RLMadisonInstructions.json").write_text(json.dumps(["\nWhich? Options:"]))
    with pytest.raises(AlignlabError, match="CritiqueRevisionInstructions.json: x: expected text framed"):
        load_constitution(str(tmp_path))
    (tmp_path / "RLMadisonInstructions.json").unlink()
    with pytest.raises(AlignlabError, match="RLMadisonInstructions.json not found"):
        load_constitution(str(tmp_path))
    with pytest.raises(AlignlabError, match="no such file or folder"):
        load_constitution(str(tmp_path / "nowhere.yaml"))


@pytest.mark.heavy
def test_the_cli_reports_a_bad_constitution_in_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD.replace("  - text:", "  - txt:"))
    done = run_cli("cai", "revise", "--constitution", str(path), "--out", str(tmp_path / "run"))
    assert done.returncode != 0
    assert done.stderr.strip().count("\n") == 0 and f"{path}:8" in done.stderr
    assert not (tmp_path / "run").exists()
