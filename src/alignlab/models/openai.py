"""Any OpenAI-compatible server (vLLM, llama.cpp server, Ollama, OpenAI) as a backend: `openai:MODEL@URL`.

Scoring needs prompt logprobs: POST {base}/completions with the prompt and continuation as one text,
`echo: true, logprobs: 1, max_tokens: 0` (1 where the server rejects 0, as vLLM does; the generated token
is then dropped). The continuation's tokens are the echoed tokens at or after the prompt's length (by
`text_offset`); where the offsets do not add up to the text (a BOS string or split multi-byte characters
in the token texts) the prompt alone is echoed as well and its tokens are matched against the full text's.
vLLM and `alignlab serve` give prompt logprobs; llama.cpp server, Ollama and OpenAI's chat models do not.
Without them a `Chat` prompt is still scored (models/answer_reading.py): from the chat endpoint's top
logprobs, one answer token at a time (a prefix continued as a prefilled assistant turn), or, where the
server gives no logprobs at all, from N answers sampled at T=1. `scoring=` (auto|prompt-logprobs|
top-logprobs|sampling) forces a path; `answer_samples` and `top_k` set its size. Raw-text prompts can only be
scored through echo: use `--format chat` elsewhere.

Generation: a text prompt goes to /completions, a `Chat` to /chat/completions. A chat's prefill is sent as
a final assistant message with `continue_final_message: true, add_generation_prompt: false`, a vLLM
extension (`alignlab serve` honours it too); servers without it may start a new assistant turn instead.

`check()` finds out what the server can do, with one tiny scoring request: prompt logprobs through echo
(exact), else one tiny chat request asking for top logprobs, with and without a prefill (top-logprobs; a
server that does not continue a prefill reads only one-token answers), else sampling (a WARNING says so).
A server without /completions at all (chat only) generates chat prompts and refuses raw ones in one line.

Requests run concurrently (asyncio + httpx) and are retried with exponential backoff and jitter on 429, 408,
5xx, connect errors, dropped connections, timeouts, a 2xx answer whose JSON is cut off, and a scoring answer
without the logprobs it asked for, honouring Retry-After. A 2xx body that is not JSON at all (an HTML page:
the URL is wrong), 401/403/404 and an unknown model are not retried. Each retry is one INFO line on the
`alignlab.openai` logger and is counted by cause in `backend.retries`; a call that needed retries ends
with one WARNING line of the counts (a run's `run.log` keeps both). How many are in flight adapts: `max_concurrency` at
most, halved each time the server answers 429 or 503 (it is overloaded), and raised by one again after as
many successes as the current limit (additive increase, multiplicative decrease, as TCP does); the learned
limit carries over to the next batch. `max_retries` counts retries after the first try; `timeout`,
`max_retries` and `backoff` default to $ALIGNLAB_OPENAI_TIMEOUT, $ALIGNLAB_OPENAI_MAX_RETRIES and
$ALIGNLAB_OPENAI_BACKOFF where set (60 s, 5, 0.5 s otherwise).

The API key comes from a file (`api_key_file`, or the file $OPENAI_API_KEY_FILE names) or from
$OPENAI_API_KEY, never from the command line (where it would land in shell history and a run's
config.json); Python callers may pass `api_key`. It is sent as a bearer token and never appears in
errors, logs, repr, info() or fingerprint().
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import email.utils
import hashlib
import json
import logging
import os
import random
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from alignlab.errors import AlignlabError, UnsupportedRequest
from alignlab.models import answer_reading
from alignlab.models.base import (
    BackendBase,
    Chat,
    FeaturesRequest,
    FeaturesResult,
    GenerateRequest,
    GenerateResult,
    ScoreRequest,
    ScoreResult,
)

log = logging.getLogger("alignlab.openai")

PROBE_TEXT = "Hello, world"  # what check() scores to learn whether the server gives prompt logprobs

_RETRY_STATUSES = frozenset({408, 429}) | (frozenset(range(500, 600)) - {501, 505})
_MAX_RETRY_AFTER = 300.0  # seconds; a longer Retry-After is capped


class _Secret:
    """Holds the API key; prints as *** so it cannot leak through repr() or vars()."""

    __slots__ = ("value",)

    def __init__(self, value: str | None) -> None:
        self.value = value or None

    def __repr__(self) -> str:
        return "***" if self.value else "None"


class _NoPromptLogprobs(AlignlabError):
    """The server answered a scoring request without logprobs of the prompt's tokens."""


class _HTTPStatusError(AlignlabError):
    """A final, non-retried HTTP error status from the server."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _public_url(url: str) -> str:
    """`url` without user:password@ (credentials never go into messages or fingerprints)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER)


# name -> (environment variable, type, default, lowest allowed value, whether the lowest is excluded)
_SETTINGS = {
    "timeout": ("ALIGNLAB_OPENAI_TIMEOUT", float, 60.0, 0.0, True),
    "max_retries": ("ALIGNLAB_OPENAI_MAX_RETRIES", int, 5, 0, False),
    "backoff": ("ALIGNLAB_OPENAI_BACKOFF", float, 0.5, 0.0, False),
}


def _setting(name: str, given: Any) -> Any:
    """A retry setting: the argument, else its environment variable, else the default; checked in one line."""
    variable, kind, default, lowest, exclusive = _SETTINGS[name]
    source, value = name, given
    if value is None:
        source, value = f"${variable}", os.environ.get(variable, "").strip() or default
    try:
        number = kind(value)
    except (TypeError, ValueError):
        number = None
    if number is None or number != number or (number <= lowest if exclusive else number < lowest):
        bound = f"{'above' if exclusive else 'at least'} {lowest:g}"
        raise AlignlabError(f"{source} must be a {kind.__name__} {bound}, got {str(value)[:40]!r}")
    return number


def _key_from_environment(key_file: str | os.PathLike | None) -> str | None:
    """The API key from `key_file`, else from the file $OPENAI_API_KEY_FILE names, else $OPENAI_API_KEY."""
    if key_file is None:
        key_file = os.environ.get("OPENAI_API_KEY_FILE") or None
    if key_file is None:
        return os.environ.get("OPENAI_API_KEY")
    try:
        key = Path(key_file).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise AlignlabError(f"cannot read the API key file {os.fspath(key_file)}: {reason}") from None
    if not key or len(key.splitlines()) != 1:
        raise AlignlabError(f"API key file {os.fspath(key_file)} must hold the key on one line")
    return key


def _run_sync(make: Callable[[], Awaitable[Any]]) -> Any:
    """Run a coroutine to completion from sync code, also when called inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


class OpenAIBackend(BackendBase):
    """A model behind an OpenAI-compatible HTTP API. The constructor does no network I/O; `check()` does."""

    batch_invariant = True  # requests go out one by one; the server's own batching is beyond reach

    def __init__(
        self,
        spec: str,
        model: str,
        base_url: str,
        max_concurrency: int = 8,
        timeout: float | None = None,
        max_retries: int | None = None,
        api_key: str | None = None,
        backoff: float | None = None,
        max_backoff: float = 30.0,
        api_key_file: str | os.PathLike | None = None,
        scoring: str = "auto",
        answer_samples: int = answer_reading.DEFAULT_SAMPLES,
        top_k: int = answer_reading.DEFAULT_TOP_K,
        **ignored: Any,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise AlignlabError(
                f"bad server URL {_public_url(base_url)!r} in spec {spec!r}: expected http(s)://"
            )
        if scoring not in ("auto", *answer_reading.PATHS):
            raise AlignlabError(
                f"unknown scoring path {scoring!r}: choose auto, {', '.join(answer_reading.PATHS)}"
            )
        if int(answer_samples) < 1 or not 1 <= int(top_k) <= 20:
            raise AlignlabError("answer_samples must be at least 1 and top_k from 1 to 20")
        if int(max_concurrency) < 1:
            raise AlignlabError(f"max_concurrency must be at least 1, got {max_concurrency}")
        timeout = _setting("timeout", timeout)
        max_retries = _setting("max_retries", max_retries)
        backoff = _setting("backoff", backoff)
        self.spec = spec
        self.model = model
        self._base = base_url.rstrip("/")
        self.base_url = _public_url(self._base)
        self.max_concurrency = int(max_concurrency)
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self._key = _Secret(api_key if api_key is not None else _key_from_environment(api_key_file))
        self.retries: collections.Counter[str] = collections.Counter()  # cause -> retries so far
        self._retries_lock = threading.Lock()  # calls may come from several threads
        self._model_card: dict | None = None
        self._checked = False
        self._score_max_tokens = 0  # becomes 1 once the server rejects max_tokens=0
        self.concurrency = self.max_concurrency  # the adaptive limit on requests in flight
        self.unsupported: dict[str, str] = {}  # request kind -> why this server cannot do it (from check())
        self._chat_only = False
        self._no_models_endpoint = False  # GET /models answered 404: with /completions 404 too, a wrong path
        self.scoring_asked = scoring
        self.answer_samples = int(answer_samples)
        self.top_k = int(top_k)
        self.scoring = ""  # the path check() chose: one of answer_reading.PATHS ("" until checked, or none)
        self._can_continue = False  # the chat endpoint continues a prefilled assistant turn
        self._score_requests = 0  # HTTP requests scoring made (cost, reported by the run)
        self._echo_why = ""  # why prompt logprobs are not open, where they are not

    def __repr__(self) -> str:
        return f"OpenAIBackend(spec={self.spec!r}, model={self.model!r}, base_url={self.base_url!r})"

    # ---- Backend protocol -------------------------------------------------------------------------

    def fingerprint(self) -> str:
        card = self._card()
        # `created` is left out: vLLM reports the time of the /models request there, not of the weights.
        facts = {
            "base_url": self.base_url,
            "model": self.model,
            **{key: card[key] for key in ("owned_by", "root", "alignlab_fingerprint") if key in card},
        }
        if self.scoring not in (
            "",
            "prompt-logprobs",
        ):  # another path reads other numbers: not the same model
            facts["scoring"] = self._scoring_facts()
        return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()

    def info(self) -> dict:
        out = {"backend": "openai", "model": self.model, "base_url": self.base_url}
        if self.scoring:
            out["scoring"] = self._scoring_facts()
        # a parameter count where the server's model card gives one (alignlab serve does; @params= overrides)
        counted = (self._model_card or {}).get("alignlab_parameters")
        if isinstance(counted, int) and not isinstance(counted, bool) and counted > 0:
            out.update(parameters=counted, parameters_from="the server's model card")
        return out

    def _scoring_facts(self) -> dict:
        """The scoring path and its settings, for the run's config and identity."""
        facts: dict[str, Any] = {"path": self.scoring}
        if self.scoring == "top-logprobs":
            facts.update(top_k=self.top_k, continues_prefill=self._can_continue)
        elif self.scoring == "sampling":
            facts.update(samples=self.answer_samples, temperature=1.0)
        return facts

    @property
    def capabilities(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset({"score", "generate"}) - set(self.unsupported)

    def raw_scoring_refusal(self) -> str | None:
        if self.scoring in ("", "prompt-logprobs"):
            return None
        why = f"{self._echo_why}; " if self._echo_why else ""
        return (
            f"{why}model {self.spec!r} scores from its chat endpoint ({self.scoring}), which cannot score the "
            "raw text prompts this run asks: use --format chat"
        )

    def score(self, requests: list[ScoreRequest]) -> list[ScoreResult]:
        if not requests:
            return []
        self.check()
        if "score" in self.unsupported:
            raise UnsupportedRequest(f"model {self.spec!r} cannot score: {self.unsupported['score']}")
        if self.scoring != "prompt-logprobs":
            return self._call("batch", lambda: self._read_all(requests))
        for request in requests:
            if isinstance(request.prompt, Chat):
                raise UnsupportedRequest(
                    f"model {self.spec!r} cannot score chat prompts from prompt logprobs (the chat endpoint "
                    "gives none): use --format raw, or --scoring top-logprobs"
                )
        return self._call("batch", lambda: self._score_all(requests))

    def generate(self, requests: list[GenerateRequest]) -> list[GenerateResult]:
        if not requests:
            return []
        self.check()
        if self._chat_only and any(isinstance(r.prompt, str) for r in requests):
            raise UnsupportedRequest(
                f"server at {self.base_url} has no /completions endpoint (chat only), so it cannot continue "
                "raw text prompts: use --format chat"
            )
        return self._call("batch", lambda: self._gather(self._generate_one, requests))

    def features(self, requests: list[FeaturesRequest]) -> list[FeaturesResult]:
        raise UnsupportedRequest(
            f"model {self.spec!r} does not support features requests (an HTTP API gives no hidden states)"
        )

    def check(self) -> None:
        """Fail early, in one line, if the server is unreachable or does not serve the model.

        GET {base}/models once; servers without that endpoint (404/405) pass unchecked.
        """
        if self._checked:
            return
        self._model_card = self._call("check", self._fetch_card)
        self._call("check", self._probe_scoring)
        self._call("check", self._choose_scoring)
        self._checked = True

    async def _probe_scoring(self) -> None:
        """Score one short text the way `score` will: what fails here fails every scoring request."""
        async with self._client() as client:
            try:
                await self._echo(client, None, PROBE_TEXT)
            except _HTTPStatusError as exc:
                if exc.status == 404 and self._no_models_endpoint:
                    raise AlignlabError(
                        f"server at {self.base_url} answered 404 to /models and /completions: check the "
                        "URL's path (an OpenAI-compatible API usually ends in /v1)"
                    ) from None
                if exc.status in (404, 405):
                    self._chat_only = True
                    self.unsupported["score"] = (
                        f"server at {self.base_url} has no /completions endpoint (chat only), so no prompt "
                        "logprobs; serve the model with vLLM or `alignlab serve` to score"
                    )
                else:
                    self.unsupported["score"] = f"it refuses prompt logprobs ({exc})"
            except _NoPromptLogprobs as exc:
                self.unsupported["score"] = str(exc)

    async def _choose_scoring(self) -> None:
        """The scoring path: prompt logprobs where the server echoes them (exact), else the chat endpoint's
        top logprobs, else sampled answers; `scoring=` forces one."""
        echo_ok = "score" not in self.unsupported
        echo_why = self.unsupported.pop("score", "")
        self._echo_why = echo_why
        asked = self.scoring_asked
        if asked == "prompt-logprobs" or (asked == "auto" and echo_ok):
            if echo_ok:
                self.scoring = "prompt-logprobs"
            else:
                self.unsupported["score"] = echo_why
            return
        top_ok = await self._probe_top() if asked in ("auto", "top-logprobs") else False
        if top_ok:
            self.scoring = "top-logprobs"
        elif asked == "top-logprobs":
            self.unsupported["score"] = (
                f"server at {self.base_url}/chat/completions gives no top logprobs; try --scoring sampling"
            )
        else:
            self.scoring = "sampling"
            if asked == "auto":
                log.warning(
                    "server at %s gives no logprobs: answers' probabilities are counted in %d samples each "
                    "(--answer-samples), their sampling error carried into the intervals",
                    self.base_url,
                    self.answer_samples,
                )

    async def _probe_top(self) -> bool:
        """Whether the chat endpoint gives top logprobs, and whether it continues a prefilled turn."""
        async with self._client() as client:
            for prefill in ("Hello,", ""):
                try:
                    top = await self._next_top(
                        client, None, Chat((("user", "Say hello."),), prefill), probe=True
                    )
                except _HTTPStatusError as exc:
                    if exc.status in (400, 422) and prefill:
                        continue  # continue_final_message refused: try without a prefill
                    if exc.status in (400, 404, 405, 422):
                        return False
                    raise
                except _NoPromptLogprobs:
                    return False
                self._can_continue = bool(prefill)
                return bool(top)
        return False

    # ---- HTTP ---------------------------------------------------------------------------------------

    def _card(self) -> dict:
        self.check()
        return self._model_card or {}

    async def _fetch_card(self) -> dict:
        async with self._client() as client:
            try:
                data = await self._request(client, "GET", "/models", None, retry_connect=False)
            except _HTTPStatusError as exc:
                if exc.status in (404, 405):
                    self._no_models_endpoint = exc.status == 404
                    return {}
                raise
        entries = data.get("data") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            return {}
        ids = [entry.get("id") for entry in entries if isinstance(entry, dict)]
        for entry in entries:
            if isinstance(entry, dict) and entry.get("id") == self.model:
                return entry
        if ids:
            served = ", ".join(repr(i) for i in ids[:10]) + (", ..." if len(ids) > 10 else "")
            raise AlignlabError(
                f"server at {self.base_url} does not serve model {self.model!r} (it serves: {served})"
            )
        return {}

    def _client(self) -> httpx.AsyncClient:
        headers = {"Content-Type": "application/json"}
        if self._key.value:
            headers["Authorization"] = f"Bearer {self._key.value}"
        limits = httpx.Limits(
            max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency
        )
        return httpx.AsyncClient(headers=headers, timeout=self.timeout, limits=limits)

    def _scrub(self, text: str) -> str:
        if self._key.value:
            text = text.replace(self._key.value, "***")
        return text

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            after = _retry_after(response.headers.get("retry-after"))
            if after is not None:
                return after
        base = min(self.max_backoff, self.backoff * 2**attempt)
        return base * (0.5 + random.random() / 2)  # jitter: half to full

    async def _request(
        self,
        client: httpx.AsyncClient,
        method: str,
        path: str,
        body: dict | None,
        *,
        semaphore: asyncio.Semaphore | None = None,
        retry_connect: bool = True,
        check_answer: Callable[[Any], AlignlabError | None] | None = None,
    ) -> Any:
        """JSON answer of one call, retried on transient failures; AlignlabError (one line) otherwise.

        `check_answer(data)` returns the error of an answer that is incomplete (a fault on the way, worth
        retrying), None for a good one; after the last try that error is raised.
        """
        url = self._base + path
        shown = self.base_url + path
        tries = self.max_retries + 1
        for attempt in range(tries):
            response = None
            final: AlignlabError | None = None
            try:
                if semaphore is None:
                    response = await client.request(method, url, json=body)
                else:
                    async with semaphore:
                        response = await client.request(method, url, json=body)
                    if isinstance(semaphore, _AdaptiveLimit):
                        semaphore.observe(response.status_code)
            except httpx.ConnectError as exc:
                if not retry_connect:
                    raise AlignlabError(
                        f"cannot reach server at {shown}: {self._reason(exc)} (is it running?)"
                    ) from None
                cause = "connection"
                failure = f"cannot reach server at {shown} after {tries} tries ({self._reason(exc)})"
            except httpx.TimeoutException:
                cause = "timeout"
                failure = f"server at {shown} did not answer within {self.timeout:g}s after {tries} tries"
            except httpx.TransportError as exc:
                cause = "connection"
                failure = f"connection to server at {shown} failed after {tries} tries ({self._reason(exc)})"
            else:
                if response.status_code < 400:
                    data, cause, final = self._answer(response, shown, check_answer)
                    if final is None:
                        return data
                    failure = str(final)
                else:
                    message = self._error_message(response)
                    if response.status_code not in _RETRY_STATUSES:
                        hint = " (check OPENAI_API_KEY)" if response.status_code in (401, 403) else ""
                        raise _HTTPStatusError(
                            f"server at {shown} answered {response.status_code}{hint}: {message}",
                            response.status_code,
                        )
                    cause = str(response.status_code)
                    failure = (
                        f"server at {shown} answered {response.status_code} after {tries} tries: {message}"
                    )
            if attempt + 1 < tries:
                delay = self._delay(attempt, response)
                self._count_retry(cause, f"{method} {shown}", attempt + 1, delay)
                await asyncio.sleep(delay)
        if final is not None:
            raise final
        raise AlignlabError(failure.rstrip(": "))

    def _answer(
        self, response: httpx.Response, shown: str, check_answer
    ) -> tuple[Any, str, AlignlabError | None]:
        """(data, retry cause, error) of a 2xx answer: JSON cut off on the way is worth retrying; a body that
        is no JSON at all (an HTML page: a wrong URL) is not."""
        try:
            data = response.json()
        except ValueError:
            if response.content.lstrip()[:1] not in (b"{", b"["):
                raise AlignlabError(
                    f"server at {shown} answered {response.status_code} with a body that is not JSON"
                ) from None
            error = AlignlabError(
                f"server at {shown} answered {response.status_code} with JSON cut off, "
                f"{self.max_retries + 1} times"
            )
            return None, "json", error
        error = check_answer(data) if check_answer is not None else None
        return data, "logprobs", error

    def _count_retry(self, cause: str, what: str, retry: int, delay: float) -> None:
        with self._retries_lock:
            self.retries[cause] += 1
        log.info("retry %d/%d [%s] %s; waiting %.2fs", retry, self.max_retries, cause, what, delay)

    def _retries_done(self) -> int:
        with self._retries_lock:
            return sum(self.retries.values())

    def _summarize_retries(self, before: int, what: str) -> None:
        """One WARNING line when a call needed retries: how many, and all so far by cause."""
        with self._retries_lock:
            total = sum(self.retries.values())
            causes = ", ".join(f"{cause}={n}" for cause, n in sorted(self.retries.items()))
        if total > before:
            log.warning(
                "%d retries in this %s against %s; %d in all (%s)",
                total - before,
                what,
                self.base_url,
                total,
                causes,
            )

    def _call(self, what: str, make: Callable[[], Awaitable[Any]]) -> Any:
        """`_run_sync(make)`, then a summary of its retries (also when it failed)."""
        before = self._retries_done()
        try:
            return _run_sync(make)
        finally:
            self._summarize_retries(before, what)

    def _reason(self, exc: Exception) -> str:
        return self._scrub(_one_line(str(exc) or type(exc).__name__, 120))

    def _error_message(self, response: httpx.Response) -> str:
        try:
            data = response.json()
        except ValueError:
            return self._scrub(_one_line(response.text or response.reason_phrase or ""))
        message = data
        if isinstance(data, dict):
            error = data.get("error", data)
            message = error.get("message", error) if isinstance(error, dict) else error
        return self._scrub(_one_line(message if isinstance(message, str) else json.dumps(message)))

    async def _gather(self, one, items: list) -> list:
        semaphore = _AdaptiveLimit(self)
        async with self._client() as client:
            return list(await asyncio.gather(*(one(client, semaphore, item) for item in items)))

    # ---- generate -----------------------------------------------------------------------------------

    async def _generate_one(
        self, client: httpx.AsyncClient, semaphore: asyncio.Semaphore, request: GenerateRequest
    ) -> GenerateResult:
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": request.seed,
        }
        if request.stop:
            body["stop"] = list(request.stop)
        if isinstance(request.prompt, Chat):
            messages = [{"role": role, "content": content} for role, content in request.prompt.messages]
            if request.prompt.prefill:
                messages.append({"role": "assistant", "content": request.prompt.prefill})
                body["continue_final_message"] = True  # vLLM extension: continue the prefill
                body["add_generation_prompt"] = False
            body["messages"] = messages
            path = "/chat/completions"
        else:
            body["prompt"] = request.prompt
            path = "/completions"
        data = await self._request(client, "POST", path, body, semaphore=semaphore)
        choice = self._first_choice(data, path)
        if path == "/chat/completions":
            message = choice.get("message")
            text = message.get("content") if isinstance(message, dict) else None
        else:
            text = choice.get("text")
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise AlignlabError(
                f"server at {self.base_url}{path} gave an unexpected answer: text is not a string"
            )
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        return GenerateResult(text=text, finish_reason=finish)

    def _first_choice(self, data: Any, path: str) -> dict:
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise AlignlabError(f"server at {self.base_url}{path} gave an unexpected answer: no choices")
        return choices[0]

    # ---- score --------------------------------------------------------------------------------------

    async def _score_all(self, requests: list[ScoreRequest]) -> list[ScoreResult]:
        semaphore = _AdaptiveLimit(self)
        prompt_echoes: dict[str, asyncio.Task] = {}
        async with self._client() as client:

            def echo_prompt(prompt: str) -> asyncio.Task:
                if prompt not in prompt_echoes:
                    prompt_echoes[prompt] = asyncio.ensure_future(self._echo(client, semaphore, prompt))
                return prompt_echoes[prompt]

            pairs = [(r.prompt, c) for r in requests for c in r.continuations]
            scored = await asyncio.gather(
                *(self._score_one(client, semaphore, p, c, echo_prompt) for p, c in pairs)
            )
        results, i = [], 0
        for request in requests:
            part = scored[i : i + len(request.continuations)]
            i += len(request.continuations)
            results.append(ScoreResult(logprobs=[lp for lp, _ in part], num_tokens=[n for _, n in part]))
        return results

    async def _echo(
        self, client: httpx.AsyncClient, semaphore: asyncio.Semaphore, text: str
    ) -> list[tuple[str, float | None, int]]:
        """(token, logprob, text_offset) of each echoed token of `text`, generated tokens dropped."""
        while True:
            max_tokens = self._score_max_tokens
            body = {
                "model": self.model,
                "prompt": text,
                "max_tokens": max_tokens,
                "echo": True,
                "logprobs": 1,
                "temperature": 0.0,
            }
            try:
                data = await self._request(
                    client,
                    "POST",
                    "/completions",
                    body,
                    semaphore=semaphore,
                    check_answer=lambda answer: self._missing_logprobs(answer, text),
                )
                break
            except _HTTPStatusError as exc:
                if max_tokens != 0 or exc.status not in (400, 422):
                    raise
                self._score_max_tokens = 1  # vLLM: "max_tokens must be at least 1"; drop the extra token
        no_logprobs = _NoPromptLogprobs(
            f"server at {self.base_url}/completions gives no prompt logprobs (echo with logprobs), "
            "so it cannot score; use a server that does (e.g. vLLM or `alignlab serve`)"
        )
        choice = self._first_choice(data, "/completions")
        echoed_text = choice.get("text")
        if isinstance(echoed_text, str) and text not in echoed_text:
            raise no_logprobs  # echo was ignored (llama.cpp server gives the generated token only)
        logprobs = choice.get("logprobs")
        if not isinstance(logprobs, dict):
            raise no_logprobs
        tokens = logprobs.get("tokens")
        values = logprobs.get("token_logprobs")
        offsets = logprobs.get("text_offset")
        if not (isinstance(tokens, list) and isinstance(values, list) and isinstance(offsets, list)):
            raise no_logprobs
        if not len(tokens) == len(values) == len(offsets):
            raise AlignlabError(
                f"server at {self.base_url}/completions gave an unexpected answer: "
                "tokens, token_logprobs and text_offset differ in length"
            )
        generated = 0
        if max_tokens:
            usage = data.get("usage") if isinstance(data, dict) else None
            count = usage.get("completion_tokens") if isinstance(usage, dict) else None
            generated = count if isinstance(count, int) and 0 <= count <= max_tokens else max_tokens
        kept = len(tokens) - generated
        if kept <= 0 or (kept > 1 and all(v is None for v in values[:kept])):
            raise no_logprobs
        return [
            (str(t), None if v is None else float(v), int(o))
            for t, v, o in zip(tokens, values, offsets, strict=True)
        ][:kept]

    def _missing_logprobs(self, data: Any, text: str) -> _NoPromptLogprobs | None:
        """The error of an echo answer that has the text but lacks the logprobs asked for (lost on the way:
        retried; a server that never gives them fails after the retries), else None."""
        choices = data.get("choices") if isinstance(data, dict) else None
        choice = choices[0] if isinstance(choices, list) and choices else None
        if not isinstance(choice, dict):
            return None  # no choices: not a lost field, reported as an unexpected answer
        echoed_text = choice.get("text")
        if isinstance(echoed_text, str) and text not in echoed_text:
            return None  # echo ignored: this server never gives prompt logprobs, no use retrying
        logprobs = choice.get("logprobs")
        fields = ("tokens", "token_logprobs", "text_offset")
        if isinstance(logprobs, dict) and all(isinstance(logprobs.get(f), list) for f in fields):
            return None
        return _NoPromptLogprobs(
            f"server at {self.base_url}/completions answered without the prompt logprobs asked for, "
            f"{self.max_retries + 1} times: it cannot score; use a server that gives them "
            "(e.g. vLLM or `alignlab serve`)"
        )

    async def _score_one(
        self, client, semaphore, prompt: str, continuation: str, echo_prompt
    ) -> tuple[float, int]:
        if not continuation:
            return 0.0, 0
        full = prompt + continuation
        # Trailing whitespace of the prompt belongs to the continuation, as in lm-evaluation-harness and
        # the hf backend: "Answer: " + "Paris" is scored as "Answer:" + " Paris".
        prompt, continuation = prompt.rstrip(), full[len(prompt.rstrip()) :]
        echoed = await self._echo(client, semaphore, full)
        if len(echoed) < 1:
            raise AlignlabError(f"server at {self.base_url}/completions echoed no tokens for {full[:40]!r}")
        tail = _split_by_offsets(echoed, full, len(prompt))
        if tail is None:  # offsets do not add up to the text: match the prompt's own tokens instead
            if prompt:
                head = await echo_prompt(prompt)
                head_tokens = [t for t, _, _ in head]
                if [t for t, _, _ in echoed[: len(head)]] != head_tokens:
                    raise _boundary_error(prompt, continuation)
                tail = echoed[len(head) :]
            else:
                tail = _drop_bos(echoed, full)
        if not tail:
            raise _boundary_error(prompt, continuation)
        values = [v for _, v, _ in tail]
        if any(v is None for v in values):
            raise AlignlabError(
                f"server at {self.base_url}/completions gives no logprob for the first token of "
                f"{continuation[:40]!r}: scoring needs a non-empty prompt"
            )
        return float(sum(values)), len(values)

    # ---- read answers without prompt logprobs ---------------------------------------------------------

    async def _read_all(self, requests: list[ScoreRequest]) -> list[ScoreResult]:
        semaphore = _AdaptiveLimit(self)
        for request in requests:
            if not isinstance(request.prompt, Chat):
                why = f" (no prompt logprobs: {self._echo_why})" if self._echo_why else ""
                raise UnsupportedRequest(
                    f"model {self.spec!r} reads answers through its chat endpoint ({self.scoring}), which "
                    f"cannot score a raw text prompt{why}: use --format chat"
                )
        async with self._client() as client:
            if self.scoring == "top-logprobs":

                async def next_top(chat: Chat) -> dict[str, float]:
                    return await self._next_top(client, semaphore, chat)

                read = [
                    answer_reading.read_top(
                        r.prompt, r.continuations, next_top, can_continue=self._can_continue, spec=self.spec
                    )
                    for r in requests
                ]
            else:

                async def sample(chat: Chat, n: int, tokens: int) -> tuple[list[str], int]:
                    return await self._sample(client, semaphore, chat, n, tokens)

                read = [
                    answer_reading.read_samples(r.prompt, r.continuations, sample, n=self.answer_samples)
                    for r in requests
                ]
            return list(await asyncio.gather(*read))

    def _chat_body(self, chat: Chat, **settings: Any) -> dict:
        messages = [{"role": role, "content": content} for role, content in chat.messages]
        body: dict[str, Any] = {"model": self.model, "messages": messages, **settings}
        if chat.prefill:
            messages.append({"role": "assistant", "content": chat.prefill})
            body.update(continue_final_message=True, add_generation_prompt=False)
        return body

    async def _next_top(self, client, semaphore, chat: Chat, probe: bool = False) -> dict[str, float]:
        """{token: log-probability} of the next token's `top_k` most likely after the chat's prefill.
        `probe`: an answer without them is not retried (the server may never give them)."""
        body = self._chat_body(
            chat, max_tokens=1, temperature=0.0, logprobs=True, top_logprobs=self.top_k, seed=0
        )
        path = "/chat/completions"
        data = await self._request(
            client, "POST", path, body, semaphore=semaphore, check_answer=None if probe else self._missing_top
        )
        missing = self._missing_top(data)
        if missing is not None:
            raise missing
        self._score_requests += 1
        first = self._first_choice(data, path)["logprobs"]["content"][0]
        top = {
            str(entry["token"]): float(entry["logprob"])
            for entry in first.get("top_logprobs") or []
            if isinstance(entry, dict) and "token" in entry and isinstance(entry.get("logprob"), int | float)
        }
        if isinstance(first.get("token"), str) and isinstance(first.get("logprob"), int | float):
            top.setdefault(first["token"], float(first["logprob"]))
        return top

    def _missing_top(self, data: Any) -> _NoPromptLogprobs | None:
        """The error of a chat answer without the top logprobs asked for (retried; then final)."""
        try:
            content = data["choices"][0]["logprobs"]["content"]
            if isinstance(content, list) and content and isinstance(content[0], dict):
                return None
        except (KeyError, IndexError, TypeError):
            pass
        return _NoPromptLogprobs(
            f"server at {self.base_url}/chat/completions answered without the top logprobs asked for, "
            f"{self.max_retries + 1} times"
        )

    async def _sample(self, client, semaphore, chat: Chat, n: int, tokens: int) -> tuple[list[str], int]:
        """`n` answers of up to `tokens` tokens at temperature 1, asked as n choices (more requests where the
        server gives fewer), each request seeded from the chat so a rerun draws the same answers."""
        texts: list[str] = []
        requests = 0
        seed = int(hashlib.sha256(repr(chat).encode()).hexdigest()[:7], 16)
        path = "/chat/completions"
        while len(texts) < n:
            body = self._chat_body(
                chat,
                max_tokens=tokens,
                temperature=1.0,
                top_p=1.0,
                n=min(n - len(texts), 128),
                seed=seed + len(texts),
            )
            data = await self._request(client, "POST", path, body, semaphore=semaphore)
            self._score_requests += 1
            requests += 1
            choices = data.get("choices") if isinstance(data, dict) else None
            got = [
                c["message"].get("content") or ""
                for c in choices or []
                if isinstance(c, dict) and isinstance(c.get("message"), dict)
            ]
            if not got:
                raise AlignlabError(f"server at {self.base_url}{path} gave an unexpected answer: no choices")
            texts.extend(str(t) for t in got[: n - len(texts)])
        return texts, requests


class _AdaptiveLimit:
    """Requests in flight: at most `backend.concurrency`, which halves when the server says it is overloaded
    (429, 503) and grows by one after as many successes as the limit; stored back on the backend."""

    def __init__(self, backend: OpenAIBackend) -> None:
        self.backend = backend
        self.in_flight = 0
        self.successes = 0
        self.condition = asyncio.Condition()

    async def __aenter__(self) -> None:
        async with self.condition:
            await self.condition.wait_for(lambda: self.in_flight < self.backend.concurrency)
            self.in_flight += 1

    async def __aexit__(self, *exc) -> None:
        async with self.condition:
            self.in_flight -= 1
            self.condition.notify_all()

    def observe(self, status: int) -> None:
        backend = self.backend
        if status in (429, 503):
            if backend.concurrency > 1:
                backend.concurrency = max(1, backend.concurrency // 2)
                log.info(
                    "server at %s is overloaded (%d): %d requests in flight at most now",
                    backend.base_url,
                    status,
                    backend.concurrency,
                )
            self.successes = 0
        elif status < 400:
            self.successes += 1
            if self.successes >= backend.concurrency and backend.concurrency < backend.max_concurrency:
                backend.concurrency += 1
                self.successes = 0


def _drop_bos(echoed: list, full: str) -> list:
    """Without a leading special token (null logprob, text empty or not part of the text), if any."""
    if echoed and echoed[0][1] is None and (not echoed[0][0] or not full.startswith(echoed[0][0])):
        return echoed[1:]
    return echoed


def _split_by_offsets(echoed: list, full: str, boundary: int) -> list | None:
    """Tokens at or after `boundary` by text_offset, or None when the offsets cannot be trusted.

    Offsets are trusted when, after discounting a leading special token's text (vLLM counts e.g. "<s>"),
    they start at 0, never decrease, and the last token ends exactly at the end of the text.
    """
    rest = _drop_bos(echoed, full)
    shift = 0
    if len(rest) < len(echoed):
        first = echoed[0]
        shift = (rest[0][2] - first[2]) if rest else 0
    if not rest:
        return None
    starts = [offset - shift for _, _, offset in rest]
    if starts[0] != 0 or any(b < a for a, b in zip(starts, starts[1:], strict=False)):
        return None
    if starts[-1] + len(rest[-1][0]) != len(full):
        return None
    if boundary > 0 and boundary not in starts:
        prompt, continuation = full[:boundary], full[boundary:]
        raise _boundary_error(prompt, continuation)
    return [token for token, start in zip(rest, starts, strict=True) if start >= boundary]


def _boundary_error(prompt: str, continuation: str) -> AlignlabError:
    return AlignlabError(
        f"continuation {continuation[:40]!r} does not start on a token boundary after prompt ending "
        f"{prompt[-40:]!r}: the server's tokenizer merges text across them, so its logprob cannot be "
        "isolated (end the prompt before the whitespace, and start the continuation with it)"
    )
