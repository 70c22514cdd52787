"""`alignlab serve`: any alignlab backend behind an OpenAI-compatible HTTP API.

`serve(backend)` starts a server in a background thread (tests, notebooks); `alignlab serve --model SPEC`
runs one in the foreground (`serve.cli`). The app is in `serve.app`, the API's fields in `serve.openai_api`,
and the model's thread, which batches concurrent requests, in `serve.batcher`. There is no authentication:
the server binds to 127.0.0.1 unless told otherwise. Stopping answers waiting clients 503 at once and does
not wait for a running generation (it ends with the process).
"""

from __future__ import annotations

import socket
import threading
import time

from alignlab.errors import AlignlabError
from alignlab.models.base import Backend
from alignlab.serve.app import make_app
from alignlab.serve.batcher import Batcher

__all__ = ["RunningServer", "bind", "make_app", "serve"]


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: a free one), or a one-line error naming the address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise AlignlabError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


class RunningServer:
    """uvicorn serving the app on a bound socket; `run()` in the foreground or `start()` in a thread."""

    def __init__(
        self,
        backend: Backend,
        sock: socket.socket,
        model_name: str | None = None,
        quiet: bool = False,
        api: str = "full",
    ):
        import uvicorn

        self.sock = sock
        self.batcher = Batcher(backend)
        self.app = make_app(backend, model_name, self.batcher, api=api)
        self.model_name = self.app.state.model_name
        config = uvicorn.Config(
            self.app,
            log_level="warning" if quiet else "info",
            access_log=not quiet,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self._stop_batcher_first(self.server)
        self._thread: threading.Thread | None = None

    def _stop_batcher_first(self, server) -> None:
        """Stop the batcher as uvicorn starts its shutdown: waiting clients get their 503 at once, rather than
        holding their connections (and the shutdown) until the graceful timeout."""
        shutdown = server.shutdown

        async def shutdown_after_stop(sockets=None) -> None:
            self.batcher.stop()
            await shutdown(sockets=sockets)

        server.shutdown = shutdown_after_stop

    @property
    def base_url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{port}/v1"

    def run(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        finally:
            self.batcher.close()

    def start(self) -> RunningServer:
        self._thread = threading.Thread(target=self.run, name="alignlab-serve", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise AlignlabError(f"the server at {self.base_url} did not start")
            time.sleep(0.01)
        return self

    def close(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.sock.close()


def serve(
    backend: Backend,
    host: str = "127.0.0.1",
    port: int = 0,
    model_name: str | None = None,
    quiet: bool = True,
    api: str = "full",
) -> RunningServer:
    """Serve in a background thread; `.base_url` is where, `.close()` stops it. `api`: see `make_app`."""
    return RunningServer(backend, bind(host, port), model_name=model_name, quiet=quiet, api=api).start()
