"""A small OpenAI-compatible HTTP server around any alignlab backend: `alignlab serve --model SPEC`.

    GET  /v1/models             the one model served (its id: --name, default the spec)
    POST /v1/completions        text prompt(s); `echo` + `logprobs` (+ `max_tokens: 0`) give prompt logprobs
    POST /v1/chat/completions   generation; `continue_final_message: true` continues a final assistant message

Prompt logprobs come from the backend's `token_logprobs(text) -> [(token_text, logprob | None), ...]`
(the first token's logprob is None; the token texts should join to `text`, a BOS token as ""). For
`logprobs` with `max_tokens > 0` the prompt plus the generated text is re-scored. `logprobs: k` (1 to 5) also
gives `top_logprobs`, the k most likely tokens at each position, where the backend has them
(`top_token_logprobs`: the transformers backend); otherwise it stays null. `n` must be 1 and streaming is
not supported.

Model calls are serialized with a lock; requests are otherwise handled in threads. There is no
authentication: the server binds to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from alignlab.errors import AlignlabError, UnsupportedRequest
from alignlab.models.base import Backend, Chat, GenerateRequest

_MAX_BODY = 64 << 20
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


class _BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class AlignlabHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, backend: Backend, model_name: str | None = None, quiet: bool = False):
        super().__init__(address, _Handler)
        self.backend = backend
        self.model_name = model_name or backend.spec
        self.quiet = quiet
        self.lock = threading.Lock()
        self.created = int(time.time())
        self._fingerprint: str | None = None

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            with self.lock:
                self._fingerprint = self.backend.fingerprint()
        return self._fingerprint


def make_server(
    backend: Backend,
    host: str = "127.0.0.1",
    port: int = 0,
    model_name: str | None = None,
    quiet: bool = False,
) -> AlignlabHTTPServer:
    """A bound server (not yet serving); port 0 picks a free port (see `server.server_address`)."""
    try:
        return AlignlabHTTPServer((host, port), backend, model_name=model_name, quiet=quiet)
    except OSError as exc:
        raise AlignlabError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def serve(
    backend: Backend,
    host: str = "127.0.0.1",
    port: int = 0,
    model_name: str | None = None,
    quiet: bool = True,
) -> tuple[AlignlabHTTPServer, threading.Thread]:
    """Serve in a daemon thread; stop with `server.shutdown(); server.server_close()`."""
    server = make_server(backend, host, port, model_name=model_name, quiet=quiet)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="alignlab-serve", daemon=True
    )
    thread.start()
    return server, thread


def base_url(server: AlignlabHTTPServer) -> str:
    host, port = server.server_address[:2]
    host = f"[{host}]" if ":" in str(host) else host
    return f"http://{host}:{port}/v1"


# ---- CLI ----------------------------------------------------------------------------------------------


def register(subparsers) -> argparse.ArgumentParser:
    """Add `serve` to the CLI's subparsers (its `func` default is `run`)."""
    from alignlab.models import SPEC_HELP
    from alignlab.models.bundled import DEFAULT_MODEL

    parser = subparsers.add_parser(
        "serve",
        help="serve a model over an OpenAI-compatible HTTP API",
        description="Serve a model over an OpenAI-compatible HTTP API (/v1/models, /v1/completions, "
        "/v1/chat/completions). No authentication: keep the default host 127.0.0.1 unless you know why not.",
    )
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"model spec: {SPEC_HELP} (default: %(default)s)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8000, help="port (default: %(default)s; 0 picks a free one)"
    )
    parser.add_argument("--name", default=None, help="model id clients must send (default: the spec)")
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from alignlab.models import load_model

    backend = load_model(args.model)
    server = make_server(backend, args.host, args.port, model_name=args.name, quiet=args.quiet)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.host} without authentication", file=sys.stderr)
    print(
        f"serving {server.model_name!r} at {base_url(server)} "
        f"(e.g. --model openai:{server.model_name}@{base_url(server)}); Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


# ---- request handling ---------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: AlignlabHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        if not self.server.quiet:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        if path == "/v1/models":
            self._send(200, {"object": "list", "data": [self._card()]})
        elif path == "/v1/models/" + self.server.model_name:
            self._send(200, self._card())
        elif path in ("/health", "/v1/health"):
            self._send(200, {"status": "ok"})
        else:
            self._error(404, f"no such endpoint: GET {path}")

    def do_POST(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        routes = {"/v1/completions": self._completions, "/v1/chat/completions": self._chat}
        try:
            body = self._read_json()
            if path not in routes:
                raise _BadRequest(f"no such endpoint: POST {path}", 404)
            self._check_common(body)
            self._send(200, routes[path](body))
        except _BadRequest as exc:
            self._error(exc.status, str(exc))
        except AlignlabError as exc:
            self._error(400, str(exc))
        except Exception as exc:  # a bug in the backend: answer 500 and keep serving
            self.log_error("%s on %s: %s", type(exc).__name__, path, exc)
            self._error(500, f"{type(exc).__name__}: {exc}", "server_error")

    # -- plumbing

    def _card(self) -> dict:
        return {
            "id": self.server.model_name,
            "object": "model",
            "created": self.server.created,
            "owned_by": "alignlab",
            "root": self.server.backend.spec,
            "alignlab_fingerprint": self.server.fingerprint(),
        }

    def _read_json(self) -> dict:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise _BadRequest("bad Content-Length header") from None
        if length > _MAX_BODY:
            raise _BadRequest(f"request body over {_MAX_BODY} bytes", 413)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise _BadRequest(f"request body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise _BadRequest("request body must be a JSON object")
        return body

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        self._send(status, {"object": "error", "error": {"message": message, "type": kind, "code": status}})

    def _check_common(self, body: dict) -> None:
        model = body.get("model")
        if model is not None and model != self.server.model_name:
            raise _BadRequest(f"model {model!r} is not served here (serving {self.server.model_name!r})", 404)
        if body.get("stream"):
            raise _BadRequest("streaming is not supported")
        if body.get("n", 1) not in (1, None):
            raise _BadRequest("only n=1 is supported")

    def _sampling(self, body: dict, default_max_tokens: int | None) -> dict:
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
        if max_tokens is None:
            max_tokens = default_max_tokens
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 0:
            raise _BadRequest(f"max_tokens must be a non-negative integer, got {max_tokens!r}")
        stop = body.get("stop")
        if stop is None:
            stop = ()
        elif isinstance(stop, str):
            stop = (stop,)
        elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
            stop = tuple(s for s in stop if s)
        else:
            raise _BadRequest("stop must be a string or a list of strings")
        try:
            temperature = float(1.0 if body.get("temperature") is None else body["temperature"])
            top_p = float(1.0 if body.get("top_p") is None else body["top_p"])
            seed = int(0 if body.get("seed") is None else body["seed"])
        except (TypeError, ValueError) as exc:
            raise _BadRequest(f"bad sampling parameter: {exc}") from None
        return {
            "max_tokens": max_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "stop": stop,
            "seed": seed,
        }

    def _generate(self, prompt: str | Chat, sampling: dict) -> tuple[str, str]:
        backend = self.server.backend
        if "generate" not in backend.capabilities:
            raise _BadRequest(f"model {backend.spec!r} does not support generation")
        request = GenerateRequest(prompt=prompt, **sampling)
        with self.server.lock:
            result = backend.generate([request])[0]
        if result.error:  # e.g. a prompt longer than the context window: the client's to fix
            raise _BadRequest(result.error)
        return result.text, result.finish_reason

    def _token_logprobs(self, text: str, top: int) -> list[tuple[str, float | None, dict | None]]:
        """(token, logprob, top alternatives or None) of every token of `text`; with `top` > 0 the backend's
        `top_token_logprobs` where it has them (otherwise the alternatives stay None, as before)."""
        backend = self.server.backend
        with self.server.lock:
            try:
                if top > 0:
                    try:
                        rows = backend.top_token_logprobs(text, top)
                        return [(str(t), None if lp is None else float(lp), alts) for t, lp, alts in rows]
                    except UnsupportedRequest:
                        pass
                pieces = backend.token_logprobs(text)
            except UnsupportedRequest as exc:
                raise _BadRequest(str(exc)) from exc
            return [(str(t), None if lp is None else float(lp), None) for t, lp in pieces]

    # -- endpoints

    def _completions(self, body: dict) -> dict:
        prompts = body.get("prompt")
        if isinstance(prompts, str):
            prompts = [prompts]
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise _BadRequest(
                "prompt must be a string or a non-empty list of strings (token ids are not supported)"
            )
        sampling = self._sampling(body, default_max_tokens=16)
        echo = bool(body.get("echo"))
        want_logprobs = body.get("logprobs") not in (None, False)
        # the completions API's `logprobs: k` asks for the k most likely tokens too (at most 5)
        top = (
            body["logprobs"] if isinstance(body.get("logprobs"), int) and body["logprobs"] is not True else 0
        )
        if not 0 <= top <= 5:
            raise _BadRequest("logprobs must be an integer from 0 to 5")
        choices, prompt_tokens, completion_tokens = [], 0, 0
        for index, prompt in enumerate(prompts):
            if sampling["max_tokens"] == 0:
                generated, finish = "", "length"
            else:
                generated, finish = self._generate(prompt, sampling)
            logprobs = None
            if want_logprobs:
                pieces = self._token_logprobs(prompt + generated, top)
                offsets = _offsets([t for t, _, _ in pieces], prompt + generated)
                rows = list(zip(pieces, offsets, strict=True))
                prompt_tokens += sum(1 for _, o in rows if o < len(prompt))
                completion_tokens += sum(1 for _, o in rows if o >= len(prompt)) if generated else 0
                if not echo:
                    rows = [row for row in rows if row[1] >= len(prompt)] if generated else []
                tops = [alts for (_, _, alts), _ in rows]
                logprobs = {
                    "tokens": [t for (t, _, _), _ in rows],
                    "token_logprobs": [lp for (_, lp, _), _ in rows],
                    "text_offset": [o for _, o in rows],
                    "top_logprobs": tops if any(a is not None for a in tops) else None,
                }
            text = (prompt if echo else "") + generated
            choices.append({"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish})
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": self.server.model_name,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def _chat(self, body: dict) -> dict:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _BadRequest("messages must be a non-empty list")
        turns = []
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in _ROLES:
                raise _BadRequest(f"messages[{i}]: role must be one of {', '.join(_ROLES)}")
            turns.append((_ROLES[message["role"]], _content(message.get("content"), i)))
        if body.get("logprobs"):
            raise _BadRequest("logprobs are not supported on chat completions")
        prefill = ""
        if body.get("continue_final_message"):
            if turns[-1][0] != "assistant":
                raise _BadRequest("continue_final_message needs a final assistant message")
            prefill = turns.pop()[1]
        sampling = self._sampling(body, default_max_tokens=256)
        text, finish = self._generate(Chat(messages=tuple(turns), prefill=prefill), sampling)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.server.model_name,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
            ],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }


def _content(content: Any, index: int) -> str:
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list):
        parts = []
        for part in content:
            if (
                not isinstance(part, dict)
                or part.get("type") != "text"
                or not isinstance(part.get("text"), str)
            ):
                raise _BadRequest(f"messages[{index}]: only text content parts are supported")
            parts.append(part["text"])
        return "".join(parts)
    raise _BadRequest(f"messages[{index}]: content must be a string or a list of text parts")


def _offsets(texts: list[str], text: str) -> list[int]:
    """Character offset of each token in `text`, from the tokens' texts.

    A leading special token whose text is not in `text` (e.g. "<s>") is given width 0.
    """
    joined = "".join(texts)
    shift = len(joined) - len(text) if len(joined) > len(text) and joined.endswith(text) else 0
    offsets, position = [], 0
    for token in texts:
        offsets.append(max(0, position - shift))
        position += len(token)
    return offsets
