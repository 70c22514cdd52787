"""A proxy on 127.0.0.1 in front of an OpenAI-compatible server that injects faults, for tests.

`FaultServer(upstream_base_url, rate=0.3, seed=1)` forwards every request to the upstream server and, for a
`rate` share of them (a seeded RNG draws whether and which), answers with a fault instead:

    429          429 with Retry-After: 0               429-bare  429 without Retry-After
    500/502/503  that status with an OpenAI error      drop      the socket closed without an answer
    slow         no answer until after `slow_s` (past the client's timeout), then closed
    truncated    the upstream's 200 answer, its JSON cut in half
    no-logprobs  the upstream's 200 answer with each choice's `logprobs` set to null (only on a completions
                 request that asked for logprobs)

`injected` counts the faults by kind, `requests` every request seen (path and method), both under a lock.
`require_key`: answer 401 to a request without that bearer key (the answer echoes the key it got, as some
servers do, so a client must scrub it). The server speaks HTTP/1.0 (one connection per request), so a
dropped connection never takes a later request with it.
"""

from __future__ import annotations

import collections
import hashlib
import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import httpx

from alignlab.models.base import BackendBase, GenerateResult, ScoreResult

KINDS = ("429", "429-bare", "500", "502", "503", "drop", "slow", "truncated", "no-logprobs")
STATUS_FAULTS = {"429": 429, "429-bare": 429, "500": 500, "502": 502, "503": 503}


class FaultServer:
    def __init__(
        self,
        upstream: str,
        rate: float = 0.0,
        seed: int = 0,
        kinds: tuple[str, ...] = KINDS,
        slow_s: float = 1.0,
        require_key: str | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        self.upstream_root = f"{parts.scheme}://{parts.netloc}"
        self.rate, self.kinds, self.slow_s, self.require_key = rate, kinds, slow_s, require_key
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.injected: collections.Counter[str] = collections.Counter()
        self.requests: list[tuple[str, str]] = []
        self.client = httpx.Client(timeout=120)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def root(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        return self.root + "/v1"

    def draw(self, method: str, path: str, body: dict | None) -> str | None:
        """The fault for this request, or None; drawn under the lock so a seed gives one sequence."""
        asked_logprobs = (
            isinstance(body, dict) and bool(body.get("logprobs")) and path.endswith("completions")
        )
        kinds = [k for k in self.kinds if k != "no-logprobs" or asked_logprobs]
        if method == "GET":
            kinds = [k for k in kinds if k != "no-logprobs"]
        with self.lock:
            self.requests.append((method, path))
            if not kinds or self.rng.random() >= self.rate:
                return None
            kind = self.rng.choice(kinds)
            self.injected[kind] += 1
            return kind

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.client.close()


def _handler(server: FaultServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *args) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            self.handle_any("GET")

        def do_POST(self) -> None:
            self.handle_any("POST")

        def handle_any(self, method: str) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            auth = self.headers.get("Authorization") or ""
            if server.require_key is not None and auth != f"Bearer {server.require_key}":
                with server.lock:
                    server.requests.append((method, self.path))
                got = auth.removeprefix("Bearer ")
                self.answer(401, json.dumps({"error": {"message": f"Incorrect API key provided: {got}"}}))
                return
            fault = server.draw(method, self.path, body)
            if fault in STATUS_FAULTS:
                headers = {"Retry-After": "0"} if fault == "429" else {}
                self.answer(
                    STATUS_FAULTS[fault], json.dumps({"error": {"message": f"fault {fault}"}}), headers
                )
                return
            if fault in ("drop", "slow"):
                if fault == "slow":
                    time.sleep(server.slow_s)
                self.close_connection = True  # nothing written: the client sees the connection end
                return
            upstream = server.client.request(
                method,
                server.upstream_root + self.path,
                content=raw,
                headers={"Content-Type": self.headers.get("Content-Type") or "application/json"},
            )
            content = upstream.content
            if fault == "truncated":
                content = content[: len(content) // 2]
            elif fault == "no-logprobs":
                data = upstream.json()
                for choice in data.get("choices", []):
                    choice["logprobs"] = None
                content = json.dumps(data).encode()
            self.answer(upstream.status_code, content)

        def answer(self, status: int, content: str | bytes, headers: dict | None = None) -> None:
            data = content.encode() if isinstance(content, str) else content
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


class CharModel(BackendBase):
    """A fast stand-in to serve: tokens are characters, each one's logprob a hash of it and the 8 before (so
    scores depend on context); generated text a hash of (prompt, seed)."""

    capabilities = frozenset({"score", "generate"})
    parameters = 1000

    def __init__(self, spec: str = "char-model") -> None:
        self.spec = spec

    def fingerprint(self) -> str:
        return f"char:{self.spec}"

    def info(self) -> dict:
        return {"backend": "char", "parameters": self.parameters}

    def token_logprobs(self, text: str) -> list[tuple[str, float | None]]:
        return [(c, None if i == 0 else _logprob(text[max(0, i - 8) : i + 1])) for i, c in enumerate(text)]

    def score(self, requests):
        return [
            ScoreResult(
                logprobs=[
                    sum(_logprob((r.prompt + c)[: len(r.prompt) + j + 1][-9:]) for j in range(len(c)))
                    for c in r.continuations
                ],
                num_tokens=[len(c) for c in r.continuations],
            )
            for r in requests
        ]

    def generate(self, requests):
        out = []
        for r in requests:
            digest = hashlib.sha256(f"{r.prompt}|{r.seed}".encode()).hexdigest()
            words = " ".join(digest[i : i + 4] for i in range(0, 40, 4))
            out.append(GenerateResult(text=" " + words[: r.max_tokens], finish_reason="stop"))
        return out


def _logprob(window: str) -> float:
    digest = hashlib.sha256(window.encode()).digest()
    return -0.05 - 6.0 * int.from_bytes(digest[:4], "big") / 2**32
