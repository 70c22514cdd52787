"""Run an experiment end to end into a run folder: check inputs, load the model, drive the tasks, score.

Everything the CLI's `eval` does is callable from here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from alignlab.data import registry
from alignlab.engine import Engine, ResponseCache
from alignlab.engine.samples import sample_key
from alignlab.errors import AlignlabError
from alignlab.experiments import bbq
from alignlab.models import load_model, require
from alignlab.paths import cache_dir
from alignlab.runfolder import RunFolder

log = logging.getLogger(__name__)


@dataclass
class EvalOptions:
    model: str
    out: Path
    conditions: tuple[str, ...] = bbq.CONDITIONS
    limit: int | None = None
    data_dir: str | None = None
    data_files: list[str] | None = None
    download: bool = False
    prompt_format: str = "raw"
    seed: int = 1234
    batch_size: int = 16
    max_concurrency: int = 8
    use_cache: bool = True
    cache_path: Path | None = None
    progress: bool = True
    cot_temperature: float = 1.0
    cot_max_tokens: int = bbq.COT_MAX_TOKENS
    bootstrap: int = 1000
    executor: str = "local"  # "local" | "ray"
    workers: int = 2
    ray_address: str | None = None
    backend_options: dict = field(default_factory=dict)


@dataclass
class EvalResult:
    out: Path
    metrics: dict
    resumed: bool
    new_samples: int
    plots: list[Path]


def run_bbq(opts: EvalOptions) -> EvalResult:
    # Cheap checks first: a bad condition or missing data should not wait for a model to load.
    if opts.limit is not None and opts.limit < 1:
        raise AlignlabError(f"--limit must be a positive number of items, got {opts.limit}")
    settings = bbq.BBQSettings(
        conditions=opts.conditions,
        prompt_format=opts.prompt_format,  # type: ignore[arg-type]
        seed=opts.seed,
        cot_temperature=opts.cot_temperature,
        cot_max_tokens=opts.cot_max_tokens,
    )
    if opts.prompt_format not in ("raw", "chat"):
        raise AlignlabError(f"unknown prompt format {opts.prompt_format!r}: choose raw or chat")
    data_dir = None if opts.data_files else registry.data_dir(opts.data_dir)
    items, files, warnings = bbq.load_items(
        data_dir, download=opts.download, limit=opts.limit, seed=opts.seed, files=opts.data_files
    )

    backend = _backend(opts)
    require(backend, bbq.request_kinds(settings.conditions))
    if hasattr(backend, "check"):
        backend.check()  # e.g. an unreachable server fails here, before the run folder is touched

    identity = {
        "experiment": "bbq",
        "model": opts.model,
        "model_fingerprint": backend.fingerprint(),
        "conditions": list(settings.conditions),
        "prompt_format": settings.prompt_format,
        "seed": settings.seed,
        "limit": opts.limit,
        "cot_temperature": settings.cot_temperature,
        "cot_max_tokens": settings.cot_max_tokens,
        "data": files,
    }
    folder = RunFolder(opts.out)
    samples_log, resumed = folder.open(
        identity,
        extra={
            "experiment": "bbq",
            "model": {"spec": opts.model, "fingerprint": backend.fingerprint(), **backend.info()},
            "n_items": len(items),
            "categories": sorted({i.category for i in items}),
            "data_warnings": warnings,
            "batch_size": opts.batch_size,
            "max_concurrency": opts.max_concurrency,
        },
    )
    done = samples_log.done()
    tasks = {}
    for condition in settings.conditions:
        for item in items:
            if (item.id, condition) not in done:
                tasks[(item.id, condition)] = bbq.task(item, condition, settings)
    if resumed:
        log.info("resuming %s: %d samples done, %d to go", opts.out, len(done), len(tasks))

    cache = ResponseCache(opts.cache_path or cache_dir() / "responses.sqlite") if opts.use_cache else None
    engine = Engine(
        backend,
        cache=cache,
        batch_size=opts.batch_size,
        max_concurrency=opts.max_concurrency,
        show_progress=opts.progress,
    )
    try:
        new = engine.run_tasks(tasks, on_sample=samples_log.append, description=f"bbq {opts.model}")
    finally:
        samples_log.close()
        if cache is not None:
            cache.close()

    samples = _complete_samples(samples_log, items, settings.conditions)
    metrics = {
        "experiment": "bbq",
        "model": opts.model,
        "conditions": bbq.metrics(samples, settings.conditions, seed=opts.seed, n_resamples=opts.bootstrap),
    }
    plots = _plot(metrics, folder.path)
    folder.finish(metrics)
    return EvalResult(out=folder.path, metrics=metrics, resumed=resumed, new_samples=new, plots=plots)


def _backend(opts: EvalOptions):
    options = {"batch_size": opts.batch_size, "max_concurrency": opts.max_concurrency, **opts.backend_options}
    if opts.executor == "local":
        return load_model(opts.model, **options)
    if opts.executor == "ray":
        from alignlab.engine.ray_backend import RayBackend

        return RayBackend(opts.model, workers=opts.workers, address=opts.ray_address, **options)
    raise AlignlabError(f"unknown executor {opts.executor!r}: choose local or ray")


def _complete_samples(samples_log, items, conditions) -> list[dict]:
    """Every (item, condition) exactly once, or an error: never score a run with holes or repeats."""
    samples = list(samples_log.read())
    seen: set[tuple[str, str]] = set()
    for sample in samples:
        key = sample_key(sample)
        if key in seen:
            raise AlignlabError(f"{samples_log.path}: sample {key} appears twice")
        seen.add(key)
    expected = {(item.id, c) for item in items for c in conditions}
    if seen != expected:
        missing = len(expected - seen)
        extra = len(seen - expected)
        raise AlignlabError(f"{samples_log.path}: {missing} samples missing, {extra} unexpected")
    # File order depends on batching and on resumes; the bootstrap must not.
    return sorted(samples, key=lambda s: (s["condition"], s["category"], s["example_id"]))


def _plot(metrics: dict, folder: Path) -> list[Path]:
    from alignlab.plots import plot_bias_by_category

    path = folder / "bias_by_category.png"
    plot_bias_by_category(metrics["conditions"], path, context="both")
    return [path]
