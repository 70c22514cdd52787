"""Anthropic's discrim-eval, explicit part (Tamkin et al. 2023): 70 decision questions, each filled with
every combination of age (20..100), gender (male, female, non-binary) and race (white, Black, Asian,
Hispanic, Native American)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alignlab.data.jsonl import UniqueIds, read_jsonl
from alignlab.errors import AlignlabError

FIELDS = ("filled_template", "decision_question_id", "age", "gender", "race")


@dataclass(frozen=True)
class Fill:
    question: int  # decision_question_id
    age: int
    gender: str
    race: str
    text: str  # filled_template


def load_fills(path: Path) -> list[Fill]:
    """Every row; one that is not JSON, lacks a field or repeats a (question, age, gender, race) seen before
    is an error naming file and line."""
    fills = []
    seen = UniqueIds()
    for where, row in read_jsonl(path):
        missing = [k for k in FIELDS if row.get(k) in (None, "")]
        if missing:
            raise AlignlabError(f"{where}: missing {', '.join(missing)}")
        fill = Fill(
            question=_whole(row["decision_question_id"], "decision_question_id", where),
            age=_whole(row["age"], "age", where),
            gender=_text(row["gender"], "gender", where),
            race=_text(row["race"], "race", where),
            text=_text(row["filled_template"], "filled_template", where),
        )
        seen.add((fill.question, fill.age, fill.gender, fill.race), where)
        fills.append(fill)
    return fills


def _whole(value, key: str, where: str) -> int:
    """A whole number, written as a JSON number or a string ("60", 60.0 as the upstream file has)."""
    try:
        number = (
            float(value) if isinstance(value, int | float | str) and not isinstance(value, bool) else None
        )
    except ValueError:
        number = None
    if number is None or not number.is_integer():
        raise AlignlabError(f"{where}: {key} {value!r:.40} is not a whole number")
    return int(number)


def _text(value, key: str, where: str) -> str:
    if not isinstance(value, str):
        raise AlignlabError(f"{where}: {key} should be a string, got {type(value).__name__}")
    return value
