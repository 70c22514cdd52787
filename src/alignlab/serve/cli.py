"""`alignlab serve --model SPEC [--host H] [--port P] [--name ID] [--quiet]`."""

from __future__ import annotations

import argparse
import logging
import sys


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
    parser.add_argument("--name", default=None, help="model id clients must send (default: the spec)")
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

    sock = bind(
        args.host, args.port
    )  # before loading the model: a taken port fails in a second, not a minute
    backend = load_model(args.model)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
    served_log = logging.getLogger("alignlab.serve")
    served_log.addHandler(handler)
    served_log.setLevel(logging.INFO)
    served_log.propagate = False
    server = RunningServer(backend, sock, model_name=args.name, quiet=args.quiet, api=args.api)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.host} without authentication", file=sys.stderr)
    print(
        f"serving {server.model_name!r} at {server.base_url} "
        f"(e.g. --model openai:{server.model_name}@{server.base_url}); Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )
    server.run()  # uvicorn handles Ctrl-C: it finishes answering, then returns
    return 0
