"""The app factory: ``create_app(settings)`` builds; the lifespan does the I/O.

Startup opens the prediction log (migrations, spool replay, writer threads) and loads,
verifies and warms every model; shutdown flushes the log within the drain deadline.
Importing this module does nothing.

Routes, in matching order: the predict routes of both protocols first (they carry the
load), then the rest. Every request goes through one pipeline (serving/pipeline.py): id,
limits, auth, metrics, error rendering. Swagger UI and ReDoc are served from the
fastapi-offline package's own assets, so /docs works without internet.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from serving import errors, openapi
from serving.catalog import ModelCatalog
from serving.inference import InferenceCore
from serving.metrics import Metrics
from serving.monitoring.drift import MIN_ROWS
from serving.monitoring.gauges import MonitoringGauges, Refresher
from serving.monitoring.registry import Registry
from serving.pipeline import RequestPipeline
from serving.predlog import open_log
from serving.routes import feedback, metrics, models, monitoring, predict, predictions, probes
from serving.settings import Settings
from serving.state import AppState
from serving.v2 import routes as v2

logger = logging.getLogger("serving")

VERSION = "0.2.0"
DESCRIPTION = """\
scikit-learn models behind a validated API: our REST protocol (`/predict`,
`/models/{name}/predict`) and the Open Inference Protocol (`/v2/...`). Every prediction is
logged (PostgreSQL or SQLite) before its response is sent. See GET /models for what is
served and GET /models/{name} for a model's typed feature schema.
"""


def create_app(settings: Settings, *, worker: int | None = None) -> FastAPI:
    """The app; ``worker`` is the slot of a worker process of ``serve --workers N``."""
    metrics_ = Metrics()
    log = open_log(settings, metrics_.registry)
    metrics_.add_sampler(log.sample_metrics)
    catalog = ModelCatalog(settings, metrics_, log)
    core = InferenceCore(catalog, metrics_)
    state = AppState(settings, metrics_, log, catalog, core, worker=worker)
    state.refresher = Refresher(
        catalog,
        log,
        MonitoringGauges(metrics_.registry),
        Registry(settings.models_dir),
        window=settings.monitoring_window_seconds,
        min_rows=MIN_ROWS,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, AppState]]:
        await asyncio.to_thread(state.log.start)
        await catalog.load_all()
        settle_heap()
        _handle_sighup(catalog)
        background = [
            task
            for task in (_start_monitoring(state), _start_retrying(state), _start_sampling(state))
            if task is not None
        ]
        try:
            yield {"app": state}
        finally:
            for task in background:
                task.cancel()
            state.draining = True
            started = time.monotonic()
            spent = started - (state.drain_started or started)
            remaining = max(1.0, state.settings.drain_seconds - spent)
            await asyncio.to_thread(state.log.close, remaining)
            logger.info("prediction log closed in %.2f s", time.monotonic() - started)

    app = FastAPIOffline(
        title="skship",
        version=VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        # Metrics are Prometheus (/metrics); FastAPI's OpenTelemetry hooks would only
        # cost time on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.skship = state
    catalog.on_change = lambda: setattr(app, "openapi_schema", None)
    errors.install_handlers(app)
    max_rows = settings.max_batch_rows
    app.router.routes[:0] = [*predict.routes(core, max_rows), *v2.infer_routes(core, max_rows)]
    routers = (probes, models, predictions, feedback, monitoring, metrics, v2)
    for module in routers:
        app.include_router(module.router)
    openapi.install(app, catalog, max_rows, has_keys=bool(settings.api_keys))
    app.add_middleware(RequestPipeline, settings=settings, metrics=metrics_)
    return app


def app_state(app: FastAPI) -> AppState:
    """The state of an app built by create_app (for the server and tests)."""
    state: AppState = app.state.skship
    return state


def _start_monitoring(state: AppState) -> asyncio.Task[None] | None:
    """The drift and quality gauges' refresher (docs/monitoring.md), unless turned off.
    With workers only slot 0 refreshes: the others would ask the database the same."""
    settings = state.settings
    refresher = state.refresher
    if refresher is None or settings.monitoring_interval_seconds <= 0:
        return None
    if state.worker not in (None, 0):
        return None
    if not settings.log_predictions:
        return None
    return asyncio.ensure_future(refresher.forever(settings.monitoring_interval_seconds))


def _start_sampling(state: AppState) -> asyncio.Task[None] | None:
    """In a worker of ``serve --workers N``: its gauges, fresh for scrapes others answer."""
    if not state.metrics.multiprocess:
        return None
    return asyncio.ensure_future(state.metrics.sample_periodically())


def _start_retrying(state: AppState) -> asyncio.Task[None] | None:
    """Models with nothing loaded are tried again (MODEL_RETRY_SECONDS)."""
    interval = state.settings.model_retry_seconds
    if interval <= 0:
        return None
    return asyncio.ensure_future(state.catalog.retry_forever(interval))


def _handle_sighup(catalog: ModelCatalog) -> None:
    """SIGHUP reloads every model, like a bodiless POST /admin/reload."""

    running: set[asyncio.Task[object]] = set()

    def reload_in_background() -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(catalog.load_all())
        running.add(task)
        # Outcomes are logged and counted by the catalog; retrieve them so asyncio doesn't.
        task.add_done_callback(forget)

    def forget(task: asyncio.Task[object]) -> None:
        running.discard(task)
        if not task.cancelled():
            task.exception()

    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload_in_background)


def settle_heap() -> None:
    """Move everything alive after startup (modules, models) out of the collector's sight.

    scikit-learn, pandas, SciPy and skops leave a heap of about a million objects that every
    full collection walks; under load that is a pause of about 100 ms every few seconds, the
    whole p99 of 1-row requests (`make bench`: 106 ms against 10 ms with the collector off).
    ``gc.freeze`` puts them in the permanent generation: reference counting still frees them,
    only the cycle collector skips them (what CPython's docs recommend for long-lived heaps).
    """
    gc.collect()
    gc.freeze()
