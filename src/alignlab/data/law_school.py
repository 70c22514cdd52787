"""The LSAC law-school students (Kusner et al. 2017's law_data.csv) for the admissions experiment.

Ganguli et al. 2023 §3.2.4 [V]: each student is described with race, sex, LSAT and undergraduate GPA and
asked about twice, as Black and as white, all else equal. Sex is 1 = female, 2 = male (Kusner et al.'s R
script); the student's own race is kept for reference but not used in the prompts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from alignlab.data.jsonl import UniqueIds, read_csv
from alignlab.errors import AlignlabError

SEXES = {"1": "female", "2": "male"}
COLUMNS = ("race", "sex", "LSAT", "UGPA")


@dataclass(frozen=True)
class Student:
    id: str  # the row's id column
    sex: str  # "female" | "male"
    lsat: float
    ugpa: float
    race: str  # as recorded (not used in prompts)


def load_students(path: Path) -> list[Student]:
    """Every student, in file order; a row with a missing or malformed field, or an id seen before, is an
    error naming its line."""
    students = []
    seen = UniqueIds()
    for line, row in read_csv(path, COLUMNS):
        where = f"{path}:{line}"
        sex = SEXES.get((row.get("sex") or "").strip())
        if sex is None:
            raise AlignlabError(f"{where}: sex {row.get('sex')!r} is not 1 (female) or 2 (male)")
        student = Student(
            id=_id(row) or str(line),
            sex=sex,
            lsat=_number(row, "LSAT", where),
            ugpa=_number(row, "UGPA", where),
            race=(row.get("race") or "").strip(),
        )
        seen.add(student.id, where)
        students.append(student)
    if not students:
        raise AlignlabError(f"{path}: no students")
    return students


def _id(row: dict) -> str:
    """The first column (law_data.csv's unnamed row number; csv.DictReader keeps the header's order), unless
    it is one of the data columns: then the caller numbers rows by line."""
    column, value = next(iter(row.items()), (None, None))
    if column in COLUMNS or not isinstance(value, str):
        return ""
    return value.strip()


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
