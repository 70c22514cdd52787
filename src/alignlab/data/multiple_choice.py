"""Multiple-choice questions for the calibration experiment: MMLU, TruthfulQA MC1, generated arithmetic,
and a user's own jsonl.

Every loader returns `MCQuestion`s with the correct option's index; a malformed row is an AlignlabError
naming its file and line.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from alignlab.data.jsonl import UniqueIds, line_of, read_csv, read_json, read_jsonl
from alignlab.errors import AlignlabError


@dataclass(frozen=True)
class MCQuestion:
    id: str  # "<task>/<subject>/<n>": unique across tasks
    task: str  # "mmlu" | "truthfulqa" | "arithmetic" | a user file's stem
    subject: str  # MMLU's subject; the task's name elsewhere
    question: str
    choices: tuple[str, ...]
    answer: int  # index into choices


MMLU_COLUMNS = ("question", "choice0", "choice1", "choice2", "choice3", "answer")


# --- MMLU -----------------------------------------------------------------------------------------
def load_mmlu(paths: list[Path], split: str) -> list[MCQuestion]:
    """Every question of one split ("test" or "dev") in the reformatted copy (header row
    question,choice0..choice3,answer with answer an index 0-3), subjects in file-name order."""
    suffix = f"_{split}.csv"
    files = sorted(p for p in paths if p.name.endswith(suffix))
    questions = []
    for path in files:
        subject = path.name.removesuffix(suffix)
        for n, (line, row) in enumerate(read_csv(path, MMLU_COLUMNS)):
            where = f"{path}:{line}"
            if None in row or any(row[c] is None for c in MMLU_COLUMNS):
                raise AlignlabError(f"{where}: expected {len(MMLU_COLUMNS)} fields")
            answer = _index(row["answer"], 4, where)
            choices = tuple(row[f"choice{k}"] for k in range(4))
            questions.append(
                MCQuestion(f"mmlu/{subject}/{split}{n}", "mmlu", subject, row["question"], choices, answer)
            )
    return questions


# --- TruthfulQA MC1 -------------------------------------------------------------------------------
def load_truthfulqa_mc1(path: Path) -> list[MCQuestion]:
    """mc_task.json's MC1 targets: each question's answers with exactly one marked 1. The file lists the
    correct answer first, so the experiment always shuffles them (see `calibration.py`)."""
    rows = read_json(path)
    if not isinstance(rows, list):
        raise AlignlabError(f"{path}: expected a JSON list of questions")
    questions = []
    for n, row in enumerate(rows):
        where = f"{path}: question {n}"
        targets = row.get("mc1_targets") if isinstance(row, dict) else None
        if not isinstance(targets, dict) or not isinstance(row.get("question"), str):
            raise AlignlabError(f"{where}: needs a 'question' string and an 'mc1_targets' object")
        choices = tuple(targets)
        correct = [i for i, c in enumerate(choices) if targets[c] == 1]
        if len(correct) != 1 or len(choices) < 2:
            raise AlignlabError(f"{where}: mc1_targets must mark exactly one of two or more answers 1")
        questions.append(
            MCQuestion(
                f"truthfulqa/mc1/{n}", "truthfulqa", "truthfulqa", row["question"], choices, correct[0]
            )
        )
    return questions


# --- generated arithmetic -------------------------------------------------------------------------
OPERATIONS = ("+", "-", "*")


def arithmetic_questions(n: int, seed: int, options: int = 4, prefix: str = "arithmetic") -> list[MCQuestion]:
    """`n` problems "What is a <op> b?" (two-digit operands; three-digit for + and -), each with the answer
    and `options - 1` distinct near misses (off by 1, 2 or 10, or by a digit), the answer's place drawn at
    random. The same seed gives the same problems."""
    rng = random.Random(f"{prefix}|{seed}")
    questions = []
    for k in range(n):
        op = OPERATIONS[k % len(OPERATIONS)]
        high = 99 if op == "*" else 999
        a, b = rng.randint(10, high), rng.randint(10, high)
        value = a + b if op == "+" else a - b if op == "-" else a * b
        wrong: list[int] = []
        while len(wrong) < options - 1:
            miss = value + rng.choice(
                (-10, -2, -1, 1, 2, 10, 9 * 10 ** rng.randint(0, 2), -(10 ** rng.randint(1, 2)))
            )
            if miss != value and miss not in wrong:
                wrong.append(miss)
        place = rng.randrange(options)
        choices = [str(w) for w in wrong]
        choices.insert(place, str(value))
        questions.append(
            MCQuestion(
                f"{prefix}/{op}/{k}",
                "arithmetic",
                "arithmetic",
                f"What is {a} {op} {b}?",
                tuple(choices),
                place,
            )
        )
    return questions


# --- a user's own questions -----------------------------------------------------------------------
def load_jsonl(path: Path) -> list[MCQuestion]:
    """Rows {"question": str, "choices": [str, ...], "answer": int} (optional "id", "subject")."""
    questions = []
    seen = UniqueIds()
    for where, row in read_jsonl(path):
        line_no = line_of(where)
        choices = row.get("choices")
        if (
            not isinstance(row.get("question"), str)
            or not isinstance(choices, list)
            or len(choices) < 2
            or not all(isinstance(c, str) for c in choices)
        ):
            raise AlignlabError(f"{where}: needs 'question' (string) and 'choices' (two or more strings)")
        answer = _index(row.get("answer"), len(choices), where)
        item_id = f"{path.stem}/{row.get('id', line_no)}"
        seen.add(item_id, where)
        subject = str(row.get("subject") or path.stem)
        questions.append(MCQuestion(item_id, path.stem, subject, row["question"], tuple(choices), answer))
    return questions


def _index(raw, size: int, where: str) -> int:
    try:
        value = int(str(raw).strip())
    except ValueError:
        value = -1
    if isinstance(raw, bool) or not 0 <= value < size:
        raise AlignlabError(f"{where}: answer {raw!r} is not an option index 0-{size - 1}")
    return value
