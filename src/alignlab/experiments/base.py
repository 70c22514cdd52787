"""The experiment protocol: what one experiment declares, so that one runner, one CLI and one report serve all.

An experiment is one module of a paper's package under `alignlab/papers/` (or any module named in ALIGNLAB_PLUGINS, or an
`alignlab.experiments` entry point) that subclasses `Experiment` and calls `register()`:

    class Toy(Experiment):
        name, help, conditions = "toy", "a toy", ("plain", "polite")
        prompts = {"QUESTION": "Is {x} even?"}             # hashed into the run identity

        def load(self, source, limit, seed):                # items and their data provenance
            return Items([Item(str(x), x) for x in range(10)])

        def task(self, item, condition, settings):          # yield a request (or a list), return a sample
            scored = yield ScoreRequest(self.prompts["QUESTION"].format(x=item.value), (" Yes", " No"))
            return {"id": item.id, "condition": condition, "yes": scored.logprobs[0] > scored.logprobs[1]}

        def metrics(self, samples, settings, seed, n_resamples):   # {condition: {metric: estimate}}
            ...

    register(Toy())

The runner (alignlab.evaluate) does the rest for every experiment alike: checks before the model loads, the
run folder's identity and resume, the engine, exactly-once samples, metrics, figures, model ladders and
the report. A condition that asks about some items only says which through `applies`. Settings are a dataclass (`Settings` or a subclass); each extra field the CLI should set is an
`Option`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from alignlab.engine.runner import Task
from alignlab.errors import AlignlabError
from alignlab.option_types import temperature, whole_number

PROMPT_FORMATS = ("raw", "chat")


@dataclass(frozen=True)
class Settings:
    """What every experiment's run is parameterised by; experiments subclass it to add their own fields."""

    conditions: tuple[str, ...] = ()
    prompt_format: str = "raw"
    seed: int = 1234


@dataclass(frozen=True)
class CoTSettings(Settings):
    """Settings of an experiment with a chain-of-thought condition (Ganguli et al. 2023 §3.2.2: up to 256
    sampled tokens)."""

    cot_temperature: float = 1.0
    cot_max_tokens: int = 256


@dataclass(frozen=True)
class Option:
    """A command-line option that sets one field of the experiment's settings (its default is the field's)."""

    flag: str  # "--cot-max-tokens"
    field: str  # "cot_max_tokens"
    type: Any = str
    help: str = ""
    choices: tuple | None = None
    action: str | None = None  # "append": repeatable, the values a tuple


@dataclass
class Item:
    """A minimal item: experiments may use any object with an `id`."""

    id: str
    value: Any = None


@dataclass(frozen=True)
class PooledItem:
    """A question (anything with an `id`) and the pool its few-shot examples are drawn from, a tuple shared
    by every item of its task."""

    question: Any
    pool: tuple

    @property
    def id(self) -> str:
        return self.question.id


@dataclass
class Items:
    """What `Experiment.load` returns: the items, the data files they came from, and warnings."""

    items: list
    files: list[dict] = field(default_factory=list)  # {"path", "checksum"}: the run's data provenance
    warnings: list[str] = field(default_factory=list)
    facts: dict = field(default_factory=dict)  # more for config.json (e.g. the categories found)


@dataclass(frozen=True)
class DataSource:
    """Where the user said data is: a data directory, their own files, or permission to download."""

    data_dir: str | None = None
    files: tuple[str, ...] = ()
    download: bool = False


class Experiment:
    kind = "experiment"  # what the registry tells it from a pipeline by
    name: str = ""
    help: str = ""  # one line, listed by `alignlab eval --help`
    description: str = ""
    version: str = "1"  # bump when scoring or item selection changes (prompts are hashed on their own)
    conditions: tuple[str, ...] = ()
    default_conditions: tuple[str, ...] | None = None  # None: all
    settings_class: type[Settings] = Settings
    options: tuple[Option, ...] = ()
    prompts: Mapping[str, str] = {}
    # (dotted metric path under a condition, column title) for the console table
    columns: tuple[tuple[str, str], ...] = ()
    accepts_data_files: bool = False  # whether --data-file (the user's own files) makes sense
    limit_unit: str = "items"  # what `--limit N` counts, alone and in a suite (said in --help)

    # --- what each experiment implements -----------------------------------------------------------
    def load(self, source: DataSource, limit: int | None, seed: int) -> Items:
        raise NotImplementedError

    def task(self, item, condition: str, settings: Settings) -> Task:
        raise NotImplementedError

    def metrics(self, samples: list[dict], settings: Settings, seed: int, n_resamples: int) -> dict:
        """{condition: metrics} over the finished samples (each (item, condition) exactly once)."""
        raise NotImplementedError

    # --- what it may override -----------------------------------------------------------------------
    def items(self, source: DataSource, limit: int | None, settings: Settings) -> Items:
        """The run's items. Override this instead of `load` when which items a run takes depends on its
        settings (e.g. the tasks an option selects)."""
        return self.load(source, limit, settings.seed)

    def applies(self, item, condition: str, settings: Settings) -> bool:
        """Whether `condition` asks about `item` (every item by default; e.g. a condition about one task)."""
        return True

    def request_kinds(self, settings: Settings) -> set[str]:
        """Scores, and generation when a chosen condition samples a chain of thought (named "...cot")."""
        return {"score", "generate"} if any(c.endswith("cot") for c in settings.conditions) else {"score"}

    def preflight(self, backend, settings: Settings) -> None:
        """Checks of the settings that need the loaded model (a layer index), run before any work and before
        the run folder exists; raise AlignlabError. Cheap requests only."""

    def item_id(self, item) -> str:
        return str(item.id)

    def sample_order(self, sample: dict):
        """Samples are scored in this order (file order depends on batching and resumes)."""
        return (sample["condition"], str(sample["id"]))

    def figures(self, metrics: dict, folder: Path, samples: list[dict]) -> list[Path]:
        """Write the run's figures into `folder` from its metrics ({condition: ...}) and samples."""
        return []

    def artifacts(self, metrics: dict, samples: list[dict], settings: Settings, folder: Path) -> list[Path]:
        """Write files other than figures into the run folder from its metrics ({condition: ...}) and
        samples (a trained probe)."""
        return []

    def add_commands(self, subparsers) -> None:
        """Add top-level commands of this experiment's own (`alignlab p-ik predict ...`) to the CLI's
        subparsers; each sets `func` (args -> exit code) and may raise AlignlabError for a user's mistake."""

    def report_section(self):
        """The report's Section (`alignlab.report.sections`) for this experiment's runs (None: the generic
        one)."""
        return None

    # --- derived --------------------------------------------------------------------------------------
    def settings(self, **values) -> Settings:
        """Settings from keyword values, checked: unknown conditions and formats are user errors."""
        given = values.pop(
            "conditions", None
        )  # None: not asked; an empty list (--conditions ''): asked for none
        conditions = tuple(self.default_conditions or self.conditions) if given is None else tuple(given)
        unknown = [c for c in conditions if c not in self.conditions]
        if unknown or not conditions:
            raise AlignlabError(
                f"unknown {self.name} condition(s) {', '.join(unknown) or '(none given)'}: "
                f"choose from {', '.join(self.conditions)}"
            )
        fmt = values.get("prompt_format", "raw")
        if fmt not in PROMPT_FORMATS:
            raise AlignlabError(f"unknown prompt format {fmt!r}: choose {' or '.join(PROMPT_FORMATS)}")
        known = {f.name for f in fields(self.settings_class)}
        return self.settings_class(conditions=conditions, **{k: v for k, v in values.items() if k in known})

    def prompt_hashes(self) -> dict[str, str]:
        """A short hash of each prompt template: a run's identity changes when any template does."""
        from alignlab.experiments.identity import prompt_hashes

        return prompt_hashes(self.prompts)


COT_OPTIONS = (
    Option(
        "--cot-temperature",
        "cot_temperature",
        temperature,
        "sampling temperature of the chain of thought (0..10)",
    ),
    Option(
        "--cot-max-tokens",
        "cot_max_tokens",
        whole_number(1),
        "tokens of chain of thought at most (paper: 256)",
    ),
)
COT_STOP = ("\n\nHuman:", "\nHuman:", "Human:")  # a sampled chain of thought ends where a next turn would


def cot_request(prompt, settings: CoTSettings, seed: int):
    """The request that samples a chain of thought after `prompt` (the papers' up to 256 tokens at T=1 by
    default; a raw prompt stops where a next Human turn would start)."""
    from alignlab.models.base import GenerateRequest

    return GenerateRequest(
        prompt=prompt,
        max_tokens=settings.cot_max_tokens,
        temperature=settings.cot_temperature,
        stop=COT_STOP if isinstance(prompt, str) else (),
        seed=seed,
    )


def request_seed(seed: int, item_id: str, condition: str) -> int:
    """A per-request seed, so each sample's reasoning is reproducible on its own (and after a resume)."""
    digest = hashlib.sha256(f"{seed}|{item_id}|{condition}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def prompt_text(prompt) -> str:
    """A prompt as text for the sample log: raw prompts as they are, chat prompts turn by turn."""
    if isinstance(prompt, str):
        return prompt
    turns = [f"[{role}] {text}" for role, text in prompt.messages]
    return "\n".join(turns + [f"[assistant] {prompt.prefill}"])


def take(items: list, limit: int | None, seed: int) -> list:
    """The first `limit` of a seeded shuffle, kept in their original order (all of them without a limit)."""
    if limit is not None and limit < len(items):
        import numpy as np

        order = np.random.default_rng(seed).permutation(len(items))
        items = [items[i] for i in sorted(order[:limit])]
    return items


def take_stratified(items: list, limit: int | None, seed: int, key) -> list:
    """`take` within each group of `key(item)`, the groups keeping their shares of `items` (largest
    remainders get the leftover places), so a sample keeps its source's label balance; original order."""
    if limit is None or limit >= len(items):
        return items
    groups: dict = {}
    for index, item in enumerate(items):
        groups.setdefault(key(item), []).append(index)
    quotas = {g: limit * len(members) / len(items) for g, members in groups.items()}
    counts = {g: int(q) for g, q in quotas.items()}
    for g in sorted(quotas, key=lambda g: (counts[g] - quotas[g], str(g)))[: limit - sum(counts.values())]:
        counts[g] += 1
    chosen = set()
    for g, members in groups.items():
        chosen.update(members[i] for i in take(list(range(len(members))), counts[g], seed))
    return [items[i] for i in sorted(chosen)]


def take_balanced(items: list, limit: int | None, seed: int, key) -> tuple[list, int | None]:
    """(sample, size) of `limit` items keeping the balance of `key(item)`'s groups.

    A source whose groups are the same size (the persona sets: as many " Yes"- as " No"-matching items)
    gives the same count from each, so a model that always gives one answer scores exactly the source's
    share at every limit; `limit` is then rounded down to a multiple of the groups (at least one from
    each), and `size` says what was taken. Any other source is stratified in proportion (`take_stratified`;
    `size` None)."""
    if limit is None or limit >= len(items):
        return items, None
    groups: dict = {}
    for index, item in enumerate(items):
        groups.setdefault(key(item), []).append(index)
    if len(groups) < 2 or len({len(g) for g in groups.values()}) != 1:
        return take_stratified(items, limit, seed, key), None
    each = max(1, limit // len(groups))
    chosen = set()
    for members in groups.values():
        chosen.update(members[i] for i in take(list(range(len(members))), each, seed))
    return [items[i] for i in sorted(chosen)], each * len(groups)


@dataclass(frozen=True)
class Member:
    """One experiment of a suite, and the metric its summary row and scaling figure show."""

    experiment: str
    headline: str


@dataclass(frozen=True)
class Suite:
    """Several experiments run together on each model of a ladder (`alignlab eval NAME`)."""

    name: str
    help: str
    members: tuple[Member, ...]
    description: str = ""


def own_files(source: DataSource) -> tuple[list[Path], list[dict]]:
    """The user's own data files (`--data-file`), checked to exist, with their sha256 for the run identity."""
    from alignlab.checksums import sha256_file

    paths = [Path(f).expanduser() for f in source.files]
    for path in paths:
        if not path.is_file():
            raise AlignlabError(f"data file not found: {path}")
    return paths, [{"path": str(p), "checksum": f"sha256:{sha256_file(p)}"} for p in paths]


def located_files(dataset: str, source: DataSource) -> tuple[list[Path], list[dict], list[str]]:
    """A registered dataset's data files (paths, provenance, warnings), or the user's own files instead."""
    if source.files:
        paths, files = own_files(source)
        return paths, files, []
    from alignlab.data import registry

    located = registry.locate(dataset, registry.data_dir(source.data_dir), download=source.download)
    return (
        list(located),
        [{"path": f.path, "checksum": f.pinned} for f in located.found],
        list(located.warnings),
    )


def add_option_flags(parser, options, settings_class, suppress: bool = False, more_classes=()) -> None:
    """One flag per Option, setting `setting_<field>`; its default is the settings field's (shown in the help).
    `suppress`: an absent flag leaves no value (a pipeline then takes its run folder's stored one)."""
    import argparse

    defaults = {}
    for cls in [*more_classes, settings_class]:
        for f in fields(cls):
            defaults.setdefault(f.name, field_default(f))
    for option in options:
        head, _, rest = option.field.partition(".")
        default = defaults.get(head)
        if rest:  # a field of a nested dataclass ("training.lora_r")
            default = getattr(default, rest, None)
        if option.action == "append":
            parser.add_argument(
                option.flag,
                dest=f"setting_{option.field}",
                action="append",
                type=option.type,
                metavar=option.flag.lstrip("-").upper().replace("-", "_"),
                default=argparse.SUPPRESS if suppress else None,
                help=option.help,
            )
            continue
        if option.type is bool:  # a switch: off unless given
            parser.add_argument(
                option.flag,
                dest=f"setting_{option.field}",
                action="store_true",
                default=argparse.SUPPRESS if suppress else False,
                help=option.help,
            )
            continue
        # a list-valued default reads as the user would type it ("persona,sycophancy"; empty: "all")
        shown = (",".join(map(str, default)) or "all") if isinstance(default, tuple) else default
        parser.add_argument(
            option.flag,
            dest=f"setting_{option.field}",
            metavar=None if option.choices else option.flag.lstrip("-").upper().replace("-", "_"),
            type=option.type,
            choices=option.choices,
            default=argparse.SUPPRESS if suppress else default,
            help=option.help
            if "default:" in option.help
            else f"{option.help} (default: {str(shown).replace('%', '%%')})",
        )


def field_default(f):
    """A dataclass field's default value, made by its default_factory where it has one."""
    from dataclasses import MISSING

    return f.default_factory() if f.default_factory is not MISSING else f.default


def command_group(subparsers, name: str, help: str):
    """The subcommands of a top-level command that several experiments extend (`alignlab generate evals`,
    `alignlab generate ...`): created by the first to ask, shared by the rest."""
    parser = subparsers.choices.get(name)
    if parser is None:
        parser = subparsers.add_parser(name, help=help)
        parser.set_defaults(
            _group=parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND", required=True)
        )
    return parser.get_default("_group")
