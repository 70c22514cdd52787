"""Run any registered experiment end to end into a run folder, or a ladder of models into one folder each.

check the settings and load the items (before any model loads) ─► load the model, check it can answer the
experiment's request kinds ─► open the run folder (its identity: experiment and version, prompt-template
hashes, model fingerprint, settings, data checksums; a different run there is refused, the same one resumed)
─► drive the tasks not yet done through the engine, appending each sample as it finishes ─► check every
(item, condition) is there exactly once ─► metrics, figures, metrics.json last.

Everything the CLI's `eval` does is callable from here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from alignlab import models as model_specs
from alignlab.engine.fit_check import check_fit
from alignlab.engine.samples import sample_key
from alignlab.engine.sampling_error import sampling_replays, scoring_summary, widen
from alignlab.errors import AlignlabError, UnsupportedRequest
from alignlab.experiments import DataSource, Experiment, Items, Suite
from alignlab.experiments.base import Settings
from alignlab.experiments.identity import run_identity
from alignlab.experiments.run_options import (
    RUNS,
    RunOptions,
    load_backend,
    make_engine,
    open_cache,
    run_name,
    shown,
)
from alignlab.models import require
from alignlab.runfolder import RunFolder, refuse_misplaced
from alignlab.runlog import RunLog

__all__ = [
    "EvalResult",
    "RunOptions",
    "SuiteResult",
    "load_checked",
    "run",
    "run_ladder",
    "run_name",
    "run_suite",
]

log = logging.getLogger(__name__)


@dataclass
class EvalResult:
    experiment: str
    model: str
    out: Path
    metrics: dict
    resumed: bool
    new_samples: int
    plots: list[Path]
    parameters: int | None = None
    axes: dict = field(default_factory=dict)  # what the model spec declared (@NAME=VALUE), params aside

    def axis_value(self, axis: str) -> float | None:
        """This run's place on a scaling figure's x axis: its parameter count, or a declared axis."""
        return self.parameters if axis == "parameters" else self.axes.get(axis)


def load_checked(experiment: Experiment, settings: Settings, opts: RunOptions) -> Items:
    """The experiment's items, after the cheap checks: a bad setting or missing data should not wait for a
    model to load."""
    if opts.limit is not None and opts.limit < 1:
        raise AlignlabError(f"--limit must be a positive number of items, got {opts.limit}")
    if opts.data.files and not experiment.accepts_data_files:
        raise AlignlabError(f"experiment {experiment.name!r} does not read --data-file")
    loaded = experiment.items(opts.data, opts.limit, settings)
    if not loaded.items:
        raise AlignlabError(
            f"experiment {experiment.name!r}: no items to run in {_data_described(opts.data)}"
        )
    ids = [experiment.item_id(item) for item in loaded.items]
    if len(set(ids)) != len(ids):
        raise AlignlabError(f"experiment {experiment.name!r}: item ids are not unique")
    return loaded


def _first_requests(experiment: Experiment, asked: list, settings: Settings):
    """Each task's first request (or list of them), from a task made for the look only: the run makes its
    own."""
    for item, item_id, condition in asked:
        task = experiment.task(item, condition, settings)
        try:
            yield (item_id, condition), next(task)
        except StopIteration:
            continue
        finally:
            task.close()


def _data_described(data: DataSource) -> str:
    """Where the items were looked for, for an error: the user's files, or the data directory."""
    if data.files:
        return ", ".join(map(str, data.files))
    return "the data directory" if data.data_dir is None else str(data.data_dir)


def run(
    experiment: Experiment, settings: Settings, opts: RunOptions, loaded: Items | None = None
) -> EvalResult:
    """`loaded`: the items from `load_checked`, when the caller has them already (a suite, for each model)."""
    with RunLog() as run_log:  # the run folder's run.log: retries, resumes, warnings
        return _run(experiment, settings, opts, loaded, run_log)


def _run(
    experiment: Experiment, settings: Settings, opts: RunOptions, loaded: Items | None, run_log: RunLog
) -> EvalResult:
    if opts.out is None:
        opts = replace(opts, out=RUNS / run_name(experiment.name, opts.model))
    refuse_misplaced(opts.out)  # before any model loads
    if loaded is None:
        loaded = load_checked(experiment, settings, opts)
    ids = [experiment.item_id(item) for item in loaded.items]

    backend = opts.backend or load_backend(opts.model, opts)
    # e.g. an unreachable server fails here, before the run folder is touched; a server also finds out here
    # what it can do (prompt logprobs or not), which `require` then reads
    backend.check()
    kinds = experiment.request_kinds(settings)
    require(backend, kinds)
    refusal = getattr(backend, "raw_scoring_refusal", lambda: None)()
    if refusal and "score" in kinds and settings.prompt_format == "raw":
        raise UnsupportedRequest(refusal)

    experiment.preflight(backend, settings)
    asked = [
        (item, item_id, condition)
        for condition in settings.conditions
        for item, item_id in zip(loaded.items, ids, strict=True)
        if experiment.applies(item, condition, settings)
    ]
    check_fit(backend, _first_requests(experiment, asked, settings))

    fingerprint = backend.fingerprint()
    info = backend.info()
    scoring = info.get("scoring") if isinstance(info.get("scoring"), dict) else None
    sampled = bool(scoring and scoring.get("path") == "sampling")
    identity = run_identity(
        name=experiment.name,
        version=experiment.version,
        prompts=experiment.prompts,
        model=(opts.model, fingerprint),
        settings=settings,
        data=loaded.files,
        limit=opts.limit,
    )
    folder = RunFolder(opts.out)
    new_folder = not folder.path.exists()
    samples_log, resumed = folder.open(
        identity,
        extra={
            "experiment": experiment.name,
            "model": {"spec": opts.model, "fingerprint": fingerprint, **info},
            "n_items": len(loaded.items),
            **loaded.facts,
            "data_warnings": loaded.warnings,
            "batch_size": opts.batch_size,
            "max_concurrency": opts.max_concurrency,
        },
    )
    run_log.attach(folder.path)
    done = samples_log.done()
    # every task, done or not: the engine batches by position in this list, so a resume batches as a whole
    # run would, and runs again only the done tasks that share a block with work still to do
    tasks = {
        (item_id, condition): experiment.task(item, condition, settings) for item, item_id, condition in asked
    }
    if resumed:
        log.info("resuming %s: %d samples done, %d to go", opts.out, len(done), len(set(tasks) - done))

    try:
        with open_cache(opts, folder.path) as cache:
            engine = make_engine(backend, cache, opts)
            engine.record_replies = sampled  # to replay the tasks with redrawn counts
            new = engine.run_tasks(
                tasks, on_sample=samples_log.append, description=f"{experiment.name} {opts.model}", done=done
            )
    except AlignlabError:
        samples_log.close()
        if not resumed and not done and not any(True for _ in samples_log.read()):
            # failed before its first sample (a prompt longer than the context): a folder holding nothing
            # but a config would refuse the corrected command as "a different run"
            folder.discard(remove_dir=new_folder)
        raise
    finally:
        samples_log.close()
        if opts.backend is None and opts.executor == "ray":
            backend.close()  # its workers hold a CPU each in the cluster until killed

    samples = _complete_samples(samples_log, {(item_id, c) for _, item_id, c in asked})
    samples.sort(key=experiment.sample_order)  # file order depends on batching and resumes; scores must not
    metrics = {
        "experiment": experiment.name,
        "model": opts.model,
        "conditions": experiment.metrics(samples, settings, seed=settings.seed, n_resamples=opts.bootstrap),
        # not part of the run's identity (a finished run's intervals can be redrawn): said here instead
        "intervals": {"bootstrap_resamples": opts.bootstrap, "seed": settings.seed},
    }
    summary = scoring_summary(samples, scoring)
    if summary is not None:
        metrics["scoring"] = summary
    if sampled:
        asked_items = {(item_id, condition): item for item, item_id, condition in asked}
        replays, replayed = sampling_replays(experiment, asked_items, samples, settings, settings.seed)
        summary["sampling_error"] = {
            "replicates": len(replays),
            "samples_replayed": replayed,
            "intervals_widened": widen(metrics["conditions"], replays),
            "how": "each interval widened by its value's spread over replays with every sampled answer "
            "count redrawn (Dirichlet, Jeffreys prior), added in quadrature; ci_items is the item-only one",
        }
    plots = experiment.figures(metrics["conditions"], folder.path, samples)
    plots += experiment.artifacts(metrics["conditions"], samples, settings, folder.path)
    folder.finish(metrics)
    parameters = info.get("parameters")
    return EvalResult(
        experiment=experiment.name,
        model=opts.model,
        out=folder.path,
        metrics=metrics,
        resumed=resumed,
        new_samples=new,
        plots=plots,
        parameters=parameters if isinstance(parameters, int) else None,
        axes=dict(info.get("axes") or {}),
    )


def run_ladder(
    experiment: Experiment, settings: Settings, models: list[str], opts: RunOptions
) -> list[EvalResult]:
    """Each model into `opts.out/<experiment>-<model>`, one after another (each loaded, run, released);
    results ordered by the parameter count each backend reports (unknown last)."""
    _check_ladder(models)
    if opts.backend is not None:
        raise AlignlabError("a ladder builds its own backends: pass model specs, not a backend")
    results = []
    for model in models:
        results.append(
            run(
                experiment,
                settings,
                replace(opts, model=model, out=opts.out / run_name(experiment.name, model)),
            )
        )
    return sorted(results, key=_by_parameters)


def _check_ladder(models: list[str]) -> None:
    for model in models:
        model_specs.check_spec(model)  # every rung's form, key and file, before the first loads
    if len(set(models)) != len(models):
        raise AlignlabError(f"--model lists a model twice: {', '.join(shown(m) for m in models)}")


def _by_parameters(result: EvalResult) -> tuple:
    return (result.parameters is None, result.parameters or 0)


@dataclass
class SuiteResult:
    results: list[EvalResult]  # by parameter count, then in the suite's order
    figures: list[Path]
    left_out: dict = field(
        default_factory=dict
    )  # figure -> the models it could not place (no parameter count)


def run_suite(
    suite: Suite, models: list[str], values: dict, opts: RunOptions, axis: str = "parameters"
) -> SuiteResult:
    """Every experiment of `suite` on each model (loaded once per model) into `opts.out/<experiment>-<model>`,
    then the suite's figures into `opts.out/figures/`.

    `values`: settings for every member (conditions, prompt_format, seed, cot_*); a member takes the
    conditions it knows (none given: all its own) and skips the fields it has not. `opts.limit` means for
    each member what it means in that experiment run alone (its `limit_unit`).
    """
    from alignlab import experiments

    _check_ladder(models)
    if opts.limit is not None and opts.limit < 1:
        raise AlignlabError(f"--limit must be a positive number, got {opts.limit}")
    wanted = values.get("conditions")
    plans = []
    for member in suite.members:
        experiment = experiments.get(member.experiment)
        own = tuple(c for c in wanted if c in experiment.conditions) if wanted else None
        if wanted and not own:
            continue  # none of the asked conditions is this experiment's
        settings = experiment.settings(**{**values, "conditions": own})  # fields it lacks are skipped
        loaded = load_checked(experiment, settings, opts)  # bad data stops the suite before any model loads
        plans.append((experiment, settings, loaded))
    if not plans:
        raise AlignlabError(f"no experiment of {suite.name} has the conditions {', '.join(wanted or ())}")
    results = []
    for model in models:
        backend = load_backend(model, opts)
        for experiment, settings, loaded in plans:
            out = opts.out / run_name(experiment.name, model)
            results.append(
                run(experiment, settings, replace(opts, model=model, backend=backend, out=out), loaded)
            )
        del backend  # one model in memory at a time
    order = {member.experiment: i for i, member in enumerate(suite.members)}
    results.sort(key=lambda r: (*_by_parameters(r), r.model, order[r.experiment]))
    figures, left_out = suite_figures(suite, results, opts.out / "figures", axis)
    return SuiteResult(results, figures, left_out)


def suite_figures(
    suite: Suite, results: list[EvalResult], folder: Path, axis: str = "parameters"
) -> tuple[list[Path], dict]:
    """Per experiment: its headline metric against parameter count (or another `axis` the model specs
    declare, e.g. rlhf_steps), one line per condition, 95% intervals (the form of Ganguli et al. 2023,
    Figs. 1-3). Returns the figures and, for each, the runs it left out (no value on the axis), which the
    figure also names under its axis."""
    import pandas as pd

    from alignlab.atomic import write_bytes_atomic
    from alignlab.report.figures import plot_scaling

    written, left_out = [], {}
    for member in suite.members:
        rows, unplaced = [], []
        for result in results:
            if result.experiment != member.experiment:
                continue
            place = result.axis_value(axis)
            if place is None:
                unplaced.append(result.model)
                continue
            for condition, body in result.metrics["conditions"].items():
                value = metric_at(body, member.headline)
                estimate = value if isinstance(value, dict) else {"value": value, "ci": [None, None]}
                if estimate.get("value") is None:
                    continue
                low, high = estimate.get("ci") or (None, None)
                rows.append(
                    {
                        "model": result.model,
                        axis: place,
                        "condition": condition,
                        "value": estimate["value"],
                        "ci_low": estimate["value"] if low is None else low,
                        "ci_high": estimate["value"] if high is None else high,
                    }
                )
        if not rows:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        suffix = "" if axis == "parameters" else f"-by-{axis}"
        path = folder / f"{member.experiment}-{member.headline.replace('.', '_')}{suffix}.png"
        title = f"{member.experiment}: {member.headline}"
        write_bytes_atomic(path, plot_scaling(pd.DataFrame(rows), member.headline, title, unplaced, axis))
        written.append(path)
        if unplaced:
            left_out[path] = unplaced
    return written, left_out


def metric_at(metrics: dict, path: str):
    """The value at a dotted path of a condition's metrics ("bias_score.ambig"), or None."""
    value = metrics
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _complete_samples(samples_log, expected: set[tuple[str, str]]) -> list[dict]:
    """Every (item, condition) asked exactly once, or an error: never score a run with holes or repeats."""
    samples = list(samples_log.read())
    seen: set[tuple[str, str]] = set()
    for sample in samples:
        key = sample_key(sample)
        if key in seen:
            raise AlignlabError(f"{samples_log.path}: sample {key} appears twice")
        seen.add(key)
    if seen != expected:
        missing = len(expected - seen)
        extra = len(seen - expected)
        raise AlignlabError(f"{samples_log.path}: {missing} samples missing, {extra} unexpected")
    return samples
