"""Open-ended questions for the self-evaluation experiments (P(True), P(IK)): TriviaQA, GSM8K, LAMBADA and
generated arithmetic. Each question carries its gold answers; `alignlab.papers.self_knowledge.grading` decides whether a sampled
answer is right. A malformed row is an AlignlabError naming its file and line.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from alignlab.data.jsonl import read_jsonl
from alignlab.errors import AlignlabError

OPEN_TASKS = ("triviaqa", "gsm8k", "lambada", "arithmetic")


@dataclass(frozen=True)
class OpenQuestion:
    id: str  # "<task>/<n>"
    task: str  # one of OPEN_TASKS
    question: str  # what "Question:" shows
    golds: tuple[str, ...]  # aliases (TriviaQA), the final number (GSM8K, arithmetic), the word (LAMBADA)
    worked: str = ""  # a full answer for few-shot examples (GSM8K's worked solution); else golds[0]
    passage: str = ""  # LAMBADA: the passage without its last word


def _text(row: dict, key: str, where: str) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value.strip():
        raise AlignlabError(f"{where}: '{key}' must be a non-empty string")
    return value


def load_triviaqa(path: Path) -> list[OpenQuestion]:
    """llm-foundry's subset: {"context": "Question: ...\\nAnswer:", "answer", "aliases"}."""
    questions = []
    for n, (where, row) in enumerate(read_jsonl(path)):
        context = _text(row, "context", where)
        match = re.fullmatch(r"Question: (.*)\nAnswer:", context.strip(), flags=re.S)
        if not match:
            raise AlignlabError(f"{where}: context is not 'Question: ...\\nAnswer:'")
        aliases = row.get("aliases")
        answer = _text(row, "answer", where)
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise AlignlabError(f"{where}: 'aliases' must be a list of strings")
        if not any(a.strip() for a in aliases):
            raise AlignlabError(f"{where}: 'aliases' is empty: nothing to grade answers against")
        golds = tuple(dict.fromkeys([answer, *aliases]))
        questions.append(OpenQuestion(f"triviaqa/{n}", "triviaqa", match.group(1).strip(), golds))
    return questions


def load_gsm8k(path: Path) -> list[OpenQuestion]:
    """The official test file: {"question", "answer"} with the answer's last line "#### N"."""
    questions = []
    for n, (where, row) in enumerate(read_jsonl(path)):
        question, answer = _text(row, "question", where), _text(row, "answer", where)
        worked, sep, final = answer.rpartition("####")
        if not sep or not final.strip():
            raise AlignlabError(f"{where}: answer does not end in '#### N'")
        gold = final.strip().replace(",", "")
        questions.append(
            OpenQuestion(f"gsm8k/{n}", "gsm8k", question.strip(), (gold,), worked=answer.strip())
        )
    return questions


# Kadavath et al. 2022 App. A.7 (LAMBADA, 10-shot): "Question: Please complete the following passage by
# filling in the blank:" then the passage, its last word a blank followed by ". ->" (both of the paper's
# examples end "____. ->"), then "Answer: <word>". The line break after "blank:" is the paper's.
LAMBADA_QUESTION = "Please complete the following passage by filling in the blank:\n{passage} ____. ->"


def load_lambada(path: Path) -> list[OpenQuestion]:
    """{"context", "continuation"} with the continuation the passage's last word."""
    questions = []
    for n, (where, row) in enumerate(read_jsonl(path)):
        context, word = _text(row, "context", where), _text(row, "continuation", where)
        passage = context.rstrip()
        questions.append(
            OpenQuestion(
                f"lambada/{n}",
                "lambada",
                LAMBADA_QUESTION.format(passage=passage),
                (word.strip(),),
                passage=passage,
            )
        )
    return questions


def arithmetic_open(n: int, seed: int, prefix: str = "arithmetic") -> list[OpenQuestion]:
    """`n` problems "What is a <op> b?" (+ and - on up to three digits, * on two), answers exact integers."""
    rng = random.Random(f"{prefix}-open|{seed}")
    questions = []
    for k in range(n):
        op = "+-*"[k % 3]
        high = 99 if op == "*" else 999
        a, b = rng.randint(10, high), rng.randint(10, high)
        value = a + b if op == "+" else a - b if op == "-" else a * b
        questions.append(OpenQuestion(f"{prefix}/{k}", "arithmetic", f"What is {a} {op} {b}?", (str(value),)))
    return questions
