"""The experiment protocol: what one experiment declares, so that one runner, one CLI and one report serve all.

An experiment is one module under `alignlab/experiments/` (or any module named in ALIGNLAB_PLUGINS, or an
`alignlab.experiments` entry point) that subclasses `Experiment` and calls `register()`:

    class Toy(Experiment):
        name, help, conditions = "toy", "a toy", ("plain", "polite")
        prompts = {"QUESTION": "Is {x} even?"}             # hashed into the run identity

        def load(self, source, limit, seed):                # items and their data provenance
            return Items([Item(str(x), x) for x in range(10)])

        def task(self, item, condition, settings):          # a generator: yield requests, return a sample
            scored = yield ScoreRequest(self.prompts["QUESTION"].format(x=item.value), (" Yes", " No"))
            return {"id": item.id, "condition": condition, "yes": scored.logprobs[0] > scored.logprobs[1]}

        def metrics(self, samples, settings, seed, n_resamples):   # {condition: {metric: estimate}}
            ...

    register(Toy())

The runner (alignlab.evaluate) does the rest for every experiment alike: checks before the model loads, the
run folder's identity and resume, the engine, exactly-once samples, metrics, figures, model ladders and
the report. Settings are a dataclass (`Settings` or a subclass); each extra field the CLI should set is an
`Option`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alignlab.engine.runner import Task
from alignlab.errors import AlignlabError

if TYPE_CHECKING:
    from alignlab.report.sections import Section

PROMPT_FORMATS = ("raw", "chat")


@dataclass(frozen=True)
class Settings:
    """What every experiment's run is parameterised by; experiments subclass it to add their own fields."""

    conditions: tuple[str, ...] = ()
    prompt_format: str = "raw"
    seed: int = 1234


@dataclass(frozen=True)
class Option:
    """A command-line option that sets one field of the experiment's settings (its default is the field's)."""

    flag: str  # "--cot-max-tokens"
    field: str  # "cot_max_tokens"
    type: Any = str
    help: str = ""
    choices: tuple | None = None


@dataclass
class Item:
    """A minimal item: experiments may use any object with an `id`."""

    id: str
    value: Any = None


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
    figure_names: tuple[str, ...] = ()  # files figures() writes, listed after a run

    # --- what each experiment implements -----------------------------------------------------------
    def load(self, source: DataSource, limit: int | None, seed: int) -> Items:
        raise NotImplementedError

    def task(self, item, condition: str, settings: Settings) -> Task:
        raise NotImplementedError

    def metrics(self, samples: list[dict], settings: Settings, seed: int, n_resamples: int) -> dict:
        """{condition: metrics} over the finished samples (each (item, condition) exactly once)."""
        raise NotImplementedError

    # --- what it may override -----------------------------------------------------------------------
    def request_kinds(self, settings: Settings) -> set[str]:
        return {"score"}

    def item_id(self, item) -> str:
        return str(item.id)

    def sample_order(self, sample: dict):
        """Samples are scored in this order (file order depends on batching and resumes)."""
        return (sample["condition"], str(sample["id"]))

    def figures(self, metrics: dict, folder: Path) -> list[Path]:
        return []

    def report_section(self) -> Section | None:
        """The report's section for this experiment's runs (None: the generic one)."""
        return None

    # --- derived --------------------------------------------------------------------------------------
    def settings(self, **values) -> Settings:
        """Settings from keyword values, checked: unknown conditions and formats are user errors."""
        conditions = tuple(values.pop("conditions", None) or self.default_conditions or self.conditions)
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
        return {
            name: hashlib.sha256(text.encode()).hexdigest()[:12]
            for name, text in sorted(self.prompts.items())
        }
