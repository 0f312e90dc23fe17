"""The app factory: ``create_app(settings)`` builds; the lifespan does the I/O.

Startup opens the prediction log (migrations, spool replay, writer thread) and loads,
verifies and warms the model; shutdown flushes the log within the drain deadline.
Importing this module does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI

from serving import errors, openapi
from serving.metrics import Metrics
from serving.middleware import BodyLimitMiddleware, RequestContextMiddleware
from serving.predict_endpoint import PredictEndpoint
from serving.predlog import open_log
from serving.routes import metrics, model, predictions, probes
from serving.settings import Settings
from serving.state import AppState

logger = logging.getLogger("serving")

DESCRIPTION = """\
A scikit-learn model behind a validated API. Every prediction is logged (PostgreSQL or
SQLite) before its response is sent. See GET /model for the feature schema.
"""


def create_app(settings: Settings) -> FastAPI:
    metrics_ = Metrics()
    state = AppState(settings, metrics_, open_log(settings, metrics_.registry))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, AppState]]:
        await asyncio.to_thread(state.log.start)
        await state.load_initial()
        _handle_sighup(state)
        try:
            yield {"app": state}
        finally:
            state.draining = True
            started = time.monotonic()
            spent = started - (state.drain_started or started)
            remaining = max(1.0, state.settings.drain_seconds - spent)
            await asyncio.to_thread(state.log.close, remaining)
            logger.info("prediction log closed in %.2f s", time.monotonic() - started)

    app = FastAPI(
        title="skship",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # Metrics are Prometheus (/metrics); FastAPI's OpenTelemetry hooks would only
        # cost time on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.skship = state
    state.on_model_change = lambda: setattr(app, "openapi_schema", None)
    errors.install_handlers(app)
    for router in (probes.router, model.router, predictions.router, metrics.router):
        app.include_router(router)
    openapi.install(app, lambda: state.model, settings.max_batch_rows)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware, metrics=metrics_)
    app.add_middleware(PredictEndpoint, state=state)  # outermost: the hot path
    return app


def app_state(app: FastAPI) -> AppState:
    """The state of an app built by create_app (for the server and tests)."""
    state: AppState = app.state.skship
    return state


def _handle_sighup(state: AppState) -> None:
    """SIGHUP reloads the registry's current version, like POST /admin/reload."""

    running: set[asyncio.Task[object]] = set()

    def reload_in_background() -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(state.reload())
        running.add(task)
        # The outcome is logged and counted by state.reload; retrieve it so asyncio doesn't.
        task.add_done_callback(forget)

    def forget(task: asyncio.Task[object]) -> None:
        running.discard(task)
        if not task.cancelled():
            task.exception()

    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload_in_background)
