"""Runs requests for many tasks at once, with a response cache, batching and progress.

A task is a generator that yields requests and receives their results, and finally returns its sample:

    def task():
        reasoning = yield GenerateRequest(...)
        scores = yield ScoreRequest(...)
        return {"id": ..., "condition": ..., ...}

A task may also yield a list of requests and receive the list of their results: they are batched with
every other task's requests of that stage, not asked one after another.

The engine advances every task batch by batch: it takes pending requests of one kind and stage, answers
those it has cached, runs the rest in length-sorted batches, and hands each sample on the moment its task
returns.
It knows nothing of datasets; experiments know nothing of batching.

Scores read without prompt logprobs (top logprobs, sampled answers: `alignlab.models.answer_reading`) leave
a summary on their task's sample under "scoring" (coverage, answers outside the top-k, requests), so a run's
metrics can say how its numbers were read whatever the experiment; with `record_replies` each sample also
keeps every result its task was given ("_replies"), from which the run replays the task with the sampled
counts redrawn (`alignlab.engine.sampling_error`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from alignlab.engine.cache import ResponseCache
from alignlab.engine.plain_progress import PlainProgress
from alignlab.errors import AlignlabError
from alignlab.models.base import (
    Backend,
    Chat,
    FeaturesResult,
    GenerateResult,
    Request,
    Result,
    ScoreResult,
    request_key,
    result_to_json,
)
from alignlab.models.text import PromptTooLong

Task = Generator[Request, Result, dict]


class RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.2f}/s" if speed else "-/s", style="progress.data.speed")


def make_progress(enabled: bool = True) -> Progress | PlainProgress:
    """rich's bar on a terminal; elsewhere (a file, CI) a plain line every few seconds."""
    if enabled and not _is_terminal(sys.stderr):
        return PlainProgress(sys.stderr)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=Console(file=sys.stderr),
        disable=not enabled,
        transient=False,
    )


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


@dataclass
class Engine:
    backend: Backend
    cache: ResponseCache | None = None
    batch_size: int = 16
    max_concurrency: int = 8
    show_progress: bool = True
    record_replies: bool = False

    @property
    def chunk_size(self) -> int:
        # Local backends batch internally up to batch_size; HTTP backends want enough requests in
        # flight to fill max_concurrency.
        # A Ray backend spreads each chunk over its workers: give each a full batch.
        workers = self.backend.parallelism
        return max(self.batch_size * workers, self.max_concurrency)

    def kind_chunk_size(self, kind: str) -> int:
        """A backend that batches generation continuously asks for more requests per call
        (`generate_batch_hint`) so it can refill the rows that finish."""
        if kind == "generate":
            return max(self.chunk_size, int(getattr(self.backend, "generate_batch_hint", 0) or 0))
        return self.chunk_size

    def run_requests(self, requests: list[Request]) -> list[Result]:
        """Answer a flat list of requests (cached where possible), in order."""

        def one(request: Request) -> Task:
            result = yield request
            return {"result": result}

        out: list[Result | None] = [None] * len(requests)
        tasks = {i: one(r) for i, r in enumerate(requests)}
        for key, sample in self._drive(tasks, progress=None):
            out[key] = sample["result"]
        return out  # type: ignore[return-value]

    def run_tasks(self, tasks: dict, on_sample: Callable[[dict], None], description: str = "samples") -> int:
        """Drive `tasks` (key -> Task) to completion, calling `on_sample` as each finishes."""
        progress = make_progress(self.show_progress)
        count = 0
        with progress:
            bar = progress.add_task(description, total=len(tasks))
            for _key, sample in self._drive(tasks, progress=(progress, bar)):
                on_sample(sample)
                count += 1
        return count

    def _drive(self, tasks: dict, progress) -> Iterable[tuple[object, dict]]:
        # A task yields one request (and gets its result) or a list of requests (and gets the list of
        # their results): the requests of a list wait in `pending` side by side, so they are batched
        # together with every other task's instead of one after another.
        pending: dict[tuple[object, int], Request] = {}
        stage: dict[object, int] = {}  # how many yields of each task have been answered
        replies: dict[object, list] = {}  # results so far of a task's current yield
        outstanding: dict[object, int] = {}  # how many of them are still to come
        as_list: dict[object, bool] = {}  # whether that yield was a list
        generators: dict[object, Task] = dict(tasks)
        readings: dict[object, list[dict]] = {}  # each task's scores' `reading`s
        transcripts: dict[object, list[dict]] = {}  # each task's results, when recording replies

        def advance(key, reply, first: bool = False) -> dict | None:
            gen = generators[key]
            try:
                while True:
                    asked = next(gen) if first else gen.send(reply)
                    first = False
                    many = isinstance(asked, list | tuple)
                    requests = list(asked) if many else [asked]
                    if not requests:  # an empty list is answered at once
                        reply = []
                        continue
                    as_list[key] = many
                    replies[key] = []
                    outstanding[key] = len(requests)
                    for i, request in enumerate(requests):
                        pending[(key, i)] = request
                    return None
            except StopIteration as stop:
                del generators[key]
                return stop.value

        for key in list(tasks):
            stage[key] = 0
            finished = advance(key, None, first=True)
            if finished is not None:
                yield key, finished
        model = self.backend.fingerprint()
        while pending:
            chunk = self._next_chunk(pending, stage)
            results = self._answer(model, [pending[k] for k in chunk], [k[0] for k in chunk])
            for entry, result in zip(chunk, results, strict=True):
                key, index = entry
                del pending[entry]
                replies[key].append((index, result))
                outstanding[key] -= 1
                if outstanding[key]:
                    continue  # more of this yield's requests are still out
                answered = [r for _, r in sorted(replies.pop(key), key=lambda pair: pair[0])]
                stage[key] += 1
                readings.setdefault(key, []).extend(
                    r.reading for r in answered if getattr(r, "reading", None)
                )
                if self.record_replies:
                    transcripts.setdefault(key, []).append(recorded(answered, as_list[key]))
                finished = advance(key, answered if as_list[key] else answered[0])
                if finished is not None:
                    if readings.get(key):
                        finished = {**finished, "scoring": summarize(readings.pop(key))}
                    if key in transcripts:
                        finished = {**finished, "_replies": transcripts.pop(key)}
                    if progress is not None:
                        progress[0].advance(progress[1])
                    yield key, finished

    def _next_chunk(self, pending: dict, stage: dict) -> list:
        """One batch of requests of one kind and stage.

        Later stages go first once they fill a chunk, so tasks finish (and their samples reach disk) while
        earlier stages are still running; otherwise the largest group goes, in length order.
        """
        groups: dict[tuple[int, str], list] = {}
        for entry, request in pending.items():
            groups.setdefault((stage[entry[0]], request.kind), []).append(entry)
        full = [g for g in groups if len(groups[g]) >= self.kind_chunk_size(g[1])]
        chosen = max(full) if full else max(groups, key=lambda g: len(groups[g]))
        keys = sorted(groups[chosen], key=lambda k: -_prompt_size(pending[k]))
        return keys[: self.kind_chunk_size(chosen[1])]

    def _answer(self, model: str, requests: list[Request], owners: list | None = None) -> list[Result]:
        """`owners`: the task key each request came from, to name the item in a request's error."""
        keys = [request_key(r) for r in requests]
        known = self.cache.get_many(model, list(set(keys))) if self.cache else {}
        todo: dict[str, Request] = {}
        owner_of: dict[str, object] = {}
        for key, request, owner in zip(keys, requests, owners or [None] * len(keys), strict=True):
            if key not in known:
                todo.setdefault(key, request)
                owner_of.setdefault(key, owner)
        if todo:
            kind = next(iter(todo.values())).kind
            method = getattr(self.backend, kind)
            try:
                fresh = method(list(todo.values()))
            except PromptTooLong as exc:  # raised before the backend did any work: nothing to keep
                owner = owner_of[list(todo)[exc.index]]
                raise AlignlabError(f"{_named(owner)}a {kind} request cannot run: {exc}") from exc
            answered = list(zip(todo.keys(), fresh, strict=True))
            failed = [(k, res) for k, res in answered if getattr(res, "error", None)]
            answered = [(k, res) for k, res in answered if not getattr(res, "error", None)]
            if self.cache is not None:
                self.cache.put_many(model, [(k, kind, res) for k, res in answered])
            if failed:
                # The rest of the batch is answered and cached, so a rerun after the fix redoes nothing.
                more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
                first_key, first = failed[0]
                raise AlignlabError(
                    f"{_named(owner_of[first_key])}a {kind} request failed: {first.error}{more}"
                )
            known.update(answered)
        return [known[k] for k in keys]


def recorded(results: list[Result], as_list: bool) -> dict:
    """One yield's results as JSON, to replay its task with."""
    return {"list": as_list, "results": [{"kind": kind_of(r), **result_to_json(r)} for r in results]}


def kind_of(result: Result) -> str:
    return {ScoreResult: "score", GenerateResult: "generate", FeaturesResult: "features"}[type(result)]


def summarize(readings: list[dict]) -> dict:
    """One sample's scores' readings in one: the path, the least top-k mass, the answers read as a bound
    (outside the top-k) of all answers, and the requests (and samples) they took."""
    out: dict = {"path": readings[0]["path"], "requests": sum(r.get("requests", 0) for r in readings)}
    if any("covered" in r for r in readings):
        out["covered"] = min(r["covered"] for r in readings if "covered" in r)
        out["answers"] = sum(len(r["outside"]) for r in readings if "outside" in r)
        out["outside"] = sum(sum(r["outside"]) for r in readings if "outside" in r)
    if any("counts" in r for r in readings):
        out["samples"] = sum(r["samples"] for r in readings if "samples" in r)
        out["unmatched"] = sum(r["unmatched"] for r in readings if "unmatched" in r)
    return out


def _named(owner) -> str:
    """The item a request belongs to, as an error's prefix: run folders key tasks by (item id, condition)."""
    if isinstance(owner, tuple) and len(owner) == 2:
        return f"item {owner[0]} (condition {owner[1]}): "
    return ""


def _prompt_size(request: Request) -> int:
    prompt = request.prompt
    if isinstance(prompt, Chat):
        return sum(len(text) for _, text in prompt.messages) + len(prompt.prefill)
    return len(prompt)
