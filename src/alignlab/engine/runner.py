"""Runs requests for many tasks at once, with a response cache, batching and progress.

A task is a generator that yields requests and receives their results, and finally returns its sample:

    def task():
        reasoning = yield GenerateRequest(...)
        scores = yield ScoreRequest(...)
        return {"id": ..., "condition": ..., ...}

A task may also yield a list of requests and receive the list of their results: they are batched with
every other task's requests of that stage, not asked one after another.

The engine advances tasks a block at a time (`block_size` consecutive tasks, in lock step): at each step
it takes the block's requests of one kind, answers those it has cached, runs the rest in length-sorted
batches, and hands each sample on the moment its task returns. Batches never mix blocks, so a resumed run
batches exactly as an uninterrupted one, and a local model's scores (which move in their last digits with
their batch) come out the same.
It knows nothing of datasets; experiments know nothing of batching.

Scores read without prompt logprobs (top logprobs, sampled answers: `alignlab.models.answer_reading`) leave
a summary on their task's sample under "scoring" (coverage, answers outside the top-k, requests), so a run's
metrics can say how its numbers were read whatever the experiment; with `record_replies` each sample also
keeps every result its task was given ("_replies"), from which the run replays the task with the sampled
counts redrawn (`alignlab.engine.sampling_error`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection, Generator, Iterable
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
BLOCK_CHUNKS = 4  # chunks' worth of tasks in a block (see Engine._drive)


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
        TextColumn("{task.fields[requests]} requests"),
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
    # told the requests answered so far (run_tasks' progress): a block's samples can all wait for its last
    # batches, and a count of samples alone would then stand still for minutes
    on_answered: Callable[[int], None] | None = None
    answered: int = 0

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
        for key, sample in self._drive({i: one(r) for i, r in enumerate(requests)}):
            out[key] = sample["result"]
        return out  # type: ignore[return-value]

    def run_tasks(
        self,
        tasks: dict,
        on_sample: Callable[[dict], None],
        description: str = "samples",
        done: Collection = frozenset(),
    ) -> int:
        """Drive `tasks` (key -> Task, every task of the run in its order) to completion, calling
        `on_sample` as each finishes, except for the keys in `done` (samples already kept): those run again
        only where a batch needs them (see `_drive`), and their samples are dropped."""
        done = set(done) & set(tasks)
        progress = make_progress(self.show_progress)
        count = 0
        with progress:
            bar = progress.add_task(description, total=len(tasks) - len(done), requests=0)
            self.answered, self.on_answered = 0, lambda answered: progress.update(bar, requests=answered)
            try:
                for key, sample in self._drive(tasks, done):
                    if key in done:
                        continue
                    on_sample(sample)
                    count += 1
                    progress.advance(bar)
            finally:
                self.on_answered = None
        return count

    @property
    def block_size(self) -> int:
        """Tasks per block: a few chunks, so length-sorting has prompts to group and little is redone (at
        least a generate chunk, which a continuous-batching backend refills as rows finish)."""
        return max(BLOCK_CHUNKS * self.chunk_size, self.kind_chunk_size("generate"))

    def _drive(self, tasks: dict, done: set | frozenset = frozenset()) -> Iterable[tuple[object, dict]]:
        """Each block of `block_size` consecutive tasks, one after another, each in lock step.

        A local model's scores move in the last digits with what else is in their batch (padding, matrix
        shapes). So a batch is formed from its block's tasks alone, all at the same step, the same whether
        or not some of them were done before a resume: a block with some samples done runs whole again
        (their samples dropped), one with all done is skipped. A backend whose answers do not depend on
        their batch (`batch_invariant`: a remote API) runs only what is not done.
        """
        keys = list(tasks)
        invariant = bool(getattr(self.backend, "batch_invariant", False))
        model = self.backend.fingerprint()
        for start in range(0, len(keys), self.block_size):
            block = keys[start : start + self.block_size]
            todo = [k for k in block if k not in done]
            if todo:
                yield from self._drive_block({k: tasks[k] for k in (todo if invariant else block)}, model)

    def _drive_block(self, tasks: dict, model: str) -> Iterable[tuple[object, dict]]:
        # A task yields one request (and gets its result) or a list of requests (and gets the list of
        # their results): a step's requests of every task of the block are batched together, by kind,
        # longest prompt first (ties in task order), in chunks of the kind's size.
        order = {key: n for n, key in enumerate(tasks)}
        generators: dict[object, Task] = dict(tasks)
        asked: dict[object, tuple[list[Request], bool]] = {}  # each waiting task's requests, and as a list?
        readings: dict[object, list[dict]] = {}  # each task's scores' `reading`s
        transcripts: dict[object, list[dict]] = {}  # each task's results, when recording replies

        def advance(key, reply, first: bool = False) -> dict | None:
            gen = generators[key]
            try:
                while True:
                    question = next(gen) if first else gen.send(reply)
                    first = False
                    many = isinstance(question, list | tuple)
                    requests = list(question) if many else [question]
                    if not requests:  # an empty list is answered at once
                        reply = []
                        continue
                    asked[key] = (requests, many)
                    return None
            except StopIteration as stop:
                del generators[key]
                return self._finished(key, stop.value, readings, transcripts)

        for key in tasks:
            finished = advance(key, None, first=True)
            if finished is not None:
                yield key, finished
        while asked:
            # the step's requests are fixed before any is answered; a task whose answers are all in moves on
            # at once (its sample out early), its next requests waiting for the next step
            step, asked = asked, {}
            answers: dict[tuple[object, int], Result] = {}
            missing = {key: len(requests) for key, (requests, _) in step.items()}
            by_kind: dict[str, list[tuple[object, int, Request]]] = {}
            for key, (requests, _) in step.items():
                for index, request in enumerate(requests):
                    by_kind.setdefault(request.kind, []).append((key, index, request))
            for kind in sorted(by_kind, key=lambda k: (k != "score", k)):  # scores first: samples out early
                entries = sorted(by_kind[kind], key=lambda e: (-prompt_size(e[2]), order[e[0]], e[1]))
                size = self.kind_chunk_size(kind)
                for at in range(0, len(entries), size):
                    chunk = entries[at : at + size]
                    results = self._answer(model, [e[2] for e in chunk], [e[0] for e in chunk])
                    self.answered += len(chunk)
                    if self.on_answered is not None:
                        self.on_answered(self.answered)
                    for (key, index, _), result in zip(chunk, results, strict=True):
                        answers[(key, index)] = result
                        missing[key] -= 1
                    for key in sorted({e[0] for e in chunk if not missing[e[0]]}, key=order.__getitem__):
                        requests, many = step[key]
                        answered = [answers.pop((key, index)) for index in range(len(requests))]
                        readings.setdefault(key, []).extend(
                            r.reading for r in answered if getattr(r, "reading", None)
                        )
                        if self.record_replies:
                            transcripts.setdefault(key, []).append(recorded(answered, many))
                        finished = advance(key, answered if many else answered[0])
                        if finished is not None:
                            yield key, finished

    @staticmethod
    def _finished(key, sample: dict, readings: dict, transcripts: dict) -> dict:
        if readings.get(key):
            sample = {**sample, "scoring": summarize(readings.pop(key))}
        if key in transcripts:
            sample = {**sample, "_replies": transcripts.pop(key)}
        return sample

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
                raise AlignlabError(f"{owner_prefix(owner)}a {kind} request cannot run: {exc}") from exc
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
                    f"{owner_prefix(owner_of[first_key])}a {kind} request failed: {first.error}{more}"
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


def owner_prefix(owner) -> str:
    """The item a request belongs to, as an error's prefix: run folders key tasks by (item id, condition)."""
    if isinstance(owner, tuple) and len(owner) == 2:
        return f"item {owner[0]} (condition {owner[1]}): "
    return ""


def prompt_size(request: Request) -> int:
    prompt = request.prompt
    if isinstance(prompt, Chat):
        return sum(len(text) for _, text in prompt.messages) + len(prompt.prefill)
    return len(prompt)
