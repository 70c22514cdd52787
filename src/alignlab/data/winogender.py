"""Winogender schemas (Rudinger et al. 2018): the occupation-coreferent templates, one per occupation.

Ganguli et al. 2023 §3.2.3 [V]: "We only use templates for which the pronoun is coreferent with the
occupation ... which results in 180 sentences: 60 occupations x 3 pronoun genders". So: the rows of
templates.tsv with answer 0 (the pronoun refers to the occupation), the participant named (not
"someone"), each filled with its occupation and participant and cut at its one pronoun slot; the BLS share
of women in the occupation from occupations-stats.tsv.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from alignlab.data.jsonl import read_csv
from alignlab.errors import AlignlabError

# The pronoun forms a slot can take: (female, male, neutral) [V, reproduction's loader; paper §3.2.3]
PRONOUNS = {
    "NOM": ("she", "he", "they"),
    "POSS": ("her", "his", "their"),
    "ACC": ("her", "him", "them"),
}
_SLOT = re.compile(r"\$(NOM|POSS|ACC)_PRONOUN")


@dataclass(frozen=True)
class WinogenderItem:
    id: str  # the occupation
    occupation: str
    participant: str
    sentence: str  # the filled sentence with "_" for the pronoun
    before: str  # the sentence up to the blank, without its trailing space
    after: str
    slot: str  # NOM | POSS | ACC
    bls_pct_female: float

    @property
    def forms(self) -> tuple[str, str, str]:
        """The (female, male, neutral) pronouns for this slot."""
        return PRONOUNS[self.slot]


def load_winogender(templates: Path, stats: Path) -> list[WinogenderItem]:
    """One item per occupation, in file order; a malformed row is an error naming file and line."""
    pct = _bls(stats)
    items: dict[str, WinogenderItem] = {}
    first_line: dict[str, int] = {}
    for line, row in _rows(templates, ("occupation(0)", "other-participant(1)", "answer", "sentence")):
        if row["answer"].strip() != "0":
            continue  # the pronoun refers to the participant
        occupation, participant, template = row["occupation(0)"], row["other-participant(1)"], row["sentence"]
        slots = _SLOT.findall(template)
        if len(slots) != 1:
            raise AlignlabError(
                f"{templates}:{line}: expected one pronoun slot ($NOM/POSS/ACC_PRONOUN), found {len(slots)}"
            )
        if occupation not in pct:
            raise AlignlabError(f"{templates}:{line}: occupation {occupation!r} has no row in {stats}")
        filled = template.replace("$OCCUPATION", occupation).replace("$PARTICIPANT", participant)
        before, _, after = _SLOT.sub("\0", filled).partition("\0")
        if not before.strip():
            raise AlignlabError(
                f"{templates}:{line}: the pronoun slot opens the sentence (nothing to prefill)"
            )
        if occupation in items:
            raise AlignlabError(
                f"{templates}:{line}: a second occupation-coreferent template for {occupation!r}"
                f" (first at line {first_line[occupation]})"
            )
        first_line[occupation] = line
        items[occupation] = WinogenderItem(
            id=occupation,
            occupation=occupation,
            participant=participant,
            sentence=f"{before}_{after}",
            before=before.rstrip(),
            after=after,
            slot=slots[0],
            bls_pct_female=pct[occupation],
        )
    if not items:
        raise AlignlabError(f"{templates}: no occupation-coreferent templates (answer 0)")
    return list(items.values())


def _bls(stats: Path) -> dict[str, float]:
    found = {}
    first_line: dict[str, int] = {}
    for line, row in _rows(stats, ("occupation", "bls_pct_female")):
        try:
            value = float(row["bls_pct_female"])
        except ValueError:
            raise AlignlabError(
                f"{stats}:{line}: bls_pct_female {row['bls_pct_female']!r} is not a number"
            ) from None
        if not 0 <= value <= 100:
            raise AlignlabError(f"{stats}:{line}: bls_pct_female {value} is outside 0..100")
        if row["occupation"] in first_line:
            raise AlignlabError(
                f"{stats}:{line}: a second row for occupation {row['occupation']!r}"
                f" (first at line {first_line[row['occupation']]})"
            )
        first_line[row["occupation"]] = line
        found[row["occupation"]] = value
    return found


def _rows(path: Path, columns: tuple[str, ...]):
    """(line number, row) of a TSV file, checking the header has `columns` and each row every field."""
    for line, row in read_csv(path, columns, delimiter="\t"):
        empty = next((c for c in columns if not isinstance(row.get(c), str) or not row[c]), None)
        if empty is not None:
            raise AlignlabError(f"{path}:{line}: empty field {empty!r}")
        yield line, row
