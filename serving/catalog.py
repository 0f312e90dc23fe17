"""Which models a server serves, and reloading them one by one.

Every model of the registry that has a current version is served (or exactly those named
by ``MODEL_NAMES``), each with its own micro-batcher, version and load state; one that fails
to load is reported (in ``/ready`` and ``/models``) and makes only itself unready. A model
swaps by replacing one reference: a request takes it once, at its start, and finishes on
the version it started with even if a reload lands meanwhile.

A version pinned by ``MODEL_VERSION`` (the default model) or by a reload naming one stays
pinned across reloads until a reload asks for ``"current"``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from serving import artifact
from serving.batching import MicroBatcher
from serving.metrics import Metrics
from serving.model import LoadedModel
from serving.predlog.records import PredictionLog
from serving.settings import Settings

logger = logging.getLogger("serving")

CURRENT = "current"
"""A reload's version that unpins: serve the registry's current version again."""

Outcome = Literal["loaded", "reloaded", "unchanged", "failed"]


@dataclass
class ServedModel:
    """One model name: what it serves now (or why nothing), and its pinned version."""

    name: str
    pinned: str | None = None
    batcher: MicroBatcher | None = None
    error: str | None = None

    @property
    def model(self) -> LoadedModel | None:
        return self.batcher.model if self.batcher is not None else None


@dataclass(frozen=True)
class ReloadResult:
    name: str
    outcome: Outcome
    version: str | None
    previous: str | None
    pinned: bool
    error: str | None = None
    not_found: bool = False
    """The model or version does not exist (as opposed to one that failed to verify)."""


class ModelCatalog:
    """The served models by name; mutated only on the event loop."""

    def __init__(self, settings: Settings, metrics: Metrics, log: PredictionLog) -> None:
        self.settings = settings
        self.metrics = metrics
        self.log = log
        self.default_name = settings.model_name
        self.models: dict[str, ServedModel] = {}
        self.on_change: Callable[[], None] = lambda: None
        self._lock = asyncio.Lock()

    def get(self, name: str) -> ServedModel | None:
        return self.models.get(name)

    @property
    def default(self) -> ServedModel | None:
        """The model of ``POST /predict`` and ``GET /model``: MODEL_NAME when configured, else
        ``breast_cancer`` when served, else the only served model (a registry of one)."""
        if self.default_name in self.models or self._default_configured:
            return self.models.get(self.default_name)
        if len(self.models) == 1:
            return next(iter(self.models.values()))
        return None

    @property
    def _default_configured(self) -> bool:
        return "model_name" in self.settings.model_fields_set

    def names(self) -> list[str]:
        """The models to serve: MODEL_NAMES, else every model with a current version, plus
        a configured MODEL_NAME (so that its absence is reported rather than ignored)."""
        if self.settings.model_names:
            return list(self.settings.model_names)
        found = set(registry_models(self.settings.models_dir)) | set(self.models)
        if self._default_configured or not found:
            found.add(self.default_name)
        return sorted(found)

    async def load_all(self) -> list[ReloadResult]:
        """Load (at startup) or reload (SIGHUP, a bodiless reload) every model; a model that
        fails is kept in the catalog with its error, so that /ready and /models tell why."""
        async with self._lock:
            results = [await self._load(name, None, keep_failed=True) for name in self.names()]
        self.on_change()
        return results

    async def retry_unloaded(self) -> list[ReloadResult]:
        """Load again the models that have nothing loaded (the registry was empty at startup,
        or a version failed): a server started before its training job finished serves once
        the job promotes. Served models are never touched here; that is a reload's job."""
        async with self._lock:
            if any(m.model is not None for m in self.models.values()):
                names = [n for n, m in self.models.items() if m.model is None]
            else:
                names = self.names()
            results = [await self._load(name, None, keep_failed=True) for name in names]
        if any(r.outcome == "loaded" for r in results):
            self.on_change()
        return results

    async def retry_forever(self, interval: float) -> None:
        """``retry_unloaded`` every ``interval`` seconds, until cancelled."""
        while True:
            await asyncio.sleep(interval)
            await self.retry_unloaded()

    async def reload(self, name: str, version: str | None) -> ReloadResult:
        """Load ``version`` of ``name`` (``"current"`` unpins; None keeps the pin). A model
        not served yet joins only when it loads; a failed reload changes nothing."""
        async with self._lock:
            result = await self._load(name, version, keep_failed=False)
        self.on_change()
        return result

    async def _load(self, name: str, version: str | None, *, keep_failed: bool) -> ReloadResult:
        served = self.models.get(name)
        if served is None:
            pinned = self.settings.model_version if name == self.default_name else None
            served = ServedModel(name, pinned=pinned)
        pin = None if version == CURRENT else (version or served.pinned)
        previous = served.model
        try:
            target = pin or artifact.read_current(self.settings.models_dir, name)
            if target is None:  # resolve() explains: no current version
                artifact.resolve(self.settings.models_dir, name)
            if previous is not None and target == previous.version:
                served.pinned = pin
                return ReloadResult(name, "unchanged", target, target, pin is not None)
            model = await asyncio.to_thread(LoadedModel.load, self.settings, name, target)
        except artifact.ArtifactError as exc:
            return self._failed(served, previous, exc, keep=keep_failed)
        served.pinned = pin
        served.batcher = MicroBatcher(model, self.settings.batch_max_rows, self.metrics, self.log)
        served.error = None
        self.models[name] = served
        self.metrics.set_model(name, model.version, model.artifact.digest)
        self.metrics.reloads.labels(name, "ok").inc()
        outcome: Outcome = "loaded" if previous is None else "reloaded"
        logger.info("serving %s version %s (%s)", name, model.version, outcome)
        return ReloadResult(
            name, outcome, model.version, previous.version if previous else None, pin is not None
        )

    def _failed(
        self, served: ServedModel, previous: LoadedModel | None, exc: Exception, *, keep: bool
    ) -> ReloadResult:
        name = served.name
        missing = isinstance(exc, artifact.ArtifactNotFoundError)
        if keep or (name in self.models and not missing):
            served.error = str(exc)
            self.models[name] = served
            self.metrics.reloads.labels(name, "failed").inc()
        still = f"; still serving {previous.version}" if previous is not None else ""
        level = logging.WARNING if missing and not keep else logging.ERROR
        logger.log(level, "model %r not loaded%s: %s", name, still, exc)
        version = previous.version if previous else None
        return ReloadResult(
            name, "failed", version, version, served.pinned is not None, str(exc),
            not_found=missing,
        )  # fmt: skip


def registry_models(models_dir: Path) -> list[str]:
    """Names of the registry's models that have a current version, sorted."""
    try:
        folders = sorted(p for p in Path(models_dir).iterdir() if p.is_dir())
    except FileNotFoundError:
        return []
    names = []
    for folder in folders:
        try:
            if artifact.read_current(models_dir, folder.name) is not None:
                names.append(folder.name)
        except artifact.ArtifactError:  # not a model's folder (an invalid name)
            continue
    return names
