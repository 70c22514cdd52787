"""The pipeline protocol: runs with phases and several models that produce data rather than scores (red
teaming, Constitutional AI, writing evaluations), on the same footing as experiments.

A pipeline is one module in a paper's package (or any module named in ALIGNLAB_PLUGINS) that subclasses
`Pipeline` and calls `register()`:

    @dataclass(frozen=True)
    class EchoSettings(PipelineSettings):
        n: int = 4

    class Echo(Pipeline):
        name, help = "echo", "a writer model writes, a judge model scores"
        roles = (Role("writer", "who writes"), Role("judge", "who scores", default=None, fallback="writer"))
        settings_class = EchoSettings
        options = (Option("--n", "n", whole_number(1), "texts to write"),)
        prompts = {"WRITE": "Write about {topic}."}          # hashed into the run identity

        def run(self, run, stage):                           # run: a PipelineRun over the run folder
            run.run_phase(run.models.writer, {...tasks...}, "write")   # resumable phases
            ...
            return metrics                                  # {condition: {...}}, written to metrics.json

    register(Echo())

What the runner (`run_pipeline`) does for every pipeline alike: explicit options over the settings and
models stored in the run folder over the defaults; cheap checks; every model loaded before the folder is
touched (a bad spec fails first); one run identity (every role's spec and fingerprint, prompt hashes,
settings, data checksums), so a folder holding another run is refused with the keys that differ; the
sample log and response cache; metrics.json; the report. The CLI gets `alignlab NAME` (or the `command`
path), with one flag per role and option, the run flags, and one subcommand per stage when there are
stages.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, is_dataclass, replace
from pathlib import Path

from alignlab import models as model_specs
from alignlab import option_types
from alignlab.errors import AlignlabError
from alignlab.experiments.base import DataSource, Option, field_default
from alignlab.experiments.identity import jsonable, run_identity
from alignlab.experiments.phased import PhasedRun
from alignlab.experiments.run_options import DEFAULT_MODEL, RUNS, RunOptions, run_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineSettings:
    """What every pipeline's run is parameterised by; pipelines subclass it to add their own fields."""

    prompt_format: str = "raw"
    seed: int = 1234


@dataclass(frozen=True)
class Role:
    """A model a pipeline uses, set by `--NAME SPEC`."""

    name: str  # "target", "judge" ...; the flag is --name (underscores as dashes)
    help: str
    default: str | None = DEFAULT_MODEL  # None: the `fallback` role's model (or absent, if not required)
    fallback: str | None = None
    required: bool = True  # False: the role may go unset (e.g. a fine-tuned target only some runs have)
    ladder: bool = False  # "A,B,C" runs once per model, one folder each

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


class Models(dict):
    """{role: spec} with attribute access (`run.models.judge`); an unset optional role is None."""

    def __getattr__(self, role: str):
        try:
            return self[role]
        except KeyError:
            raise AttributeError(role) from None


# the flags of PipelineSettings' own fields, which every pipeline whose settings have them takes
COMMON_OPTIONS = (
    Option(
        "--format",
        "prompt_format",
        str,
        "raw Human/Assistant text or the chat template",
        choices=("raw", "chat"),
    ),
    Option("--seed", "seed", option_types.seed, "seed of every draw and sample"),
)


class Pipeline:
    kind = "pipeline"
    name: str = ""
    help: str = ""  # one line, listed by `alignlab --help`
    description: str = ""
    version: str = "1"  # bump when what a run computes changes (prompts are hashed on their own)
    command: tuple[str, ...] = ()  # where the CLI puts it (default: (name,)); ("generate", "evals")
    roles: tuple[Role, ...] = (Role("model", "the model"),)
    settings_class: type = PipelineSettings
    options: tuple[Option, ...] = ()
    prompts: Mapping[str, object] = {}
    stages: tuple[str, ...] = ()  # stages a user may run alone (`alignlab cai revise`), in order
    stage_help: Mapping[str, str] = {}
    files: tuple[str, ...] = ("metrics.json", "samples.jsonl", "config.json")  # named on the console
    keep_metrics = False  # stages each rewrite metrics.json: a stage started again keeps the finished one

    # --- what each pipeline implements ------------------------------------------------------------------
    def run(self, run: PipelineRun, stage: str | None) -> dict:
        """Do the work (`stage`: the one asked for, or None for all), resuming from what the run's sample log
        holds; return the metrics ({condition: {...}}) that metrics.json and the index read."""
        raise NotImplementedError

    # --- what it may override ---------------------------------------------------------------------------
    def check(self, settings, models: Models) -> None:
        """Cheap checks of settings and models, before any model loads or the folder is touched."""

    def data(self, settings, source: DataSource) -> list[dict]:
        """The data files the run reads ({"path", "checksum"}), for its identity."""
        return []

    def identity_extra(self, settings, source: DataSource) -> dict:
        """More for the identity than settings and prompts (e.g. a constitution's digest)."""
        return {}

    def label(self, settings, models: Models) -> str | None:
        """What names the default run folder after the pipeline's name (None: the first role's model)."""
        return None

    def show(self, run: PipelineRun, result: dict, console) -> None:
        """Print a run's (or a stage's) result."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Flags of this pipeline's own that are not settings (they reach `run` through `run.args`)."""

    def add_commands(self, subparsers) -> None:
        """Top-level commands of this pipeline's own."""

    def handle(self, args) -> int | None:
        """Answer the command without a run (an exit code), e.g. a flag that analyses files instead; None:
        run the pipeline."""
        return None

    def report_section(self):
        """The report's Section for this pipeline's runs (None: the generic one)."""
        return None

    # --- derived ----------------------------------------------------------------------------------------
    def settings(self, values: Mapping) -> object:
        """Settings from values by field name (a nested dataclass's fields as "training.lora_r"); unknown
        names are an error (a run folder's config.json from another version)."""
        return settings_from(self.settings_class, values)

    def models(self, given: Mapping[str, str | None]) -> Models:
        """{role: spec} from the given specs, each unset role taking its default or its fallback's."""
        resolved = Models()
        for role in self.roles:
            spec = given.get(role.name) or role.default
            if spec is None and role.fallback is not None:
                spec = resolved.get(role.fallback)
            if spec is None and role.required:
                raise AlignlabError(f"{self.name}: {role.flag} names no model")
            if spec is not None:
                try:
                    model_specs.check_spec(spec)  # form, key, file: before any role's model loads
                except AlignlabError as exc:
                    raise AlignlabError(f"{role.flag}: {exc}") from None
            resolved[role.name] = spec
        return resolved


def settings_from(cls: type, values: Mapping):
    """A (frozen) settings dataclass from flat values; "a.b" (or a mapping under "a") sets field b of the
    dataclass held in field a."""
    names = {f.name: f for f in fields(cls)}
    top: dict = {}
    nested: dict[str, dict] = {}
    for key, value in values.items():
        head, dot, rest = key.partition(".")
        if head not in names:
            raise AlignlabError(f"unknown setting {key!r} for {cls.__name__}")
        inner = _dataclass_default(names[head])
        if dot and inner is not None:
            nested.setdefault(head, {})[rest] = value
        elif inner is not None and isinstance(value, Mapping):
            nested.setdefault(head, {}).update(value)
        elif dot:
            raise AlignlabError(f"unknown setting {key!r} for {cls.__name__}")
        else:
            top[key] = tuple(value) if isinstance(value, list) else value
    for head, inner_values in nested.items():
        default = _dataclass_default(names[head])
        top[head] = settings_from(type(default), {**asdict(default), **inner_values})
    return cls(**top)


def _dataclass_default(f):
    """The default of a field that holds a dataclass (None for any other field)."""
    value = field_default(f)
    return value if is_dataclass(value) and not isinstance(value, type) else None


class PipelineRun(PhasedRun):
    """One pipeline run: its settings, models (by role), run options and folder, with the phases machinery
    (backends loaded once per spec, the sample log, the response cache, `run_phase`, `got`)."""

    def __init__(self, pipeline: Pipeline, settings, models: Models, opts: RunOptions, args=None) -> None:
        super().__init__(opts)
        self.pipeline, self.settings, self.models, self.args = pipeline, settings, models, args
        self.path = Path(opts.out).expanduser()
        self.folder = None
        self.metrics: dict | None = None  # what finish() wrote to metrics.json
        self._identity: dict | None = None

    @property
    def data_dir(self) -> str | None:
        return self.runtime.data.data_dir

    def identity(self) -> dict:
        """Every role's model loaded (a bad spec fails here, before the folder exists) and fingerprinted;
        worked out once."""
        if self._identity is None:
            self._identity = self._work_out_identity()
        return self._identity

    def _work_out_identity(self) -> dict:
        p, s, opts = self.pipeline, self.settings, self.runtime
        first, *others = p.roles
        spec = self.models[first.name]
        extra = p.identity_extra(s, opts.data)  # before the data files are hashed: it may refuse the settings
        return run_identity(
            name=p.name,
            version=p.version,
            prompts=p.prompts,
            model=(spec, self.fingerprint(spec)),
            models={
                role.name: (self.models[role.name], self.fingerprint(self.models[role.name]))
                for role in others
            },
            settings=s,
            data=p.data(s, opts.data),
            **extra,
        )

    def fingerprint(self, spec: str | None) -> str | None:
        return None if spec is None else self.fingerprint_of(spec)

    def open(self) -> bool:
        """Open (or resume) the run folder under its identity; returns whether it resumed."""
        from alignlab.runfolder import RunFolder

        identity = self.identity()
        first = self.pipeline.roles[0].name
        backend = self.backend(self.models[first])
        self.folder = RunFolder(self.path)
        resumed = self.open_log(
            self.folder,
            identity,
            {
                "experiment": self.pipeline.name,
                "model": {
                    "spec": self.models[first],
                    "fingerprint": identity["model_fingerprint"],
                    **backend.info(),
                },
                "models": dict(self.models),
                "settings": jsonable(asdict(self.settings)),  # nested dataclasses as objects, for stored_run
            },
            keep_metrics=self.pipeline.keep_metrics,
        )
        return resumed

    def finish(self, metrics: dict, **more) -> None:
        """metrics.json: {condition: {...}} as "conditions", and any more top-level keys."""
        first = self.pipeline.roles[0].name
        self.metrics = {
            "experiment": self.pipeline.name,
            "model": self.models[first],
            "conditions": metrics,
            **more,
        }
        self.folder.finish(self.metrics)


def stored_run(pipeline: Pipeline, out: Path | None) -> tuple[dict, dict]:
    """(settings, models) kept in a run folder's config.json, so a later stage or a resume needs no flags;
    a folder holding another kind of run is an error."""
    from alignlab.runfolder import CONFIG, read_config, refuse_another_kind

    if out is None or not (Path(out) / CONFIG).is_file():
        return {}, {}
    config = read_config(Path(out) / CONFIG)
    refuse_another_kind(Path(out), config.get("experiment"), pipeline.name)
    settings = config.get("settings") if isinstance(config.get("settings"), dict) else {}
    models = config.get("models") if isinstance(config.get("models"), dict) else {}
    return settings, models


@dataclass
class PipelineResult:
    pipeline: str
    models: Models
    out: Path
    result: dict
    resumed: bool
    run: PipelineRun


def run_pipeline(
    pipeline: Pipeline,
    values: Mapping | None = None,
    models: Mapping[str, str | None] | None = None,
    opts: RunOptions | None = None,
    stage: str | None = None,
    args=None,
) -> PipelineResult:
    """Run `pipeline` (one `stage`, or all) with explicit setting `values` and role `models` over what the
    run folder stores over the defaults. Library callers (and other pipelines) call this directly."""
    from alignlab.runlog import RunLog

    opts = opts or RunOptions()
    stored_settings, stored_models = stored_run(pipeline, opts.out)
    given_models = {**stored_models, **{k: v for k, v in (models or {}).items() if v is not None}}
    resolved = pipeline.models(given_models)
    try:
        settings = pipeline.settings({**stored_settings, **(values or {})})
    except AlignlabError as exc:
        if not stored_settings:
            raise
        raise AlignlabError(
            f"{opts.out}/config.json: {exc} (a run of another alignlab version?); choose another --out"
        ) from None
    pipeline.check(settings, resolved)
    if stage is not None and stage not in pipeline.stages:
        raise AlignlabError(
            f"unknown stage {stage!r} of {pipeline.name}: choose from {', '.join(pipeline.stages)}"
        )
    first = pipeline.roles[0].name
    out = opts.out or RUNS / run_name(pipeline.name, resolved[first], pipeline.label(settings, resolved))
    opts = replace(opts, out=out)
    new_folder = not Path(out).expanduser().exists()
    with RunLog() as run_log:
        run = PipelineRun(pipeline, settings, resolved, opts, args)
        opened = False  # a folder this run could not open (another run's) is never touched
        try:
            resumed = run.open()
            opened = not resumed
            run_log.attach(run.path)
            if resumed:
                log.info("resuming %s: %d samples done", run.path, len(run.done))
            result = pipeline.run(run, stage)
        except AlignlabError:
            run.close()
            if opened:
                # failed before it made anything (a stage whose input is missing): a folder holding only its
                # config would be counted as an unfinished run, and refuse a corrected command
                from alignlab.runfolder import RunFolder

                RunFolder(run.path).discard_if_untouched(remove_dir=new_folder)
            raise
        finally:
            run.close()
    return PipelineResult(pipeline.name, resolved, run.path, result, resumed, run)


def ladder(pipeline: Pipeline, given: Mapping[str, str | None]) -> list[dict]:
    """The role values of each run: a ladder role's "A,B,C" gives one run a model, the roles that fall back
    to it taking its first model (the same attacker and judge for every target)."""
    runs = [dict(given)]
    for role in pipeline.roles:
        value = given.get(role.name)
        if not role.ladder or not value or "," not in value:
            continue
        specs = [s.strip() for s in value.split(",") if s.strip()]
        if not specs:
            raise AlignlabError(f"{role.flag} names no model")
        if len(set(specs)) != len(specs):
            raise AlignlabError(f"{role.flag} lists a model twice: {', '.join(specs)}")
        fixed = {
            r.name: specs[0] for r in pipeline.roles if r.fallback == role.name and not given.get(r.name)
        }
        runs = [{**run, **fixed, role.name: spec} for run in runs for spec in specs]
    return runs


# --- the command line ------------------------------------------------------------------------------------


def add_pipeline_command(subparsers, pipeline: Pipeline) -> None:
    """`alignlab NAME [STAGE]` with the pipeline's role flags, options and the run flags."""
    from alignlab.experiments.base import command_group

    path = pipeline.command or (pipeline.name,)
    group = subparsers
    for part in path[:-1]:
        group = command_group(group, part, f"{part} commands")
    description = pipeline.description or pipeline.help
    if not pipeline.stages:
        parser = group.add_parser(path[-1], help=pipeline.help, description=description)
        _add_flags(parser, pipeline)
        parser.set_defaults(func=_run_command, pipeline_obj=pipeline, pipeline_stage=None)
        return
    parser = group.add_parser(path[-1], help=pipeline.help, description=description)
    stages = parser.add_subparsers(dest=f"{pipeline.name}_stage", metavar="STAGE", required=True)
    for stage in (*pipeline.stages, "all"):
        text = pipeline.stage_help.get(stage, "every stage in order" if stage == "all" else stage)
        p = stages.add_parser(stage, help=text, description=f"{text}. {description}")
        _add_flags(p, pipeline)
        p.set_defaults(
            func=_run_command, pipeline_obj=pipeline, pipeline_stage=None if stage == "all" else stage
        )


def _add_flags(parser, pipeline: Pipeline) -> None:
    """Roles and settings default to SUPPRESS: an absent flag takes the run folder's stored value, then the
    default (shown in the help)."""
    from alignlab.experiments.base import add_option_flags
    from alignlab.experiments.run_options import add_run_flags
    from alignlab.models import SPEC_HELP

    for role in pipeline.roles:
        if role.default is not None:
            shown = f"default: {role.default}"
        elif role.fallback is not None:
            shown = f"default: the {role.fallback} model"
        else:
            shown = "default: none"
        ladder = (
            "; several, comma-separated, make a ladder (one run folder each in --out)" if role.ladder else ""
        )
        parser.add_argument(
            role.flag,
            dest=f"role_{role.name}",
            default=argparse.SUPPRESS,
            metavar="SPEC",
            help=f"{role.help} ({shown}){ladder}. Model specs: {SPEC_HELP}",
        )
    own = {f.name for f in fields(pipeline.settings_class)}
    common = tuple(
        o for o in COMMON_OPTIONS if o.field in own and o.flag not in {x.flag for x in pipeline.options}
    )
    add_option_flags(parser, pipeline.options + common, pipeline.settings_class, suppress=True)
    pipeline.add_arguments(parser)
    add_run_flags(
        parser,
        out_help=f"run folder (default: runs/{pipeline.name}-<model>); with a ladder, the folder that holds one "
        "run folder per model (default: runs)",
    )


def reach_servers(pipeline: Pipeline, resolved: list) -> None:
    """Every server the runs (their {role: spec}, checked) will call answers, before any model loads or any
    work starts (a dead judge URL would otherwise be found after the generation phase)."""
    flags = {role.name: role.flag for role in pipeline.roles}
    reached: set[str] = set()
    for models in resolved:
        for role, spec in models.items():
            if spec is None or spec in reached:
                continue
            reached.add(spec)
            try:
                model_specs.reach(spec)
            except AlignlabError as exc:
                raise AlignlabError(f"{flags.get(role, role)}: {exc}") from None


def _run_command(args) -> int:
    from rich.console import Console

    from alignlab.experiments.run_options import run_options

    console = Console()
    pipeline: Pipeline = args.pipeline_obj
    handled = pipeline.handle(args)
    if handled is not None:
        return handled
    values = {k[len("setting_") :]: v for k, v in vars(args).items() if k.startswith("setting_")}
    given = {k[len("role_") :]: v for k, v in vars(args).items() if k.startswith("role_")}
    runs = ladder(pipeline, given)
    # every run's specs checked, and their servers reached, before the first starts
    reach_servers(pipeline, [pipeline.models(models) for models in runs])
    results = []
    for models in runs:
        opts = run_options(args)
        if len(runs) > 1:
            first = pipeline.roles[0].name
            resolved = pipeline.models(models)
            label = pipeline.label(pipeline.settings(values), resolved)
            opts = replace(opts, out=(args.out or RUNS) / run_name(pipeline.name, resolved[first], label))
        if opts.out is not None:
            from alignlab.runfolder import refuse_misplaced

            refuse_misplaced(opts.out)
        result = run_pipeline(pipeline, values, models, opts, args.pipeline_stage, args)
        pipeline.show(result.run, result.result, console)
        console.print(f"run folder: {result.out}  ({', '.join(pipeline.files)})")
        results.append(result)
    if args.report is not None:
        from alignlab.report import write_report

        root = results[0].out.parent
        runset = write_report(root, args.report)
        console.print(
            f"report of {len(runset.runs)} run{'s' * (len(runset.runs) != 1)} in {root}: {args.report}"
        )
    return 0
