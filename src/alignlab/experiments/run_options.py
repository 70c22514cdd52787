"""How to run (not what): one set of run options for `alignlab eval` and every pipeline, the flags that set
them, the rule that names a run's folder, and the wiring of a model spec to a backend, cache and engine.

    parser = ...; add_run_flags(parser, out_help="run folder")
    opts = run_options(args, model="smollm2-135m")
    backend = load_backend("smollm2-135m", opts)
    with open_cache(opts) as cache:
        make_engine(backend, cache, opts).run_tasks(...)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from alignlab import option_types
from alignlab.errors import AlignlabError
from alignlab.experiments.base import DataSource

DEFAULT_MODEL = "smollm2-135m"
RUNS = Path("runs")


@dataclass
class RunOptions:
    """How a run runs: where it writes, which data it reads, and how its models are driven."""

    model: str = DEFAULT_MODEL  # an experiment's model; a pipeline's models are named by role instead
    out: Path | None = None  # the run folder (a ladder's: the folder that holds one per model)
    limit: int | None = None
    data: DataSource = field(default_factory=DataSource)
    batch_size: int = 16
    max_concurrency: int = 8
    use_cache: bool = True
    cache_path: Path | None = None
    progress: bool = True
    bootstrap: int = 1000
    executor: str = "local"  # "local" | "ray"
    workers: int = 2
    ray_address: str | None = None
    gpus_per_worker: float = 0
    backend_options: dict = field(default_factory=dict)  # gen_width, gen_dtype
    backend: object | None = None  # an already-built backend (tests, notebooks); else built from `model`
    report: Path | None = None  # then write the HTML report of the run's parent folder here


def run_name(name: str, model: str, label: str | None = None) -> str:
    """A run folder's default name: `<experiment or pipeline>-<label, else the model spec's last part>`; for a
    served model the part is its name, not its URL's last part ("v1"), and declared axes follow it."""
    tail = (label or _model_part(model)).rstrip("/").split("/")[-1]
    slug = "".join(ch if ch.isalnum() or ch in "-._" else "-" for ch in tail)[:60] or "model"
    return f"{name}-{slug}"


def _model_part(model: str) -> str:
    """openai:MODEL@URL@params=7B -> MODEL@params=7B (what tells served models apart); any other spec as is."""
    from alignlab.models import declared_axes

    try:
        bare, _ = declared_axes(model)
    except AlignlabError:
        return model
    if not bare.startswith("openai:") or "@http" not in bare:
        return model
    served = bare.removeprefix("openai:").split("@http", 1)[0]
    return served.replace("/", "-") + model[len(bare) :]


# (flag, argparse keywords) of every run option but --out and --limit, whose help the command words
_OT = option_types
RUN_FLAGS = (
    ("--data-dir", {"help": "datasets laid out as upstream (default: $ALIGNLAB_DATA_DIR)"}),
    ("--download", {"action": "store_true", "help": "download missing data files (checksums pinned)"}),
    (
        "--batch-size",
        {"type": _OT.whole_number(1), "default": 16, "help": "requests per model call (default: 16)"},
    ),
    (
        "--gen-width",
        {
            "type": _OT.whole_number(1),
            "help": "sequences generated at once (continuous batching; "
            "default: the backend's, 64 in transformers, 16 in llama.cpp)",
        },
    ),
    (
        "--gen-dtype",
        {
            "choices": _OT.GEN_DTYPES,
            "help": "dtype transformers generates text in (scores stay in "
            "float32): bfloat16 is faster on CPUs with AMX, but a sample then depends on the batch it "
            "was drawn in (default: float32)",
        },
    ),
    (
        "--max-concurrency",
        {"type": _OT.whole_number(1), "default": 8, "help": "requests in flight (HTTP backends)"},
    ),
    (
        "--scoring",
        {
            "choices": ("auto", "prompt-logprobs", "top-logprobs", "sampling"),
            "default": "auto",
            "help": "how a served model's answers are scored: from prompt logprobs (exact; vLLM, alignlab "
            "serve), from the chat endpoint's top-20 logprobs (OpenAI's chat models), or from sampled "
            "answers (no logprobs: Anthropic); auto takes the first the server gives (default: auto)",
        },
    ),
    (
        "--answer-samples",
        {
            "type": _OT.whole_number(1, 1000),
            "default": 20,
            "help": "answers sampled per question where --scoring is sampling: the requests each score "
            "costs, and the sampling error carried into the intervals (default: 20)",
        },
    ),
    (
        "--executor",
        {
            "choices": ("local", "ray"),
            "default": "local",
            "help": "run the model in this process, or in Ray workers (pip install 'alignlab[ray]')",
        },
    ),
    (
        "--workers",
        {"type": _OT.whole_number(1), "help": "Ray workers, each with its own model copy (default: 2)"},
    ),
    ("--ray-address", {"help": "an existing Ray cluster (default: start a local one)"}),
    (
        "--gpus-per-worker",
        {
            "type": _OT.number_in(0, 1024, "a number of GPUs"),
            "help": "GPUs each "
            "Ray worker reserves (e.g. 1: one model copy per GPU; default: none, CPU workers)",
        },
    ),
    (
        "--bootstrap",
        {"type": _OT.whole_number(1), "default": 1000, "help": "bootstrap resamples for the 95%% intervals"},
    ),
    (
        "--cache",
        {
            "type": _OT.output_file,
            "metavar": "FILE",
            "help": "response cache (SQLite; default: ~/.cache/alignlab/responses.sqlite)",
        },
    ),
    (
        "--no-cache",
        {
            "action": "store_true",
            "help": "do not read or write the shared response cache (the run keeps its own answers until it "
            "is whole, so a resume asks nothing twice)",
        },
    ),
    ("--no-progress", {"action": "store_true", "help": "no progress bars"}),
    (
        "--report",
        {
            "type": _OT.output_file,
            "metavar": "FILE",
            "help": "then write the HTML report of every run "
            "beside this one (the run folder's parent) to FILE",
        },
    ),
)


def add_run_flags(parser, *, out_help: str, limit_help: str | None = None) -> None:
    """The flags of RunOptions (all but --model: experiments take one, pipelines one per role)."""
    if limit_help is not None:
        parser.add_argument("--limit", type=_OT.whole_number(1), default=None, help=limit_help)
    parser.add_argument("--out", type=_OT.output_folder, default=None, help=out_help)
    for flag, keywords in RUN_FLAGS:
        parser.add_argument(flag, **keywords)


def run_options(args, **overrides) -> RunOptions:
    """RunOptions from the flags `add_run_flags` added (and --data-file, --limit where a command has them)."""
    ray_only = {
        "--workers": args.workers,
        "--ray-address": args.ray_address,
        "--gpus-per-worker": args.gpus_per_worker,
    }
    given = [flag for flag, value in ray_only.items() if value is not None]
    if given and args.executor != "ray":
        raise AlignlabError(f"{', '.join(given)}: for --executor ray only (this run is local)")
    backend_options = {}
    if args.gen_dtype is not None:
        backend_options["gen_dtype"] = args.gen_dtype
    if args.gen_width is not None:
        backend_options["gen_width"] = args.gen_width
    if args.scoring != "auto":
        backend_options["scoring"] = args.scoring
    if args.answer_samples != 20:
        backend_options["answer_samples"] = args.answer_samples
    values = dict(
        out=args.out,
        limit=getattr(args, "limit", None),
        data=DataSource(
            data_dir=args.data_dir,
            files=tuple(getattr(args, "data_file", None) or ()),
            download=args.download,
        ),
        batch_size=args.batch_size,
        max_concurrency=args.max_concurrency,
        use_cache=not args.no_cache,
        cache_path=args.cache,
        progress=not args.no_progress,
        bootstrap=args.bootstrap,
        executor=args.executor,
        workers=args.workers or 2,
        ray_address=args.ray_address,
        gpus_per_worker=args.gpus_per_worker or 0,
        backend_options=backend_options,
        report=args.report,
    )
    values.update(overrides)
    return RunOptions(**values)


def load_backend(spec: str, opts: RunOptions):
    """The backend a spec names, run as `opts` says (in this process, or in Ray workers)."""
    from alignlab.models import load_model

    options = {"batch_size": opts.batch_size, "max_concurrency": opts.max_concurrency, **opts.backend_options}
    _check_scoring(spec, options.get("scoring", "auto"))
    _check_generation_options(spec, options)
    if opts.executor == "local":
        return load_model(spec, **options)
    if opts.executor == "ray":
        from alignlab.engine.ray_backend import RayBackend

        return RayBackend(
            spec,
            workers=opts.workers,
            address=opts.ray_address,
            gpus_per_worker=opts.gpus_per_worker,
            **options,
        )
    raise AlignlabError(f"unknown executor {opts.executor!r}: choose local or ray")


def _check_scoring(spec: str, scoring: str) -> None:
    """A local model scores from its own logprobs; another path is for served models only."""
    from alignlab.models import parse_spec

    if scoring not in ("auto", "prompt-logprobs") and parse_spec(spec).kind not in ("openai", "inspect"):
        raise AlignlabError(
            f"--scoring {scoring} is for served models (openai:, inspect:); {shown(spec)} scores from its "
            "own logprobs"
        )


def _check_generation_options(spec: str, options: dict) -> None:
    """--gen-width and --gen-dtype set how a local model generates: a served model has its own batching, and
    llama.cpp's weights keep the type of their file."""
    from alignlab.models import parse_spec

    if "gen_width" not in options and "gen_dtype" not in options:
        return
    kind = parse_spec(spec).kind
    if kind in ("openai", "inspect"):
        given = [f"--{name.replace('_', '-')}" for name in ("gen_width", "gen_dtype") if name in options]
        if given:
            raise AlignlabError(f"{', '.join(given)}: for local models; {shown(spec)} is served")
    elif kind == "llamacpp" and "gen_dtype" in options:
        raise AlignlabError(
            f"--gen-dtype: for transformers models; {shown(spec)} computes in its file's types"
        )


def shown(spec: str) -> str:
    from alignlab.models import shown_spec

    return shown_spec(spec)


@contextlib.contextmanager
def open_cache(opts: RunOptions, folder: Path | None = None) -> Iterator:
    """The response cache the options name, closed afterwards; with --no-cache, the run `folder`'s own
    journal of answers (runfolder.JOURNAL), or None without a folder."""
    path = cache_path(opts, folder)
    cache = None if path is None else open_response_cache(path, journal=not opts.use_cache)
    try:
        yield cache
    finally:
        if cache is not None:
            cache.close()


def open_response_cache(path: Path, journal: bool):
    """The cache at `path`. A run's own journal that cannot be opened (a full disk) only costs a resume some
    repeated work: one warning, and the run goes on without it."""
    from alignlab.engine import ResponseCache

    try:
        return ResponseCache(path)
    except AlignlabError as exc:
        if not journal:
            raise
        import logging

        logging.getLogger(__name__).warning(
            "%s: going on without it (a resume may ask some requests again)", exc
        )
        return None


def cache_path(opts: RunOptions, folder: Path | None = None) -> Path | None:
    from alignlab.paths import cache_dir
    from alignlab.runfolder import JOURNAL

    if opts.use_cache:
        return Path(opts.cache_path or cache_dir() / "responses.sqlite")
    return None if folder is None else Path(folder) / JOURNAL


def make_engine(backend, cache, opts: RunOptions):
    from alignlab.engine import Engine

    return Engine(
        backend,
        cache=cache,
        batch_size=opts.batch_size,
        max_concurrency=opts.max_concurrency,
        show_progress=opts.progress,
    )
