"""Constitutions: the critique/revision requests and comparison principles of Constitutional AI, as files.

`--constitution` takes:
- `default`: this project's own (alignlab/constitutions/default.yaml, written in its own words);
- `published`: the paper's files in the data directory (constitutional-harmlessness/prompts:
  CritiqueRevisionInstructions.json, RLMadisonInstructions.json and their few-shot files);
- a YAML file in the format of default.yaml (its header documents the format);
- a folder holding files named like the published ones.

Texts are held plain; the prompt frames ("\\n\\nCritiqueRequest: ...\\n\\nCritique:", "\\n... Options:") are
added by `cai_prompts`, and stripped from the published strings on reading, so that both kinds of file give
the same prompts. A mistake in a file is an AlignlabError naming the file and line.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from alignlab.errors import AlignlabError

FORMAT = 1
CRITIQUE_FRAME = ("\n\nCritiqueRequest: ", "\n\nCritique:")
REVISION_FRAME = ("\n\nRevisionRequest: ", "\n\nRevision:")
PRINCIPLE_FRAME = ("\n", " Options:")
PUBLISHED_FILES = {
    "critiques": "CritiqueRevisionInstructions.json",
    "principles": "RLMadisonInstructions.json",
    "critique_examples": "CritiqueRevisionFewShotPrompts.json",
    "feedback_examples": "RLMadisonFewShotPrompts.json",
    "cot_examples": "RLMadisonPrecogFewShotPrompts.json",
}


@dataclass(frozen=True)
class CritiquePair:
    id: str
    critique: str
    revision: str


@dataclass(frozen=True)
class Principle:
    id: str
    text: str


@dataclass(frozen=True)
class CritiqueExample:
    """A few-shot demonstration: a conversation, a critique of its last reply and the revision. `text` is the
    whole demonstration when it came prebuilt (the published file); otherwise it is built from the parts."""

    conversation: str = ""
    critique: str = ""
    revision: str = ""
    text: str = ""


@dataclass(frozen=True)
class FeedbackExample:
    """A few-shot comparison: a conversation (its Human turns) and a better and a worse reply."""

    conversation: str
    better: str
    worse: str


@dataclass(frozen=True)
class Constitution:
    name: str
    critiques: tuple[CritiquePair, ...]
    principles: tuple[Principle, ...]
    critique_examples: tuple[CritiqueExample, ...] = ()
    feedback_examples: tuple[FeedbackExample, ...] = ()
    cot_examples: tuple[str, ...] = ()  # whole chain-of-thought comparisons, "{}" where the principle goes
    source: str = ""

    def digest(self) -> str:
        """What a run's identity holds: a hash of every text (not the file's path)."""
        body = json.dumps({k: v for k, v in asdict(self).items() if k != "source"}, sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:16]


def default_path() -> Path:
    return Path(__file__).resolve().parent / "constitutions" / "default.yaml"


def load_constitution(spec: str, data_dir: str | None = None) -> Constitution:
    if spec == "default":
        return read_yaml(default_path())
    if spec == "published":
        from alignlab.data import registry

        folder = registry.data_dir(data_dir) / "constitutional-harmlessness" / "prompts"
        if not folder.is_dir():
            raise AlignlabError(
                f"--constitution published: {folder} not found (set --data-dir or $ALIGNLAB_DATA_DIR to the "
                "folder holding constitutional-harmlessness/)"
            )
        return read_published(folder)
    path = Path(spec).expanduser()
    if path.is_dir():
        return read_published(path)
    if path.is_file():
        return read_yaml(path)
    raise AlignlabError(f"--constitution {spec!r}: no such file or folder (or say 'default' or 'published')")


# --- YAML ---------------------------------------------------------------------------------------------------


class _Reader:
    """Walks a composed YAML tree, so every error can name the file and the line of the node at fault."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, node, message: str):
        line = node.start_mark.line + 1 if node is not None else 1
        raise AlignlabError(f"{self.path}:{line}: {message}")

    def mapping(self, node, what: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
        import yaml

        if not isinstance(node, yaml.MappingNode):
            self.fail(node, f"{what} must be a mapping of {', '.join(required + optional)}")
        out = {}
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else None
            if name not in required + optional:
                self.fail(key, f"unknown key {name!r} in {what} (expected {', '.join(required + optional)})")
            if name in out:
                self.fail(key, f"{what} has {name!r} twice")
            out[name] = value
        missing = [k for k in required if k not in out]
        if missing:
            self.fail(node, f"{what} lacks {', '.join(missing)}")
        return out

    def sequence(self, node, what: str, allow_empty: bool = False) -> list:
        import yaml

        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, f"{what} must be a list")
        if not node.value and not allow_empty:
            self.fail(node, f"{what} is empty")
        return list(node.value)

    def text(self, node, what: str) -> str:
        import yaml

        if not isinstance(node, yaml.ScalarNode) or node.tag.endswith(":null"):
            self.fail(node, f"{what} must be text")
        value = str(node.value).strip()
        if not value:
            self.fail(node, f"{what} is empty")
        return value


def read_yaml(path: Path) -> Constitution:
    import yaml

    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AlignlabError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise AlignlabError(f"{path}: not UTF-8 text") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise AlignlabError(f"{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from exc
    r = _Reader(path)
    if root is None:
        raise AlignlabError(f"{path}: empty file")
    top = r.mapping(
        root,
        "the constitution",
        ("critiques", "principles"),
        ("format", "name", "critique_examples", "feedback_examples"),
    )
    if "format" in top and r.text(top["format"], "format") != str(FORMAT):
        r.fail(
            top["format"], f"format {top['format'].value!r} is not supported (this version reads {FORMAT})"
        )
    critiques = []
    for i, node in enumerate(r.sequence(top["critiques"], "critiques")):
        fields = r.mapping(node, f"critiques[{i}]", ("critique", "revision"), ("id",))
        critiques.append(
            CritiquePair(
                r.text(fields["id"], "id") if "id" in fields else f"critique{i}",
                r.text(fields["critique"], f"critiques[{i}].critique"),
                r.text(fields["revision"], f"critiques[{i}].revision"),
            )
        )
    principles = []
    for i, node in enumerate(r.sequence(top["principles"], "principles")):
        fields = r.mapping(node, f"principles[{i}]", ("text",), ("id",))
        principles.append(
            Principle(
                r.text(fields["id"], "id") if "id" in fields else f"principle{i}",
                r.text(fields["text"], f"principles[{i}].text"),
            )
        )
    for kind, items in (("critiques", critiques), ("principles", principles)):
        seen: set[str] = set()
        for item, node in zip(items, top[kind].value, strict=True):
            if item.id in seen:
                r.fail(node, f"{kind} id {item.id!r} is used twice")
            seen.add(item.id)
    critique_examples = _examples(
        r, top, "critique_examples", ("conversation", "critique", "revision"), CritiqueExample
    )
    feedback_examples = _examples(
        r, top, "feedback_examples", ("conversation", "better", "worse"), FeedbackExample
    )
    name = r.text(top["name"], "name") if "name" in top else path.stem
    return Constitution(
        name,
        tuple(critiques),
        tuple(principles),
        tuple(critique_examples),
        tuple(feedback_examples),
        source=str(path),
    )


def _examples(r: _Reader, top: dict, key: str, fields: tuple[str, ...], make) -> list:
    """An optional list of few-shot examples: a conversation, then texts (`fields` in `make`'s order)."""
    out = []
    for i, node in enumerate(r.sequence(top[key], key, True) if key in top else []):
        got = r.mapping(node, f"{key}[{i}]", fields)
        conversation = _conversation(r, got[fields[0]], f"{key}[{i}].{fields[0]}")
        out.append(make(conversation, *(r.text(got[f], f"{key}[{i}].{f}") for f in fields[1:])))
    return out


def _conversation(r: _Reader, node, what: str) -> str:
    text = r.text(node, what)
    if not text.startswith("Human:"):
        r.fail(node, f"{what} must start with 'Human:' (turns written as 'Human: ...' and 'Assistant: ...')")
    return text


# --- the published JSON files ---------------------------------------------------------------------------------


def _unframe(text: str, frame: tuple[str, str], where: str) -> str:
    opening, closing = frame
    if not (text.startswith(opening) and text.endswith(closing)):
        raise AlignlabError(f"{where}: expected text framed as {opening!r} ... {closing!r}")
    return text[len(opening) : len(text) - len(closing)]


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AlignlabError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AlignlabError(f"{path}: not valid JSON ({exc})") from exc


def read_published(folder: Path) -> Constitution:
    """The published files (CritiqueRevisionInstructions.json and RLMadisonInstructions.json required, the
    few-shot files optional)."""
    paths = {key: folder / name for key, name in PUBLISHED_FILES.items()}
    for key in ("critiques", "principles"):
        if not paths[key].is_file():
            raise AlignlabError(f"{folder}: {PUBLISHED_FILES[key]} not found")
    raw = _read_json(paths["critiques"])
    if not isinstance(raw, dict) or not raw:
        raise AlignlabError(f"{paths['critiques']}: expected an object of {{id: {{prompt, edit_request}}}}")
    critiques = []
    for key, pair in raw.items():
        where = f"{paths['critiques']}: {key}"
        if not isinstance(pair, dict) or "prompt" not in pair or "edit_request" not in pair:
            raise AlignlabError(f"{where}: expected {{prompt: [text], edit_request: text}}")
        prompts = pair["prompt"] if isinstance(pair["prompt"], list) else [pair["prompt"]]
        if len(prompts) != 1 or not isinstance(prompts[0], str):
            raise AlignlabError(f"{where}: expected one critique request, found {len(prompts)}")
        critiques.append(
            CritiquePair(
                key,
                _unframe(prompts[0], CRITIQUE_FRAME, where),
                _unframe(str(pair["edit_request"]), REVISION_FRAME, where),
            )
        )
    raw = _read_json(paths["principles"])
    if not isinstance(raw, list) or not raw or not all(isinstance(p, str) for p in raw):
        raise AlignlabError(f"{paths['principles']}: expected a list of principle strings")
    principles = [
        Principle(f"principle{i}", _unframe(text, PRINCIPLE_FRAME, f"{paths['principles']}[{i}]"))
        for i, text in enumerate(raw)
    ]
    critique_examples, feedback_examples, cot_examples = [], [], []
    if paths["critique_examples"].is_file():
        raw = _read_json(paths["critique_examples"])
        if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
            raise AlignlabError(f"{paths['critique_examples']}: expected a list of strings")
        # each demonstration ends where the next Human turn would start
        critique_examples = [CritiqueExample(text=t.removesuffix("\n\nHuman:")) for t in raw]
    if paths["feedback_examples"].is_file():
        raw = _read_json(paths["feedback_examples"])
        for i, row in enumerate(raw if isinstance(raw, list) else [None]):
            where = f"{paths['feedback_examples']}[{i}]"
            if not isinstance(row, dict) or not {"prompt", "corrects", "incorrects"} <= set(row):
                raise AlignlabError(f"{where}: expected {{prompt, corrects, incorrects}}")
            conversation = str(row["prompt"]).strip().removesuffix("Assistant:").strip()
            feedback_examples.append(
                FeedbackExample(conversation, str(row["corrects"][0]), str(row["incorrects"][0]))
            )
    if paths["cot_examples"].is_file():
        raw = _read_json(paths["cot_examples"])
        for i, row in enumerate(raw if isinstance(raw, list) else [None]):
            if not isinstance(row, dict) or "{}" not in str(row.get("prompt", "")):
                raise AlignlabError(f"{paths['cot_examples']}[{i}]: expected {{prompt}} with '{{}}'")
            cot_examples.append(str(row["prompt"]))
    return Constitution(
        "published (Bai et al. 2022)",
        tuple(critiques),
        tuple(principles),
        tuple(critique_examples),
        tuple(feedback_examples),
        tuple(cot_examples),
        source=str(folder),
    )
