"""The HTTP side of `alignlab serve`: a Starlette app (via FastAPI) whose handlers queue work on the batcher.

    GET  /v1/models, /v1/models/{id}   the one model served (its id: --name, default the spec)
    GET  /health                       {"status": "ok"}
    GET  /tokenizer_info, POST /tokenize, /detokenize   vLLM's tokenizer endpoints (transformers models)
    POST /v1/completions               see openai_api
    POST /v1/chat/completions          see openai_api; `continue_final_message: true` continues a final
                                       assistant message (vLLM's extension)

`api` makes the server answer as other APIs do, to test clients against each shape: "full" (the above),
"chat-only" (no /v1/completions, so no prompt logprobs; the chat endpoint gives top logprobs: OpenAI's chat
models) and "no-logprobs" (no /v1/completions; the chat endpoint drops `logprobs`/`top_logprobs` and answers
`logprobs: null`: Anthropic's API behind an OpenAI-compatible gateway).

Errors are the OpenAI error object with a status: 400 for a bad request or one the model cannot do (a
`max_tokens` beyond the model's context window included), 404 for another model or path, 413 for a body
over 64 MiB, 500 (with one log line) for a bug, 503 once the server is shutting down. A client that goes
away before its answer leaves one log line and its queued work is dropped; work already running on the
model ends unread (backends cannot be interrupted mid-batch), which the bound on `max_tokens` keeps short.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from alignlab.errors import AlignlabError
from alignlab.models.base import Backend
from alignlab.serve import openai_api
from alignlab.serve.batcher import Batcher, Stopped
from alignlab.serve.openai_api import BadRequest

log = logging.getLogger("alignlab.serve")

MAX_BODY = 64 << 20
Handler = Callable[[openai_api.Submit, dict, str], Awaitable[dict]]


API_SHAPES = ("full", "chat-only", "no-logprobs")


def context_window(backend: Backend) -> int | None:
    """Tokens the model can hold (transformers: `max_context`, llama.cpp: `_n_ctx`); None where unknown,
    as for a remote API."""
    for attribute in ("max_context", "_n_ctx"):
        value = getattr(backend, attribute, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def make_app(
    backend: Backend, model_name: str | None = None, batcher: Batcher | None = None, api: str = "full"
) -> FastAPI:
    if api not in API_SHAPES:
        raise AlignlabError(f"unknown API shape {api!r}: choose {', '.join(API_SHAPES)}")
    name = model_name or backend.spec
    batcher = batcher or Batcher(backend)
    created = int(time.time())
    fingerprint: list[str] = []
    counted = backend.info().get("parameters")  # on the card, so a client can place the model by size

    app = FastAPI(title="alignlab serve", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.batcher = batcher
    app.state.model_name = name
    window = context_window(backend)

    async def card() -> dict:
        if not fingerprint:
            fingerprint.append(await asyncio.wrap_future(batcher.call(backend.fingerprint)))
        return {
            "id": name,
            "object": "model",
            "created": created,
            "owned_by": "alignlab",
            "root": backend.spec,
            "alignlab_fingerprint": fingerprint[0],
            **({"alignlab_parameters": counted} if isinstance(counted, int) and counted > 0 else {}),
        }

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [await card()]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str):
        if model_id != name:
            return _error(404, f"model {model_id!r} is not served here (serving {name!r})")
        return await card()

    @app.get("/health")
    @app.get("/v1/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.post("/v1/completions")
    async def completions(request: Request):
        if api != "full":  # as OpenAI answers a chat model's completions request
            return _error(404, f"{name!r} is a chat model: /v1/completions is not served ({api} API)")
        return await _answer(request, openai_api.completions, batcher, name, window)

    async def chat_without_logprobs(submit, body: dict, model: str) -> dict:
        body = {k: v for k, v in body.items() if k not in ("logprobs", "top_logprobs")}
        return await openai_api.chat_completions(submit, body, model)

    chat_handler = chat_without_logprobs if api == "no-logprobs" else openai_api.chat_completions

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        return await _answer(request, chat_handler, batcher, name, window)

    # vLLM's tokenizer endpoints: lm-evaluation-harness's local-completions finds them and then needs no
    # tokenizer of its own (tokenizer_backend=auto); they run on the model's thread, as fast tokenizers need
    def tokenizer():
        found = getattr(backend, "tokenizer", None)
        if found is None:
            raise BadRequest(f"model {backend.spec!r} has no transformers tokenizer to serve", 404)
        return found

    async def on_model_thread(function, *args):
        return await asyncio.wrap_future(batcher.call(function, *args))

    @app.get("/tokenizer_info")
    async def tokenizer_info():
        try:
            tok = tokenizer()
        except BadRequest as exc:
            return _error(exc.status, str(exc))
        return {
            "tokenizer_class": type(tok).__name__,
            "eos_token": tok.eos_token,
            "bos_token": tok.bos_token,
            "pad_token": tok.pad_token,
            "chat_template": tok.chat_template,
            "model_max_length": getattr(backend.model.config, "max_position_embeddings", None)
            if hasattr(backend, "model")
            else None,
        }

    @app.post("/tokenize")
    async def tokenize(request: Request):
        try:
            tok, body = tokenizer(), await _read_json(request)
            text, special = body.get("prompt"), body.get("add_special_tokens", True)
            if not isinstance(text, str):
                raise BadRequest("prompt must be a string")
            ids = await on_model_thread(lambda: tok(text, add_special_tokens=bool(special))["input_ids"])
        except BadRequest as exc:
            return _error(exc.status, str(exc))
        return {"tokens": ids, "count": len(ids)}

    @app.post("/detokenize")
    async def detokenize(request: Request):
        try:
            tokenizer()
            body = await _read_json(request)
            ids = body.get("tokens")
            if not isinstance(ids, list) or not all(
                isinstance(t, int) and not isinstance(t, bool) for t in ids
            ):
                raise BadRequest("tokens must be a list of token ids")
            text = await on_model_thread(backend.decode, ids)
        except BadRequest as exc:
            return _error(exc.status, str(exc))
        except AlignlabError as exc:
            return _error(400, str(exc))
        return {"prompt": text}

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        if exc.status_code == 404:
            return _error(404, f"no such endpoint: {request.method} {request.url.path}")
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Stopped)
    async def stopped(request: Request, exc: Stopped):  # e.g. /v1/models waiting for the fingerprint
        return _error(503, str(exc), "server_error")

    return app


async def _answer(
    request: Request, handler: Handler, batcher: Batcher, name: str, window: int | None
) -> Response:
    path = request.url.path
    pending: list[Future] = []

    def submit(work) -> Future:
        future = batcher.submit(work)
        pending.append(future)
        return future

    try:
        body = await _read_json(request)
        openai_api.check_common(body, name, window)
        task = asyncio.ensure_future(handler(submit, body, name))
        while True:
            done, _ = await asyncio.wait({task}, timeout=0.1)
            if done:
                break
            if await request.is_disconnected():
                _went_away(request, task, pending)
                return Response(status_code=499)
        return JSONResponse(task.result())
    except Stopped as exc:
        return _error(503, str(exc), "server_error")
    except BadRequest as exc:
        return _error(exc.status, str(exc))
    except AlignlabError as exc:  # the backend's own one-line errors (unsupported request, token ids, ...)
        return _error(400, str(exc))
    except Exception as exc:  # a bug: answer 500, log one line, keep serving
        log.error("%s on POST %s: %s", type(exc).__name__, path, exc)
        return _error(500, f"{type(exc).__name__}: {exc}", "server_error")
    finally:
        for future in pending:
            future.cancel()  # no-op for work done or running


def _went_away(request: Request, task: asyncio.Task, pending: list[Future]) -> None:
    """Drop the work of a client that left; the log line says what still runs (it cannot be stopped)."""
    task.cancel()
    running = sum(future.running() for future in pending)
    dropped = sum(future.cancel() for future in pending)
    log.warning(
        "client %s went away before the answer to POST %s (%d queued jobs dropped%s)",
        _peer(request),
        request.url.path,
        dropped,
        f"; {running} already running, left to end unread" if running else "",
    )


async def _read_json(request: Request) -> dict:
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
        raise BadRequest(
            f"request body over {MAX_BODY} bytes" if length.isdigit() else "bad Content-Length", 413
        )
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise BadRequest(f"request body over {MAX_BODY} bytes", 413)
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


def _error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse(
        {"object": "error", "error": {"message": message, "type": kind, "code": status}}, status_code=status
    )


def _peer(request: Request) -> str:
    client = request.client
    return f"{client.host}:{client.port}" if client else "?"
