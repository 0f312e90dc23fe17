"""Run the app under uvicorn with the shutdown contract of DESIGN.md.

SIGTERM (or SIGINT): readiness turns 503 at once, uvicorn stops accepting connections and
lets in-flight requests finish, the lifespan flushes the prediction log, and the process
exits 0 within the drain deadline. uvicorn 0.54 re-raises the signal after its own clean
shutdown (so a plain ``uvicorn.run`` dies with -15); this server does not.
SIGHUP reloads the model (see serving/app.py).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Generator
from types import FrameType

import uvicorn

from serving.app import app_state, create_app
from serving.connections import ConnectionLimits, protocol_class
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
    """Serve until a signal; 0 after a clean shutdown, 1 if startup failed."""
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(settings)
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
    server = DrainingServer(config, app_state(app))
    server.run()
    return 0 if server.started else 1
