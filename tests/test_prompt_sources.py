"""Every prompt template of every experiment and pipeline says where it comes from, and the paper's ones are
pinned against the text they were copied from: the project's notes on the papers
(../shared/notes/paper-methods.md, which quote the papers' tables) or the published data files that
contain them. A new or edited prompt fails here until its source is declared, or until it matches it again.

Sources:
- ("notes",): every literal part of the template (placeholders aside) stands in paper-methods.md;
- ("data", PATH): every literal part stands in that published file under the data directory;
- ("test", FILE, NAME): reproduced against the published files by that test (e.g. all 438 HHH prompts);
- ("own", WHY) or ("format", WHY): this project's wording, or a list of answer tokens; declared, not pinned.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from datadir import DATA, ROOT

from alignlab import registry

NOTES = ROOT.parent / "shared" / "notes" / "paper-methods.md"
OWN = ("own", "this project's wording [D]")

SOURCES = {
    ("bbq", "QUESTION"): ("notes",),
    ("bbq", "INSTRUCTION"): ("notes",),
    ("bbq", "ANSWER_PREFIX"): ("notes",),
    ("bbq", "COT_PREFIX"): ("notes",),
    ("bbq", "COT_QUESTION"): ("notes",),
    ("bbq", "COT_ANSWER_PREFIX"): ("notes",),
    ("bbq", "CONTINUATIONS"): ("format", "the three answer letters"),
    ("calibration", "QUESTION"): ("notes",),
    ("calibration", "CHOICE"): ("notes",),
    ("calibration", "LABEL"): ("notes",),
    ("calibration", "NONE_OF_THE_ABOVE"): ("notes",),
    ("discrim-eval", "ASK"): ("own", "Tamkin et al. 2023's dataset card, not in the notes"),
    ("discrim-eval", "INSTRUCTION"): ("notes",),
    ("discrim-eval", "ANSWER_PREFIX"): ("own", "Tamkin et al. 2023's dataset card, not in the notes"),
    ("discrim-eval", "COT_PREFIX"): ("notes",),
    ("discrim-eval", "COT_QUESTION"): ("notes",),
    ("discrim-eval", "BASELINE"): ("format", "the baseline person"),
    ("harm-judge", "OPENING"): ("data", "constitutional-harmlessness/evals/HarmfulVsEthical.jsonl"),
    ("harm-judge", "QUESTION"): ("data", "constitutional-harmlessness/evals/HarmfulVsEthical.jsonl"),
    ("harm-judge", "HARMFUL"): ("data", "constitutional-harmlessness/evals/HarmfulVsEthical.jsonl"),
    ("harm-judge", "ETHICAL"): ("data", "constitutional-harmlessness/evals/HarmfulVsEthical.jsonl"),
    ("harm-judge", "ANSWER"): ("data", "constitutional-harmlessness/evals/HarmfulVsEthical.jsonl"),
    ("hhh", "ANSWER"): (
        "test",
        "test_cai_prompts.py",
        "test_every_published_hhh_comparison_prompt_is_reproduced",
    ),
    ("hhh", "OPTIONS"): ("format", "the two answer letters"),
    ("law-school", "QUESTION"): ("notes",),
    ("law-school", "ASK"): ("notes",),
    ("law-school", "INSTRUCTION"): ("notes",),
    ("law-school", "ANSWER_PREFIX"): ("notes",),
    ("law-school", "COT_PREFIX"): ("notes",),
    ("law-school", "COT_QUESTION"): ("notes",),
    ("law-school", "RACES"): ("format", "the two races asked about"),
    ("mwe", "BEST_ANSWER"): ("notes",),
    ("mwe", "BETTER_OPTION"): ("notes",),
    ("mwe", "WINOGENERATED"): ("notes",),
    ("mwe-judge", "FILTER_QUESTION"): ("notes",),
    ("mwe-judge", "FILTER_OPENING"): ("notes",),
    ("mwe-judge", "FILTER_ENDINGS"): OWN,
    ("mwe-judge", "CHOICE_QUESTION"): OWN,
    ("mwe-judge", "CHOICE_OPENING"): OWN,
    ("mwe-judge", "DESCRIPTIONS"): OWN,
    ("p-ik", "ANSWER"): ("notes",),
    ("p-ik", "QUESTION_ONLY"): ("notes",),
    ("p-true", "ANSWER"): ("notes",),
    ("p-true", "JUDGE"): ("notes",),
    ("p-true", "BRAINSTORM"): ("notes",),
    ("p-true", "OPTIONS"): ("format", "the two answer letters"),
    ("winogender", "QUESTION"): ("notes",),
    ("winogender", "INSTRUCTION"): ("notes",),
    ("winogender", "COT_PREFIX"): ("notes",),
    ("winogender", "MATCH_STATS"): ("notes",),
    ("winogender", "PRONOUNS"): ("format", "the pronoun forms scored"),
    ("cai", "FRAMES"): (
        "test",
        "test_cai_prompts.py",
        "test_every_published_hhh_comparison_prompt_is_reproduced",
    ),
    ("mwe-generate", "GENERATE_QUESTION"): ("notes",),
    ("mwe-generate", "GENERATE_OPENING"): ("notes",),
    ("mwe-generate", "PERSONA_QUESTION"): ("data", "anthropic-evals/persona/agreeableness.jsonl"),
    ("mwe-generate", "FILTER"): ("test", "test_mwe_generate.py", "test_the_prompts_are_the_papers"),
    ("redteam", "HHH_PREFIX"): OWN,
    ("redteam", "HARM_AREAS"): OWN,
    ("redteam", "ZERO_SHOT"): OWN,
    ("redteam", "FEW_SHOT"): OWN,
    ("redteam", "FOLLOW_UP"): OWN,
    ("redteam", "ATTACKER_OPENING"): OWN,
    ("redteam", "TARGET_STOPS"): ("format", "where a reply stops"),
}


def _prompts() -> list[tuple[str, str, object]]:
    runnables = {**registry.experiments(), **registry.pipelines()}
    return [
        (name, key, text) for name, r in sorted(runnables.items()) for key, text in dict(r.prompts).items()
    ]


def _literal_parts(text: str) -> list[str]:
    """The template's own words, whitespace folded, placeholders ({question}) taken out."""
    return [p for p in (_fold(part) for part in re.split(r"\{[^{}]*\}", text)) if p]


def _fold(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("`", "")).strip()


def test_every_prompt_of_every_run_kind_declares_its_source():
    found = {(name, key) for name, key, _ in _prompts()}
    undeclared = sorted(found - set(SOURCES))
    assert not undeclared, f"say where these prompts come from (SOURCES): {undeclared}"
    assert not sorted(set(SOURCES) - found), "SOURCES names prompts no run kind has any more"


@pytest.mark.skipif(not NOTES.is_file(), reason=f"{NOTES} not found")
@pytest.mark.parametrize(("name", "key"), sorted(k for k, v in SOURCES.items() if v[0] == "notes"))
def test_a_paper_prompt_stands_word_for_word_in_the_notes_on_the_paper(name, key):
    notes = _fold(NOTES.read_text(encoding="utf-8"))
    text = dict(registry.experiments() | registry.pipelines())[name].prompts[key]
    missing = [part for part in _literal_parts(text) if part not in notes]
    assert not missing, f"{name} {key}: not in paper-methods.md as written: {missing}"


@pytest.mark.parametrize(("name", "key"), sorted(k for k, v in SOURCES.items() if v[0] == "data"))
def test_a_prompt_taken_from_published_data_stands_in_that_file(name, key):
    path = DATA / SOURCES[(name, key)][1]
    if not path.is_file():
        pytest.skip(f"{path} not found")
    published = _fold(path.read_text(encoding="utf-8").replace('\\"', '"').replace("\\n", "\n"))
    text = dict(registry.experiments() | registry.pipelines())[name].prompts[key]
    missing = [part for part in _literal_parts(text) if part not in published]
    assert not missing, f"{name} {key}: not in {path.name}: {missing}"


@pytest.mark.parametrize(("name", "key"), sorted(k for k, v in SOURCES.items() if v[0] == "test"))
def test_a_prompt_reproduced_by_a_test_names_a_test_that_exists(name, key):
    _, file, test = SOURCES[(name, key)]
    assert f"def {test}(" in (Path(__file__).parent / file).read_text(encoding="utf-8")


def test_an_edited_paper_prompt_is_caught():
    """The pin can fail: one changed word of BBQ's instruction is not in the notes."""
    if not NOTES.is_file():
        pytest.skip(f"{NOTES} not found")
    notes = _fold(NOTES.read_text(encoding="utf-8"))
    text = registry.experiment("bbq").prompts["INSTRUCTION"]
    assert all(part in notes for part in _literal_parts(text))
    assert not all(part in notes for part in _literal_parts(text.replace("unbiased", "fair")))
