"""`alignlab serve --model SPEC [--host H] [--port P] [--name ID] [--quiet]`.

The served name (the model id clients send) defaults to the spec where a client's spec `openai:NAME@URL`
can carry it, else to the model's own name (`openai:x@URL` serves `x`): such a spec splits at the first
'@http', so `openai:openai:x@http://A@http://B` cannot name it. The backend's `check()` runs before serving,
so an upstream server that does not serve the model fails at start, in one line.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import NoReturn

from alignlab.errors import AlignlabError

_PROBE_URL = "http://127.0.0.1:8000/v1"  # any URL: a spec splits at the first '@http', whatever follows


def register(subparsers) -> argparse.ArgumentParser:
    """Add `serve` to the CLI's subparsers (its `func` default is `run`)."""
    from alignlab import option_types
    from alignlab.models import SPEC_HELP
    from alignlab.models.bundled import DEFAULT_MODEL

    parser = subparsers.add_parser(
        "serve",
        help="serve a model over an OpenAI-compatible HTTP API",
        description="Serve a model over an OpenAI-compatible HTTP API (/v1/models, /v1/completions, "
        "/v1/chat/completions); concurrent requests are batched. No authentication: keep the default host "
        "127.0.0.1 unless you know why not.",
    )
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"model spec: {SPEC_HELP} (default: %(default)s)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument(
        "--port", type=option_types.port, default=8000, help="port (default: %(default)s; 0 picks a free one)"
    )
    parser.add_argument(
        "--name",
        default=None,
        help="model id clients must send (default: the spec, or the model's own name where the spec holds a "
        "server URL)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    parser.add_argument(
        "--api",
        choices=("full", "chat-only", "no-logprobs"),
        default="full",
        help="answer as another API would, to test a client against it: chat-only (no /v1/completions, "
        "top logprobs on chat, as OpenAI's chat models) or no-logprobs (chat without any logprobs, as "
        "Anthropic's API) (default: %(default)s)",
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from alignlab.models import load_model
    from alignlab.serve import RunningServer, bind

    if args.name is not None:
        check_name(args.name)
    sock = bind(
        args.host, args.port
    )  # before loading the model: a taken port fails in a second, not a minute
    try:
        backend = load_model(args.model)
        backend.check()  # e.g. an upstream server without the model: its one-line error, before serving
    except BaseException:
        sock.close()
        raise
    name = args.name if args.name is not None else default_name(backend.spec)
    _log_to_stderr()
    server = RunningServer(backend, sock, model_name=name, quiet=args.quiet, api=args.api)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.host} without authentication", file=sys.stderr)
    print(
        f"serving {name!r} at {server.base_url} (e.g. --model {client_spec(name, server.base_url)}); "
        "Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )
    code = 0
    try:
        server.run()  # Ctrl-C: waiting clients get a 503, a running generation is abandoned
    except KeyboardInterrupt:  # uvicorn raises it again once stopped; nothing is left to save
        code = 130
    if server.batcher.abandoned:
        _exit_now(code)
    return code


def _exit_now(code: int) -> NoReturn:
    """End the process without Python's teardown: freeing the model's runtime under the generation still
    running on the abandoned thread aborts it ("terminate called without an active exception")."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _log_to_stderr() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
    served_log = logging.getLogger("alignlab.serve")
    served_log.addHandler(handler)
    served_log.setLevel(logging.INFO)
    served_log.propagate = False


def client_spec(name: str, url: str) -> str:
    """The model spec an alignlab client uses for model `name` served at `url`."""
    return f"openai:{name}@{url}"


def spec_carries(name: str) -> bool:
    """Whether `client_spec(name, ...)` parses back to `name` (it cannot where `name` holds '@http')."""
    from alignlab.models import parse_spec

    try:
        parsed = parse_spec(client_spec(name, _PROBE_URL))
    except AlignlabError:
        return False
    return parsed.kind == "openai" and parsed.target == name and parsed.url == _PROBE_URL


def check_name(name: str) -> None:
    """Refuse a --name no client could send (empty) or no client spec could carry."""
    if not name.strip():
        raise AlignlabError("--name is empty: give the model id clients are to send, or leave --name out")
    if not spec_carries(name):
        raise AlignlabError(
            f"--name {name!r} cannot be written in a client's model spec openai:NAME@URL (which splits at "
            "the first '@http'): choose a plainer name"
        )


def default_name(spec: str) -> str:
    """The spec where a client's spec can carry it (a bundled name, hf:..., gguf:...), else the model's own
    name: `openai:x@URL` is served as `x`."""
    from alignlab.models import parse_spec, shown_spec

    if spec_carries(spec):
        return spec
    target = parse_spec(spec).target
    if spec_carries(target):
        return target
    raise AlignlabError(f"no plain name to serve {shown_spec(spec)} under: pass --name")
