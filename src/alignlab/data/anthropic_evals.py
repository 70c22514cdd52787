"""The behaviour datasets of Anthropic's model-written evaluations (Perez et al. 2022, anthropics/evals) as
one kind of item: a question and the answers that do and do not match the behaviour.

Formats read (each a JSON Lines file; one dataset a file):
- official rows: {"question", "answer_matching_behavior", "answer_not_matching_behavior"} (each answer a
  string or a list of strings), "label_confidence" where present (persona), as in persona/,
  advanced-ai-risk/{human,lm}_generated_evals/ and the official sycophancy/sycophancy_on_*.jsonl;
- winogenerated (winogenerated/winogenerated_examples.jsonl): {"index", "occupation", "other_person",
  "sentence_with_blank" (one "_"), "pronoun_options" (male, female and neutral forms, any order),
  "BLS_percent_women_2019"}, one item per sentence;
- the third-party sycophancy subset (sycophancy/third_party_subset/): {"biased_prompt",
  "sycophantic_target", "honest_target", "sample_id"}, whose prompt is the official question inside the
  Llama-3 chat template; the template is stripped (SOURCES.md: all 1,000 rows then end in "Answer:").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alignlab.data.jsonl import UniqueIds, line_of, read_jsonl
from alignlab.errors import AlignlabError

SUITES = ("persona", "advanced-ai-risk", "sycophancy", "winogenerated")
_GENDERS = {
    "female": {"she", "her", "hers"},
    "male": {"he", "his", "him"},
    "neutral": {"they", "their", "them"},
}
_LLAMA3_USER = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
_LLAMA3_ASSISTANT = "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"


@dataclass(frozen=True)
class BehaviorItem:
    id: str  # "<dataset>/<row id or line>"
    suite: str
    dataset: str  # "agreeableness", "lm/survival-instinct", "nlp_survey", ...
    question: str
    matching: tuple[str, ...]
    not_matching: tuple[str, ...]
    label_confidence: float | None = None


@dataclass(frozen=True)
class PronounItem:
    """A winogenerated sentence: which pronoun fills the blank, against the occupation's share of women."""

    id: str  # "winogenerated/<index>"
    suite: str
    dataset: str
    occupation: str
    sentence: str  # with "_" for the blank
    before: str  # the sentence up to the blank, without its trailing space
    forms: tuple[str, str, str]  # (female, male, neutral), capitalised when the blank opens the sentence
    bls_pct_female: float


def dataset_files(root: Path, suite: str) -> list[tuple[str, Path]]:
    """(dataset name, file) of a suite under the anthropic-evals folder `root`, sorted by name."""
    if suite == "persona":
        found = [(p.stem, p) for p in (root / "persona").glob("*.jsonl")]
    elif suite == "advanced-ai-risk":
        found = [
            (f"{kind}/{p.stem}", p)
            for kind, folder in (("human", "human_generated_evals"), ("lm", "lm_generated_evals"))
            for p in (root / "advanced-ai-risk" / folder).glob("*.jsonl")
        ]
    elif suite == "sycophancy":
        official = [(p.stem.removeprefix("sycophancy_on_"), p) for p in (root / "sycophancy").glob("*.jsonl")]
        names = {name for name, _ in official}
        subset = [(p.stem, p) for p in (root / "sycophancy" / "third_party_subset").glob("*.jsonl")]
        # an official file (downloaded by the user) wins over the subset sampled from it
        found = official + [(name, p) for name, p in subset if not any(o.startswith(name) for o in names)]
    elif suite == "winogenerated":
        found = [("winogenerated", p) for p in (root / "winogenerated").glob("winogenerated_examples.jsonl")]
    else:
        raise AlignlabError(f"unknown suite {suite!r}: choose from {', '.join(SUITES)}")
    return sorted(found)


def load_suite_file(path: Path, suite: str, dataset: str) -> list[BehaviorItem] | list[PronounItem]:
    """One dataset's items; a malformed row is an error naming file and line."""
    if suite == "winogenerated":
        return load_winogenerated(path, suite, dataset)
    return load_behavior_file(path, suite, dataset)


def load_winogenerated(
    path: Path, suite: str = "winogenerated", dataset: str = "winogenerated"
) -> list[PronounItem]:
    items = []
    seen = UniqueIds()
    for where, row in read_jsonl(path):
        sentence, options, share = (
            row.get("sentence_with_blank"),
            row.get("pronoun_options"),
            row.get("BLS_percent_women_2019"),
        )
        if not isinstance(sentence, str) or sentence.count("_") != 1:
            raise AlignlabError(f"{where}: 'sentence_with_blank' must be a string with one '_'")
        if not isinstance(share, int | float) or isinstance(share, bool) or not 0 <= share <= 100:
            raise AlignlabError(f"{where}: 'BLS_percent_women_2019' must be a percentage")
        if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
            raise AlignlabError(f"{where}: 'pronoun_options' must be a list of pronouns")
        by_gender = {}
        for gender, words in _GENDERS.items():
            found = [o for o in options if o.lower() in words]
            if len(found) != 1:
                raise AlignlabError(f"{where}: 'pronoun_options' {options} lacks one {gender} pronoun")
            by_gender[gender] = found[0]
        before = sentence[: sentence.index("_")].rstrip()
        forms = tuple(by_gender[g] for g in ("female", "male", "neutral"))
        if not before:
            forms = tuple(f[:1].upper() + f[1:] for f in forms)
        item_id = f"{dataset}/{row.get('index', line_of(where))}"
        seen.add(item_id, where)
        items.append(
            PronounItem(
                item_id,
                suite,
                dataset,
                str(row.get("occupation") or ""),
                sentence,
                before,
                forms,
                float(share),
            )
        )
    return items


def load_behavior_file(path: Path, suite: str, dataset: str) -> list[BehaviorItem]:
    items = []
    seen = UniqueIds()
    for where, row in read_jsonl(path):
        line = line_of(where)
        if "biased_prompt" in row:
            item = _third_party(row, where, suite, dataset, line)
        else:
            item = _official(row, where, suite, dataset, line)
        seen.add(item.id, where)
        items.append(item)
    return items


def _answers(row: dict, key: str, where: str) -> tuple[str, ...]:
    value = row.get(key)
    values = [value] if isinstance(value, str) else value
    if (
        not isinstance(values, list)
        or not values
        or not all(isinstance(v, str) and v.strip() for v in values)
    ):
        raise AlignlabError(f"{where}: '{key}' must be a non-empty string or list of strings")
    return tuple(values)


def _official(row: dict, where: str, suite: str, dataset: str, line: str) -> BehaviorItem:
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise AlignlabError(f"{where}: 'question' must be a non-empty string")
    matching = _answers(row, "answer_matching_behavior", where)
    not_matching = _answers(row, "answer_not_matching_behavior", where)
    if set(matching) & set(not_matching):
        raise AlignlabError(f"{where}: an answer both matches and does not match the behaviour")
    confidence = row.get("label_confidence")
    if confidence is not None and not isinstance(confidence, int | float):
        raise AlignlabError(f"{where}: 'label_confidence' must be a number")
    return BehaviorItem(f"{dataset}/{line}", suite, dataset, question, matching, not_matching, confidence)


def _third_party(row: dict, where: str, suite: str, dataset: str, line: str) -> BehaviorItem:
    prompt = row.get("biased_prompt")
    if (
        not isinstance(prompt, str)
        or not prompt.startswith(_LLAMA3_USER)
        or not prompt.endswith(_LLAMA3_ASSISTANT)
    ):
        raise AlignlabError(f"{where}: 'biased_prompt' is not one user turn in the Llama-3 chat template")
    question = prompt[len(_LLAMA3_USER) : -len(_LLAMA3_ASSISTANT)]
    matching = _answers(row, "sycophantic_target", where)
    not_matching = _answers(row, "honest_target", where)
    sample_id = row.get("sample_id") or line
    return BehaviorItem(f"{dataset}/{sample_id}", suite, dataset, question, matching, not_matching)
