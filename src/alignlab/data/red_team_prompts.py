"""Seed attacks for red teaming, from the data directory: HarmBench's standard behaviours
(`harmbench/harmbench_prompts.txt`, one a line), Do-Not-Answer (`donotanswer/*.jsonl`, field `prompt`) and
the first Human turn of each hh-rlhf harmless-base test conversation (`hh-rlhf/harmless-base/test.jsonl.gz`,
field `chosen`)."""

from __future__ import annotations

from pathlib import Path

from alignlab.data.jsonl import read_jsonl, read_text
from alignlab.errors import AlignlabError

SOURCES = ("harmbench", "donotanswer", "hh-rlhf")


def load_seed_attacks(
    source: str, data_dir: str | None, download: bool = False
) -> tuple[list[str], list[dict]]:
    """(attacks in file order, provenance of the files read)."""
    from alignlab.data import registry

    if source not in SOURCES:
        raise AlignlabError(f"unknown attack source {source!r}: choose from {', '.join(SOURCES)}")
    located = registry.locate(source, registry.data_dir(data_dir), download=download)
    paths = sorted(located)
    files = [{"path": f.path, "checksum": f.pinned} for f in located.found]
    attacks = [attack for path in paths for attack in attacks_in(source, path)]
    if not attacks:
        raise AlignlabError(f"no seed attacks found for {source} in the data directory")
    return list(dict.fromkeys(attacks)), files


def attacks_in(source: str, path: Path) -> list[str]:
    """The seed attacks of one file of `source` in file order (none from a file the source does not read);
    the caller drops repeats (the same attack twice is one seed, not an error)."""
    if source == "harmbench" and path.name == "harmbench_prompts.txt":
        return [line.strip() for line in read_text(path).split("\n") if line.strip()]
    if source == "donotanswer" and path.suffix == ".jsonl":
        return [_field(row, "prompt", where) for where, row in read_jsonl(path)]
    if source == "hh-rlhf" and path.name == "test.jsonl.gz" and "harmless-base" in str(path):
        return [first_human(_field(row, "chosen", where), where) for where, row in read_jsonl(path)]
    return []


def _field(row, key: str, where: str) -> str:
    value = row.get(key) if isinstance(row, dict) else None
    if not isinstance(value, str) or not value.strip():
        raise AlignlabError(f"{where}: '{key}' must be a non-empty string")
    return value.strip()


def first_human(conversation: str, where: str) -> str:
    """The first Human turn of an hh-rlhf dialogue."""
    marker, reply = "Human: ", "\n\nAssistant:"
    start = conversation.find(marker)
    if start < 0:
        raise AlignlabError(f"{where}: no 'Human:' turn")
    text = conversation[start + len(marker) :]
    return text.split(reply)[0].strip()
