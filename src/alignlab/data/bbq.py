"""BBQ (Parrish et al. 2022) items, read from the official jsonl files.

Each row has three answers; ``answer_info[ansK] = [text, group label]``. Exactly one answer's group
is ``"unknown"``. The biased answer (``target_index``) is derived from the row itself, replacing the
``target_loc`` column of the unavailable ``supplemental/additional_metadata.csv``:

* an answer is *stereotyped* if its group matches ``additional_metadata.stereotyped_groups``,
  ignoring case;
* for a ``neg`` question ("Who was forgetful?") the biased answer is the stereotyped one; for a
  ``nonneg`` question it is the other non-unknown answer (A. Parrish, nyu-mll/BBQ issue #11);
* -1 when neither or both non-unknown answers match.

Matching, by the quirks of the labels (as seen in the files, in BBQ's own R analysis script and in
the lm-evaluation-harness and HELM implementations):

* Labels and stereotyped groups are split into dimensions: gender (``F``/``M``, and the words
  woman/girl/female -> F, man/boy/male -> M), SES (``lowSES``/``low SES`` -> low, ``highSES`` ->
  high), and the rest ("core": ``old``, ``nonOld``, ``Black``, ``trans``, ...). Intersectional labels
  carry prefixes, ``F-Black``, ``lowSES-M-Latino``, and Gender_identity labels may be joined with
  ``_`` (``trans_F``, ``nonTrans_M``).
* An answer matches when, for each dimension the stereotyped groups name and the answer has, the
  answer's value is among them, and at least one dimension agrees. So ``M-Black`` matches ["Black"]
  (Race_ethnicity names carry the gender of the name), ``lowSES-M-Black`` matches ["low SES",
  "Black"] but ``highSES-M-Black`` does not, and ``nonOld`` never matches ``old`` (whole tokens).
* Nationality labels are regions (``AsiaPacific``) while the stereotyped groups are nationalities
  (``Indian``): the answer's name (``answer_info[ansK][0]``) counts as a core value there.
* Race_x_SES: when only the race is given and both answers share it, the low-SES one is the
  stereotyped one (as in HELM).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignlab.data.jsonl import UniqueIds, read_jsonl
from alignlab.errors import AlignlabError

POLARITIES = ("neg", "nonneg")
CONDITIONS = ("ambig", "disambig")


@dataclass(frozen=True)
class BBQItem:
    example_id: int
    category: str
    question_index: str
    question_polarity: str  # "neg" | "nonneg"
    context_condition: str  # "ambig" | "disambig"
    context: str
    question: str
    answers: tuple[str, str, str]
    label: int
    answer_groups: tuple[str, str, str]  # answer_info[ansK][1]
    unknown_index: int
    target_index: int  # the biased answer, or -1 when it cannot be derived
    stereotyped_groups: tuple[str, ...]
    answer_names: tuple[str, str, str] = ("", "", "")  # answer_info[ansK][0]

    @property
    def id(self) -> str:
        return f"{self.category}-{self.example_id}"

    @property
    def ambiguous(self) -> bool:
        return self.context_condition == "ambig"

    @property
    def other_index(self) -> int:
        """The non-unknown answer that is not the target (-1 when the target is unknown)."""
        if self.target_index < 0:
            return -1
        return 3 - self.unknown_index - self.target_index


# ---------------------------------------------------------------------------------------------
# Group matching

_GENDER_WORDS = {
    "f": "f",
    "m": "m",
    "woman": "f",
    "women": "f",
    "girl": "f",
    "girls": "f",
    "female": "f",
    "man": "m",
    "men": "m",
    "boy": "m",
    "boys": "m",
    "male": "m",
}
_SES_WORDS = {"lowses": "low", "low ses": "low", "highses": "high", "high ses": "high"}
_PREFIXES = (
    ("lowses-", "ses", "low"),
    ("highses-", "ses", "high"),
    ("f-", "gender", "f"),
    ("m-", "gender", "m"),
)


def _norm(s: str) -> str:
    return " ".join(s.lower().split())


def group_dims(label: str) -> dict[str, set[str]]:
    """Split a group label into {"gender", "ses", "core"} -> values (lowercase).

    >>> group_dims("lowSES-F-Black")
    {'ses': {'low'}, 'gender': {'f'}, 'core': {'black'}}
    >>> group_dims("trans_F")
    {'core': {'trans'}, 'gender': {'f'}}
    """
    dims: dict[str, set[str]] = {}
    for part in label.split("_"):
        rest = _norm(part)
        stripped = True
        while stripped and rest:
            stripped = False
            for prefix, dim, value in _PREFIXES:
                if rest.startswith(prefix) and len(rest) > len(prefix):
                    dims.setdefault(dim, set()).add(value)
                    rest = rest[len(prefix) :]
                    stripped = True
        if not rest:
            continue
        if rest in _GENDER_WORDS:
            dims.setdefault("gender", set()).add(_GENDER_WORDS[rest])
        elif rest in _SES_WORDS:
            dims.setdefault("ses", set()).add(_SES_WORDS[rest])
        else:
            dims.setdefault("core", set()).add(rest)
    return dims


def _stereotype_dims(groups: Iterable[str]) -> dict[str, set[str]]:
    allowed: dict[str, set[str]] = {}
    for g in groups:
        for dim, values in group_dims(g).items():
            allowed.setdefault(dim, set()).update(values)
    return allowed


def _matches(answer: dict[str, set[str]], allowed: dict[str, set[str]]) -> bool:
    agree = False
    for dim, values in answer.items():
        if dim not in allowed:
            continue
        if values & allowed[dim]:
            agree = True
        else:
            return False
    return agree


def derive_target(
    category: str,
    polarity: str,
    names: tuple[str, str, str],
    groups: tuple[str, str, str],
    stereotyped: Iterable[str],
    unknown_index: int,
) -> int:
    """Index of the biased answer (see the module docstring), or -1."""
    allowed = _stereotype_dims(stereotyped)
    candidates = [i for i in range(3) if i != unknown_index]
    dims = {i: group_dims(groups[i]) for i in candidates}
    if category == "Nationality":
        for i in candidates:
            dims[i].setdefault("core", set()).add(_norm(names[i]))
    hits = [i for i in candidates if _matches(dims[i], allowed)]
    if len(hits) == 2 and category == "Race_x_SES" and "ses" not in allowed:
        low = [i for i in hits if dims[i].get("ses") == {"low"}]
        if len(low) == 1:
            hits = low
    if len(hits) != 1:
        return -1
    stereotyped_index = hits[0]
    if polarity == "neg":
        return stereotyped_index
    return next(i for i in candidates if i != stereotyped_index)


# ---------------------------------------------------------------------------------------------
# Loading


class _RowError(Exception):
    pass


def _field(row: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str = "") -> Any:
    if key not in row:
        raise _RowError(f"missing field {where}{key!r}")
    value = row[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise _RowError(f"field {where}{key!r} should be {names}, got {type(value).__name__} {value!r:.60}")
    return value


def _item(row: Any) -> BBQItem:
    if not isinstance(row, dict):
        raise _RowError(f"expected a JSON object, got {type(row).__name__}")
    example_id = _field(row, "example_id", int)
    category = _field(row, "category", str)
    question_index = _field(row, "question_index", str)
    polarity = _field(row, "question_polarity", str)
    if polarity not in POLARITIES:
        raise _RowError(f"field 'question_polarity' should be 'neg' or 'nonneg', got {polarity!r}")
    condition = _field(row, "context_condition", str)
    if condition not in CONDITIONS:
        raise _RowError(f"field 'context_condition' should be 'ambig' or 'disambig', got {condition!r}")
    context = _field(row, "context", str)
    question = _field(row, "question", str)
    answers = tuple(_field(row, f"ans{k}", str) for k in range(3))
    label = _field(row, "label", int)
    if not 0 <= label <= 2:
        raise _RowError(f"field 'label' should be 0, 1 or 2, got {label}")
    info = _field(row, "answer_info", dict)
    names: list[str] = []
    groups: list[str] = []
    for k in range(3):
        pair = _field(info, f"ans{k}", list, "answer_info.")
        if len(pair) != 2 or not all(isinstance(x, str) for x in pair):
            raise _RowError(f"field answer_info.ans{k} should be [text, group] strings, got {pair!r:.80}")
        names.append(pair[0])
        groups.append(pair[1])
    meta = _field(row, "additional_metadata", dict)
    stereotyped = _field(meta, "stereotyped_groups", list, "additional_metadata.")
    if not all(isinstance(g, str) for g in stereotyped):
        raise _RowError(
            f"field additional_metadata.stereotyped_groups should hold strings, got {stereotyped!r:.80}"
        )
    unknown = [k for k in range(3) if groups[k] == "unknown"]
    if len(unknown) != 1:
        raise _RowError(f"expected exactly one answer with group 'unknown', found {len(unknown)}: {groups}")
    names_t = (names[0], names[1], names[2])
    groups_t = (groups[0], groups[1], groups[2])
    return BBQItem(
        example_id=example_id,
        category=category,
        question_index=question_index,
        question_polarity=polarity,
        context_condition=condition,
        context=context,
        question=question,
        answers=(answers[0], answers[1], answers[2]),
        label=label,
        answer_groups=groups_t,
        unknown_index=unknown[0],
        target_index=derive_target(category, polarity, names_t, groups_t, stereotyped, unknown[0]),
        stereotyped_groups=tuple(stereotyped),
        answer_names=names_t,
    )


def load_bbq_file(path: Path | str, seen: UniqueIds | None = None) -> list[BBQItem]:
    """The file's items; `seen` carries the ids of files read before it (an id must be unique)."""
    seen = UniqueIds() if seen is None else seen
    items: list[BBQItem] = []
    for where, row in read_jsonl(Path(path)):
        try:
            item = _item(row)
        except _RowError as exc:
            raise AlignlabError(f"{where}: {exc}") from None
        seen.add(item.id, where)
        items.append(item)
    return items


def load_bbq(paths: Iterable[Path | str]) -> list[BBQItem]:
    """All items of the given jsonl files, in file order. A malformed row, or a second row with an id
    (category and example_id) already read, raises AlignlabError ``"<path>:<line>: <what is wrong>"``."""
    seen = UniqueIds()
    items: list[BBQItem] = []
    for p in paths:
        items.extend(load_bbq_file(p, seen))
    return items


def count_no_target(items: Iterable[BBQItem]) -> dict[str, tuple[int, int]]:
    """Per category: (items whose biased answer could not be derived, items)."""
    counts: dict[str, list[int]] = {}
    for it in items:
        c = counts.setdefault(it.category, [0, 0])
        c[0] += it.target_index < 0
        c[1] += 1
    return {k: (v[0], v[1]) for k, v in counts.items()}


def categories_of(paths: Iterable[Path | str]) -> list[str]:
    """Category names of BBQ files (their stems): ``.../Age.jsonl`` -> ``Age``."""
    return [Path(p).name.split(".", 1)[0] for p in paths]
