"""Anthropic's discrim-eval, explicit part (Tamkin et al. 2023): 70 decision questions, each filled with
every combination of age (20..100), gender (male, female, non-binary) and race (white, Black, Asian,
Hispanic, Native American)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

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
    """Every row; one that is not JSON or lacks a field is an error naming file and line."""
    fills = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise AlignlabError(f"{where}: not JSON ({exc.msg})") from None
            missing = [k for k in FIELDS if not isinstance(row, dict) or row.get(k) in (None, "")]
            if missing:
                raise AlignlabError(f"{where}: missing {', '.join(missing)}")
            try:
                fills.append(
                    Fill(
                        question=int(row["decision_question_id"]),
                        age=int(float(row["age"])),
                        gender=str(row["gender"]),
                        race=str(row["race"]),
                        text=str(row["filled_template"]),
                    )
                )
            except (TypeError, ValueError):
                raise AlignlabError(f"{where}: decision_question_id or age is not a number") from None
    if not fills:
        raise AlignlabError(f"{path}: no rows")
    return fills
