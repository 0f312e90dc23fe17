"""What the app holds while it runs: settings, metrics, the log, and the model being served.

The model is swapped by replacing one reference. A request takes that reference once,
at its start, so it finishes on the model it started with even if a reload lands
meanwhile; the old model is freed when its last request is done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from serving.artifact import ArtifactError
from serving.batching import MicroBatcher
from serving.metrics import Metrics
from serving.model import LoadedModel
from serving.predlog.records import PredictionLog
from serving.settings import Settings

logger = logging.getLogger("serving")


@dataclass
class AppState:
    """Shared by every request of one app; mutated only on the event loop."""

    settings: Settings
    metrics: Metrics
    log: PredictionLog
    batcher: MicroBatcher | None = None
    load_error: str | None = None
    draining: bool = False
    drain_started: float | None = None
    """time.monotonic() of the shutdown signal; the log's flush gets what is left."""
    on_model_change: Callable[[], None] = lambda: None
    _reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def model(self) -> LoadedModel | None:
        return self.batcher.model if self.batcher is not None else None

    def install(self, model: LoadedModel) -> None:
        """Serve ``model`` from now on (atomic: one reference assignment)."""
        self.batcher = MicroBatcher(model, self.settings.batch_max_rows, self.metrics, self.log)
        self.load_error = None
        self.metrics.set_model(model.name, model.version, model.artifact.digest)
        self.on_model_change()

    async def load_initial(self) -> None:
        """Load the configured model at startup; on failure keep serving 503 with the reason."""
        try:
            model = await asyncio.to_thread(
                LoadedModel.load, self.settings, self.settings.model_version
            )
        except ArtifactError as exc:
            self.load_error = str(exc)
            logger.error("no model loaded: %s", exc)
            return
        self.install(model)
        logger.info("serving %s version %s", model.name, model.version)

    async def reload(self, version: str | None = None) -> LoadedModel:
        """Load, verify and warm ``version`` (the registry's current one when None) off the
        event loop, then swap. On any failure the old model keeps serving and this raises."""
        async with self._reload_lock:
            try:
                model = await asyncio.to_thread(LoadedModel.load, self.settings, version)
            except ArtifactError as exc:
                self.metrics.reloads.labels("failed").inc()
                logger.error("reload refused, still serving the previous model: %s", exc)
                raise
            self.install(model)
            self.metrics.reloads.labels("ok").inc()
            logger.info("reloaded: now serving %s version %s", model.name, model.version)
            return model
