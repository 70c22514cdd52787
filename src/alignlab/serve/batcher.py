"""One thread owns the model; concurrent HTTP requests queue their work and it runs in shared batches.

Every backend and tokenizer call happens on the batcher's thread (fast tokenizers must not be used from two
threads at once, and a model computes one batch at a time anyway). A job waits for its batch while the
thread finishes the one before; whatever queued meanwhile (from any number of requests) runs together.
A job whose client went away before its batch started is dropped (its future was cancelled); a batch
already running goes to its end (backends cannot be interrupted mid-batch; `max_tokens` is bounded by the
model's context window, in serve.openai_api). `stop()` answers every waiting job with `Stopped` at once and
leaves a running batch to die with the process, so Ctrl-C does not wait for a long generation.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, replace

from alignlab.errors import UnsupportedRequest
from alignlab.models.base import Backend, Chat, EchoRequest, GenerateRequest

log = logging.getLogger("alignlab.serve")


@dataclass(frozen=True)
class Generation:
    """One choice to generate. `prompt` may be token ids (decoded here) or a chat (rendered by the backend)."""

    prompt: str | tuple[int, ...] | Chat
    request: GenerateRequest  # its prompt is replaced by the decoded text


@dataclass
class Generated:
    prompt_text: str | None  # the prompt as text (None for a chat)
    text: str
    finish_reason: str
    error: str | None
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Echo:
    """Log-probabilities of a prompt (text, ids or chat) and what was generated after it."""

    prompt: str | tuple[int, ...] | Chat
    generated: str
    eos: bool
    top: int


class Stopped(Exception):
    """The server stopped before this job's answer (its client gets a 503)."""

    def __init__(self) -> None:
        super().__init__("the server is shutting down")


@dataclass
class _Job:
    work: Generation | Echo
    future: Future


class Batcher:
    def __init__(self, backend: Backend, max_batch: int = 64, gather_s: float = 0.002) -> None:
        self.backend = backend
        self.max_batch = max_batch
        self.gather_s = gather_s  # how long the first job of an idle server waits for company
        self.batches = 0  # batches run (a test reads this to see requests share them)
        self.largest_batch = 0
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        # stop() and the model's thread agree under this lock on which jobs stop() must answer
        self._lock = threading.Lock()
        self._stopping = False
        self._running: list[_Job] = []
        self._running_since = 0.0
        self.abandoned = False  # closed while a batch still ran on the model's thread
        self._thread = threading.Thread(target=self._loop, name="alignlab-serve-model", daemon=True)
        self._thread.start()

    def submit(self, work: Generation | Echo) -> Future:
        return self._put(work)

    def call(self, function, *args) -> Future:
        """Run any backend call on the model's thread, in order with the batches (e.g. the fingerprint)."""
        return self._put(_Call(function, args))

    def _put(self, work) -> Future:
        future: Future = Future()
        with self._lock:
            if self._stopping:
                future.set_exception(Stopped())
            else:
                self._queue.put(_Job(work, future))
        return future

    def stop(self) -> None:
        """Answer every job now with `Stopped`: the queued ones and those of the running batch, whose
        result nobody will read (the batch itself cannot be interrupted; its thread is a daemon)."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            waiting = self._drain()
            self._queue.put(None)
            running = list(self._running)
        for job in waiting:
            if job.future.set_running_or_notify_cancel():
                _resolve(job.future, error=Stopped())
        for job in running:
            _resolve(job.future, error=Stopped())

    def close(self, wait_s: float = 1.0) -> None:
        """`stop()`, then wait at most `wait_s` for the model's thread; a long batch is left running, said
        in one line, and ends with the process (waiting for it kept Ctrl-C waiting for minutes)."""
        self.stop()
        self._thread.join(timeout=wait_s)
        self.abandoned = self._thread.is_alive()
        if self.abandoned:
            what = self.busy() or "ending"
            log.warning(
                "stopping without waiting for the model's running batch (%s); its answers are dropped", what
            )

    def busy(self) -> str:
        """What the model's thread is running, e.g. "2 generations, for 12 s" ("" when idle)."""
        with self._lock:
            jobs, since = list(self._running), self._running_since
        if not jobs:
            return ""
        kinds = Counter(_KIND_NAMES.get(type(job.work), ("call", "calls")) for job in jobs)
        what = ", ".join(f"{n} {names[n != 1]}" for names, n in kinds.items())
        return f"{what}, for {time.monotonic() - since:.0f} s"

    def _drain(self) -> list[_Job]:
        jobs = []
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return jobs
            if job is not None:
                jobs.append(job)

    # -- the model's thread

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs, stop = [first], False
            deadline = time.monotonic() + self.gather_s
            while len(jobs) < self.max_batch:
                try:
                    job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                jobs.append(job)
            live = [job for job in jobs if job.future.set_running_or_notify_cancel()]
            if len(live) < len(jobs):
                log.debug("dropped %d queued jobs whose clients went away", len(jobs) - len(live))
            if not self._begin(live):
                return
            try:
                self._run(live)
            finally:
                with self._lock:
                    self._running = []
            if stop:
                return

    def _begin(self, jobs: list[_Job]) -> bool:
        """Mark `jobs` running, for stop() to answer; False (each answered `Stopped`) once stopping."""
        with self._lock:
            if not self._stopping:
                self._running, self._running_since = jobs, time.monotonic()
                return True
        for job in jobs:
            _resolve(job.future, error=Stopped())
        return False

    def _run(self, jobs: list[_Job]) -> None:
        calls = [j for j in jobs if isinstance(j.work, _Call)]
        generations = [j for j in jobs if isinstance(j.work, Generation)]
        echoes = [j for j in jobs if isinstance(j.work, Echo)]
        for job in calls:
            _settle([job], lambda works: [works[0].function(*works[0].args)])
        if generations:
            self._count_batch(len(generations))
            _settle(generations, self._generate)
        for top in sorted({j.work.top for j in echoes}):
            group = [j for j in echoes if j.work.top == top]
            self._count_batch(len(group))
            _settle(group, lambda works, top=top: self._echo(works, top))

    def _count_batch(self, size: int) -> None:
        self.batches += 1
        self.largest_batch = max(self.largest_batch, size)

    def _text(self, prompt: str | tuple[int, ...] | Chat) -> str | Chat:
        return self.backend.decode(list(prompt)) if isinstance(prompt, tuple) else prompt

    def _generate(self, works: list[Generation]) -> list[Generated]:
        requests = [replace(w.request, prompt=self._text(w.prompt)) for w in works]
        todo = [i for i, r in enumerate(requests) if r.max_tokens > 0]
        results = dict(zip(todo, self.backend.generate([requests[i] for i in todo]), strict=True))
        out = []
        for i, (work, request) in enumerate(zip(works, requests, strict=True)):
            result = results.get(i)
            text = result.text if result else ""
            prompt_tokens = (
                len(work.prompt) if isinstance(work.prompt, tuple) else self._count(request.prompt)
            )
            out.append(
                Generated(
                    prompt_text=request.prompt if isinstance(request.prompt, str) else None,
                    text=text,
                    finish_reason=result.finish_reason if result else "length",
                    error=result.error if result else None,
                    prompt_tokens=prompt_tokens,
                    completion_tokens=self._count(text, special=False) if text else 0,
                )
            )
        return out

    def _count(self, prompt: str | Chat, special: bool = True) -> int:
        """Tokens in a prompt, for `usage` (0 where the backend cannot say)."""
        try:
            text = prompt if isinstance(prompt, str) else self.backend.render(prompt)  # type: ignore[attr-defined]
            tokens = self.backend.encode(text)  # type: ignore[attr-defined]
        except Exception:  # usage is a courtesy, never a failure
            return 0
        if not special:
            bos = getattr(getattr(self.backend, "tokenizer", None), "bos_token_id", None)
            tokens = tokens[1:] if tokens and tokens[0] == bos else tokens
        return len(tokens)

    def _echo(self, works: list[Echo], top: int) -> list:
        requests = []
        for work in works:
            prompt = work.prompt
            if isinstance(prompt, Chat):
                render = getattr(self.backend, "render", None)
                if render is None:
                    raise UnsupportedRequest(f"model {self.backend.spec!r} cannot render chats for logprobs")
                prompt = render(prompt)
            requests.append(EchoRequest(prompt=prompt, generated=work.generated, eos=work.eos))
        return self.backend.echo_logprobs(requests, top)


@dataclass(frozen=True)
class _Call:
    function: object
    args: tuple


def _settle(jobs: list[_Job], compute) -> None:
    """Run one batch; its results go to each job's future. A batch that fails is run again one job at a time,
    so one client's bad request (a token id out of range, a prompt over the context window) fails alone.
    Jobs already answered (by stop()) are not run."""
    jobs = [job for job in jobs if not job.future.done()]
    if not jobs:
        return
    try:
        results = compute([job.work for job in jobs])
    except Exception as exc:  # the request handlers decide what the client sees
        if len(jobs) > 1:
            for job in jobs:
                _settle([job], compute)
            return
        _resolve(jobs[0].future, error=exc)
        return
    for job, result in zip(jobs, results, strict=True):
        _resolve(job.future, result)


def _resolve(future: Future, result=None, error: Exception | None = None) -> None:
    """Settle a future unless stop() already did (its batch ran on, unread)."""
    try:
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
    except InvalidStateError:
        pass


_KIND_NAMES = {Generation: ("generation", "generations"), Echo: ("logprob request", "logprob requests")}
