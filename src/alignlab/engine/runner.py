"""Runs requests for many tasks at once, with a response cache, batching and progress.

A task is a generator that yields requests and receives their results, and finally returns its sample:

    def task():
        reasoning = yield GenerateRequest(...)
        scores = yield ScoreRequest(...)
        return {"id": ..., "condition": ..., ...}

The engine advances every task batch by batch: it takes pending requests of one kind and stage, answers
those it has cached, runs the rest in length-sorted batches, and hands each sample on the moment its task
returns.
It knows nothing of datasets; experiments know nothing of batching.
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
from alignlab.models.base import Backend, Chat, Request, Result, request_key

Task = Generator[Request, Result, dict]


class RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.2f}/s" if speed else "-/s", style="progress.data.speed")


def make_progress(enabled: bool = True) -> Progress:
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


@dataclass
class Engine:
    backend: Backend
    cache: ResponseCache | None = None
    batch_size: int = 16
    max_concurrency: int = 8
    show_progress: bool = True

    @property
    def chunk_size(self) -> int:
        # Local backends batch internally up to batch_size; HTTP backends want enough requests in
        # flight to fill max_concurrency.
        # A Ray backend spreads each chunk over its workers: give each a full batch.
        workers = self.backend.parallelism
        return max(self.batch_size * workers, self.max_concurrency)

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
        pending: dict[object, Request] = {}
        stage: dict[object, int] = {}  # how many requests each task has yielded
        generators: dict[object, Task] = {}
        for key, gen in tasks.items():
            generators[key] = gen
            stage[key] = 0
            finished = self._advance(key, gen, None, pending, first=True)
            if finished is not None:
                yield key, finished
        model = self.backend.fingerprint()
        while pending:
            chunk = self._next_chunk(pending, stage)
            results = self._answer(model, [pending[k] for k in chunk])
            for key, result in zip(chunk, results, strict=True):
                del pending[key]
                stage[key] += 1
                finished = self._advance(key, generators[key], result, pending)
                if finished is not None:
                    if progress is not None:
                        progress[0].advance(progress[1])
                    yield key, finished

    def _next_chunk(self, pending: dict, stage: dict) -> list:
        """One batch of requests of one kind and stage.

        Later stages go first once they fill a chunk, so tasks finish (and their samples reach disk) while
        earlier stages are still running; otherwise the largest group goes, in length order.
        """
        groups: dict[tuple[int, str], list] = {}
        for key, request in pending.items():
            groups.setdefault((stage[key], request.kind), []).append(key)
        full = [g for g in groups if len(groups[g]) >= self.chunk_size]
        chosen = max(full) if full else max(groups, key=lambda g: len(groups[g]))
        keys = sorted(groups[chosen], key=lambda k: -_prompt_size(pending[k]))
        return keys[: self.chunk_size]

    @staticmethod
    def _advance(key, gen: Task, result, pending: dict, first: bool = False) -> dict | None:
        try:
            pending[key] = next(gen) if first else gen.send(result)
            return None
        except StopIteration as stop:
            return stop.value

    def _answer(self, model: str, requests: list[Request]) -> list[Result]:
        keys = [request_key(r) for r in requests]
        known = self.cache.get_many(model, list(set(keys))) if self.cache else {}
        todo: dict[str, Request] = {}
        for key, request in zip(keys, requests, strict=True):
            if key not in known:
                todo.setdefault(key, request)
        if todo:
            kind = next(iter(todo.values())).kind
            method = getattr(self.backend, kind)
            fresh = method(list(todo.values()))
            answered = list(zip(todo.keys(), fresh, strict=True))
            if self.cache is not None:
                self.cache.put_many(model, [(k, kind, res) for k, res in answered])
            known.update(answered)
        return [known[k] for k in keys]


def _prompt_size(request: Request) -> int:
    prompt = request.prompt
    if isinstance(prompt, Chat):
        return sum(len(text) for _, text in prompt.messages) + len(prompt.prefill)
    return len(prompt)
