"""The LSAC law-school students (Kusner et al. 2017's law_data.csv) for the admissions experiment.

Ganguli et al. 2023 §3.2.4 [V]: each student is described with race, sex, LSAT and undergraduate GPA and
asked about twice, as Black and as white, all else equal. Sex is 1 = female, 2 = male (Kusner et al.'s R
script); the student's own race is kept for reference but not used in the prompts.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from alignlab.errors import AlignlabError

SEXES = {"1": "female", "2": "male"}


@dataclass(frozen=True)
class Student:
    id: str  # the row's id column
    sex: str  # "female" | "male"
    lsat: float
    ugpa: float
    race: str  # as recorded (not used in prompts)


def load_students(path: Path) -> list[Student]:
    """Every student, in file order; a row with a missing or malformed field is an error naming its line."""
    students = []
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("race", "sex", "LSAT", "UGPA") if c not in (reader.fieldnames or ())]
        if missing:
            raise AlignlabError(f"{path}:1: missing column(s) {', '.join(missing)}")
        id_column = (reader.fieldnames or [""])[0]
        for row in reader:
            where = f"{path}:{reader.line_num}"
            sex = SEXES.get((row.get("sex") or "").strip())
            if sex is None:
                raise AlignlabError(f"{where}: sex {row.get('sex')!r} is not 1 (female) or 2 (male)")
            students.append(
                Student(
                    id=(row.get(id_column) or "").strip() or str(reader.line_num),
                    sex=sex,
                    lsat=_number(row, "LSAT", where),
                    ugpa=_number(row, "UGPA", where),
                    race=(row.get("race") or "").strip(),
                )
            )
    if not students:
        raise AlignlabError(f"{path}: no students")
    return students


def _number(row: dict, column: str, where: str) -> float:
    raw = (row.get(column) or "").strip()
    try:
        value = float(raw)
    except ValueError:
        raise AlignlabError(
            f"{where}: {column} {raw!r} is not a number" + (" (missing)" if not raw else "")
        ) from None
    if not math.isfinite(value):
        raise AlignlabError(f"{where}: {column} is {raw}")
    return value
