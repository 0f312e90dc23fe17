"""GET /monitoring/quality and /monitoring/drift: is the model still right?

Thin routes over serving/monitoring: the questions are answered by SQL in the log's database
(never by loading the log into Python), on the bounded query threads of the log
(docs/prediction-log.md, "Query limits"), against the registry's metadata (held-out metrics,
reference profiles). See docs/monitoring.md for the statistics and thresholds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, TypeVar

from fastapi import APIRouter, Query
from pydantic import Field, field_validator
from starlette.responses import Response

from serving.deps import StateDep
from serving.errors import InvalidInputError, NotFoundError, ServiceUnavailableError, entry
from serving.monitoring.drift import MIN_ROWS, DriftReport, drift
from serving.monitoring.quality import QualityReport, quality
from serving.monitoring.queries import Window, connected_source
from serving.monitoring.registry import MonitoringInputError, Registry
from serving.predlog.migrations import SchemaError
from serving.predlog.queries import as_utc, check_text
from serving.predlog.reading import UNREADABLE, Connector
from serving.predlog.records import LogUnavailableError
from serving.schemas import ErrorBody, Strict, ValidationErrorBody, iso_only
from serving.state import AppState

logger = logging.getLogger("serving")
T = TypeVar("T")

router = APIRouter(prefix="/monitoring", tags=["monitoring"])

_RESPONSES: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorBody, "description": "No such model or version in the registry."},
    422: {"model": ValidationErrorBody, "description": "A malformed window or parameter."},
    503: {"model": ErrorBody, "description": "The log cannot be read in time (Retry-After)."},
}


class MonitoringQuery(Strict):
    """Which model (the default model when omitted), version and time window."""

    model: str | None = Field(None, max_length=64)
    version: str | None = Field(None, max_length=64)
    since: datetime | None = Field(None, description="Only predictions at or after (ISO 8601).")
    until: datetime | None = Field(None, description="Only predictions before (ISO 8601).")

    @field_validator("since", "until", mode="before")
    @classmethod
    def _iso_only(cls, value: object) -> object:
        return iso_only(value)

    @field_validator("since", "until")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)

    @field_validator("model", "version")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        return None if value is None else check_text(value)


class DriftQuery(MonitoringQuery):
    min_rows: int = Field(
        MIN_ROWS, ge=1, le=10_000_000, description="Fewer live rows: 'insufficient data'."
    )


@router.get(
    "/quality",
    response_model=QualityReport,
    responses=_RESPONSES,
    summary="Live quality per model version (labelled predictions) beside held-out metrics",
)
async def live_quality(state: StateDep, query: Annotated[MonitoringQuery, Query()]) -> Response:
    model = _model(state, query.model)
    window = _window(query)
    registry = Registry(state.settings.models_dir)

    def ask(connector: Connector) -> QualityReport:
        source = connected_source(connector)
        return quality(source, registry, model, window, version=query.version)

    report = await _read(state, ask)
    return Response(report.model_dump_json(), media_type="application/json")


@router.get(
    "/drift",
    response_model=DriftReport,
    responses=_RESPONSES,
    summary="Drift per feature and of the predictions, against the version's reference profile",
)
async def live_drift(state: StateDep, query: Annotated[DriftQuery, Query()]) -> Response:
    model = _model(state, query.model)
    window = _window(query)
    registry = Registry(state.settings.models_dir)
    try:
        metadata = registry.metadata(model, query.version or _served_version(state, model))
    except MonitoringInputError as exc:
        raise NotFoundError(str(exc)) from None

    def ask(connector: Connector) -> DriftReport:
        return drift(connected_source(connector), metadata, window, min_rows=query.min_rows)

    report = await _read(state, ask)
    return Response(report.model_dump_json(), media_type="application/json")


def _model(state: AppState, asked: str | None) -> str:
    if asked is not None:
        return asked
    default = state.catalog.default
    if default is None:
        raise NotFoundError("no default model: name one with ?model=")
    return default.name


def _served_version(state: AppState, model: str) -> str | None:
    """Drift is of the version being served (else the registry's current one)."""
    served = state.catalog.get(model)
    loaded = served.model if served is not None else None
    return loaded.version if loaded is not None else None


def _window(query: MonitoringQuery) -> Window:
    if query.since and query.until and query.since >= query.until:
        msg = "since must be before until"
        raise InvalidInputError([entry(["query", "until"], msg, "value_error")])
    return Window(query.since, query.until)


async def _read(state: AppState, ask: Callable[[Connector], T]) -> T:
    try:
        return await state.log.read_connected(ask)
    except MonitoringInputError as exc:
        raise NotFoundError(str(exc)) from None
    except SchemaError:
        logger.error("monitoring: the log's tables are missing or out of date", exc_info=True)
        raise ServiceUnavailableError(UNREADABLE, retry_after=5) from None
    except LogUnavailableError as exc:  # generic by construction (serving/predlog/reading.py)
        raise ServiceUnavailableError(str(exc), retry_after=5) from None
