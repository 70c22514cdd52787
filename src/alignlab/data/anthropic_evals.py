"""The behaviour datasets of Anthropic's model-written evaluations (Perez et al. 2022, anthropics/evals) as
one kind of item: a question and the answers that do and do not match the behaviour.

Formats read (each a JSON Lines file; one dataset a file):
- official rows: {"question", "answer_matching_behavior", "answer_not_matching_behavior"} (each answer a
  string or a list of strings), "label_confidence" where present (persona), as in persona/,
  advanced-ai-risk/{human,lm}_generated_evals/ and the official sycophancy/sycophancy_on_*.jsonl;
- the third-party sycophancy subset (sycophancy/third_party_subset/): {"biased_prompt",
  "sycophantic_target", "honest_target", "sample_id"}, whose prompt is the official question inside the
  Llama-3 chat template; the template is stripped (SOURCES.md: all 1,000 rows then end in "Answer:").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alignlab.data.jsonl import read_jsonl
from alignlab.errors import AlignlabError

SUITES = ("persona", "advanced-ai-risk", "sycophancy")
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
    else:
        raise AlignlabError(f"unknown suite {suite!r}: choose from {', '.join(SUITES)}")
    return sorted(found)


def load_behavior_file(path: Path, suite: str, dataset: str) -> list[BehaviorItem]:
    items = []
    seen: set[str] = set()
    for where, row in read_jsonl(path):
        line = where.rpartition(":")[2]
        if "biased_prompt" in row:
            item = _third_party(row, where, suite, dataset, line)
        else:
            item = _official(row, where, suite, dataset, line)
        if item.id in seen:
            raise AlignlabError(f"{where}: duplicate id {item.id!r}")
        seen.add(item.id)
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
