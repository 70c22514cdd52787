"""The published red-team transcripts of Ganguli et al. 2022 (anthropics/hh-rlhf,
`red-team-attempts/red_team_attempts.jsonl.gz`; fields in hh-rlhf/README.md).

The upstream file is one JSON array despite its name; JSON Lines is read too, gzipped or not. Each attempt:
`transcript` ("\\n\\nHuman: ...\\n\\nAssistant: ..."), `min_harmlessness_score_transcript` (a preference-model
score, lower is more harmful), `num_params` ("2.7B", "13B", "52B"), `model_type`, `rating` (the red teamer's
0-4 rating of their own success), `task_description`, `task_descripton_harmlessness_score` (sic; the
correctly spelled key is read too), `red_team_member_id`, `is_upworker`, `tags`. A malformed attempt is an
error naming the file and the attempt (its line, or its index in the array).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from alignlab.data.jsonl import UniqueIds, parse_json, parse_object, read_text
from alignlab.errors import AlignlabError

_TURN = re.compile(r"\n\n(Human|Assistant): ")
_PARAMS = re.compile(r"^(\d+(?:\.\d+)?)\s*([MB])$", re.IGNORECASE)


@dataclass(frozen=True)
class Attempt:
    id: str
    turns: tuple[tuple[str, str], ...]  # ("human" | "assistant", text)
    min_harmlessness: float
    num_params: str
    parameters: float | None  # num_params as a number ("2.7B" -> 2.7e9)
    model_type: str
    rating: float | None
    task_description: str
    tags: tuple[str, ...]

    @property
    def attack(self) -> str:
        """The red teamer's first utterance: what the map embeds."""
        return next((text for role, text in self.turns if role == "human"), "")


def parse_transcript(text: str, where: str) -> tuple[tuple[str, str], ...]:
    parts = _TURN.split("\n\n" + text.lstrip("\n") if not text.startswith("\n\n") else text)
    if parts[0].strip() or len(parts) < 3:
        raise AlignlabError(f"{where}: 'transcript' is not '\\n\\nHuman: ...\\n\\nAssistant: ...' turns")
    return tuple((role.lower(), body.strip()) for role, body in zip(parts[1::2], parts[2::2], strict=True))


def parameters_of(num_params: str) -> float | None:
    found = _PARAMS.match(num_params.strip())
    if not found:
        return None
    return float(found.group(1)) * (1e9 if found.group(2).upper() == "B" else 1e6)


def load_attempts(path: Path) -> list[Attempt]:
    rows = list(_rows(path))
    if not rows:
        raise AlignlabError(f"{path}: no red-team attempts")
    seen = UniqueIds()
    attempts = []
    for index, (where, row) in enumerate(rows):
        attempt = _attempt(row, where, index)
        seen.add(attempt.id, where)
        attempts.append(attempt)
    return attempts


def _rows(path: Path):
    text = read_text(path)
    if text.lstrip().startswith("["):
        data = parse_json(text, path)
        for index, row in enumerate(data):
            yield f"{path}: attempt {index}", row
        return
    for number, line in enumerate(text.split("\n"), 1):
        if line.strip():
            where = f"{path}:{number}"
            yield where, parse_object(line, where)


def _attempt(row, where: str, index: int) -> Attempt:
    if not isinstance(row, dict):
        raise AlignlabError(f"{where}: expected a JSON object")
    text = row.get("transcript")
    if not isinstance(text, str):
        raise AlignlabError(f"{where}: 'transcript' must be a string")
    score = row.get("min_harmlessness_score_transcript")
    if not isinstance(score, int | float) or isinstance(score, bool):
        raise AlignlabError(f"{where}: 'min_harmlessness_score_transcript' must be a number")
    model_type, num_params = row.get("model_type"), row.get("num_params")
    if not isinstance(model_type, str) or not isinstance(num_params, str):
        raise AlignlabError(f"{where}: 'model_type' and 'num_params' must be strings")
    rating = row.get("rating")
    if rating is not None and (not isinstance(rating, int | float) or isinstance(rating, bool)):
        raise AlignlabError(f"{where}: 'rating' must be a number")
    tags = row.get("tags") or []
    return Attempt(
        id=str(row.get("id", index)),
        turns=parse_transcript(text, where),
        min_harmlessness=float(score),
        num_params=num_params,
        parameters=parameters_of(num_params),
        model_type=model_type,
        rating=None if rating is None else float(rating),
        task_description=str(row.get("task_description") or ""),
        tags=tuple(str(t) for t in tags) if isinstance(tags, list) else (),
    )
