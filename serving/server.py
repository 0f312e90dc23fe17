"""Run the app under uvicorn with the shutdown contract of docs/serving.md ("Signals").

SIGTERM (or SIGINT): readiness turns 503 at once, uvicorn stops accepting connections and
lets in-flight requests finish, the lifespan flushes the prediction log, and the process
exits 0 within the drain deadline. uvicorn 0.54 re-raises the signal after its own clean
shutdown (so a plain ``uvicorn.run`` dies with -15); this server does not.
SIGHUP reloads the model (see serving/app.py).

With ``WORKERS`` > 1 the socket is bound here all the same, then handed to a supervisor
(serving/supervisor.py) whose worker processes each run ``serve`` below.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import time
from collections.abc import Callable, Generator
from pathlib import Path
from types import FrameType

import uvicorn

from serving import slots
from serving.app import app_state, create_app
from serving.connections import ConnectionLimits, protocol_class
from serving.predlog.spool import SpoolLockedError
from serving.settings import Settings
from serving.state import AppState

logger = logging.getLogger("serving")


class DrainingServer(uvicorn.Server):
    """uvicorn.Server that marks the app draining on the first signal and exits cleanly."""

    def __init__(self, config: uvicorn.Config, state: AppState) -> None:
        super().__init__(config)
        self._state = state

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self._state.draining:
            self._state.draining = True
            self._state.drain_started = time.monotonic()
            logger.info("signal %d: draining (readiness 503), finishing in-flight requests", sig)
            # Log queries would hold up the drain: cancel them now (returns at once).
            self._state.log.cancel_queries()
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        with super().capture_signals():
            try:
                yield
            finally:
                # A graceful shutdown on a signal is success: do not re-raise it.
                self._captured_signals.clear()


def run(settings: Settings) -> int:
    """Serve until a signal; 0 after a clean shutdown, 1 if startup failed, 2 for a
    misconfiguration reported in one line (port or spool folder in use)."""
    configure_logging(settings)
    try:
        sock = listen(settings.host, settings.port)
        spool = claim_spool(settings.spool_dir, settings.workers)
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if settings.workers > 1:
        from serving.supervisor import supervise  # noqa: PLC0415 - imports this module

        return supervise(settings, sock, spool)
    spool.release()  # the log's spool takes the folder's lock itself
    return serve(settings, sock)


def configure_logging(settings: Settings, worker: int | None = None) -> None:
    where = "" if worker is None else f" [worker {worker}]"
    logging.basicConfig(
        level=settings.log_level.upper(),
        format=f"%(asctime)s %(levelname)s %(name)s{where}: %(message)s",
    )
    # The pool logs every failed connection attempt (several a second while a database is
    # down); the log's writer reports each change of the store's state once instead.
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)


def serve(
    settings: Settings,
    sock: socket.socket,
    *,
    worker: int | None = None,
    server_class: Callable[[uvicorn.Config, AppState], DrainingServer] = DrainingServer,
) -> int:
    """Run the app on the bound ``sock`` until a signal (the one process, or one worker)."""
    app = create_app(settings, worker=worker)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        access_log=settings.access_log,
        log_level=settings.log_level,
        timeout_graceful_shutdown=int(max(1, settings.drain_seconds)),
        server_header=False,
        # Header, body, idle and connection limits (serving/connections).
        http=protocol_class(ConnectionLimits.from_settings(settings)),
        timeout_keep_alive=settings.keepalive_timeout_seconds,
        ws="none",  # no WebSocket routes: an upgrade request is served as plain HTTP
    )
    server = server_class(config, app_state(app))
    with sock:
        server.run(sockets=[sock])
    return 0 if server.started else 1


class StartupError(Exception):
    """A misconfiguration found before starting: one line, exit code 2."""


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything else starts, so that a port in use is one
    clear line instead of a failure after the models and the log were loaded."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise StartupError(
            f"cannot listen on {host}:{port}: {exc.strerror}; is another server running "
            "there? Stop it, or choose another port with PORT=... or --port"
        ) from None
    sock.set_inheritable(True)
    return sock


def claim_spool(directory: Path, workers: int) -> slots.SpoolClaim:
    """One server owns a spool folder; say so now rather than fail at startup. Segments left
    in folders this start will not open (another WORKERS) are adopted (serving/slots.py)."""
    try:
        return slots.claim(directory, workers)
    except SpoolLockedError as exc:
        raise StartupError(f"{exc} (SPOOL_DIR)") from None
    except OSError as exc:
        raise StartupError(f"cannot use the spool folder {directory}: {exc} (SPOOL_DIR)") from None
