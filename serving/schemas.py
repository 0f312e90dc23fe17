"""Request and response schemas, for validation of small bodies and for the OpenAPI docs.

The /predict body is parsed by serving/validation.py (fast path, per-row errors); its
schema here documents it, and serving/openapi.py specialises it to the loaded model.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from serving.predlog.queries import as_utc, check_text

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


class Strict(BaseModel):
    """Request, response and row schemas: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


def iso_only(value: object) -> object:
    """pydantic would read "1700000000" as a Unix time; the API promises ISO 8601 only."""
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        raise ValueError("expected an ISO 8601 date-time, e.g. 2026-11-27T10:00:00Z")
    return value


class PredictRequest(Strict):
    """Instances keyed by feature name, or arrays in the model's feature order."""

    instances: list[dict[str, float | str | bool | None] | list[float | str | bool | None]] = Field(
        min_length=1
    )


class ModelRef(Strict):
    name: str
    version: str


class OutOfRange(Strict):
    """A row with values outside what the model saw in training: served, but flagged."""

    row: int
    features: list[str]


class PredictResponse(Strict):
    request_id: UUID
    model: ModelRef
    predictions: list[str] | list[float]
    probabilities: list[dict[str, float]] | None = Field(
        None, description="Per row, probability of each class; classifiers only."
    )
    out_of_range: list[OutOfRange] | None = Field(
        None, description="Present only when some value lies outside the training range."
    )


class ErrorBody(Strict):
    detail: str


class Problem(Strict):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorBody(Strict):
    detail: list[Problem]


class Health(Strict):
    status: Literal["ok"]


class LogReadiness(Strict):
    store: str
    accepting: bool
    store_reachable: bool
    spooled_bytes: int
    oldest_unwritten_age_s: float | None


class ModelReadiness(Strict):
    name: str
    version: str | None
    ready: bool
    error: str | None


class Readiness(Strict):
    status: Literal["ready", "not ready"]
    reasons: list[str]
    model: ModelRef | None = Field(description="The default model, when it is loaded.")
    models: list[ModelReadiness]
    draining: bool
    log: LogReadiness


class FeatureInfo(Strict):
    """One input: its type, whether null is accepted, its training statistics."""

    name: str
    type: Literal["number", "category", "boolean"]
    nullable: bool
    dtype: str
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    categories: list[str] | None


class ModelInfo(Strict):
    name: str
    version: str
    created_at: datetime
    origin: Literal["trained", "registered"]
    task: Literal["classification", "regression"]
    estimator: str
    features: list[FeatureInfo]
    target: str
    classes: list[str] | None
    metrics: dict[str, float]
    cv_metrics: dict[str, dict[str, float]]
    params: dict[str, Any]
    seed: int | None
    dataset: dict[str, Any]
    libraries: dict[str, str | None]
    git_commit: str | None
    format: Literal["skops", "joblib"]
    digest: str
    fingerprint: str | None
    signed: bool
    reference_profile: bool = Field(description="A reference profile for drift exists.")


class ModelStatus(Strict):
    name: str
    version: str | None = Field(description="The version served; null when none loaded.")
    ready: bool
    error: str | None = Field(description="Why the last load or reload failed, if it did.")
    pinned: str | None = Field(description="A version pinned by MODEL_VERSION or a reload.")
    default: bool = Field(description="The model of POST /predict and GET /model.")
    task: Literal["classification", "regression"] | None


class ModelsList(Strict):
    models: list[ModelStatus]


class ReloadRequest(Strict):
    """No body (or {}): every model. Otherwise one model (the default when `model` is
    omitted), pinned to `version` when given ("current" unpins)."""

    model: str | None = Field(None, max_length=64, description="Model name.")
    version: str | None = Field(
        None, max_length=64, description="Version to load and pin; 'current' unpins."
    )


class ReloadResult(Strict):
    name: str
    outcome: Literal["loaded", "reloaded", "unchanged", "failed"]
    version: str | None = Field(description="The version served after the reload.")
    previous: str | None
    pinned: bool
    error: str | None


class ReloadResults(Strict):
    models: list[ReloadResult]


class ReloadFailed(Strict):
    detail: str
    models: list[ReloadResult]


class PredictionsQuery(Strict):
    """Filters and paging of GET /predictions; checked before any database sees them."""

    since: datetime | None = Field(None, description="Only rows at or after (ISO 8601).")
    until: datetime | None = Field(None, description="Only rows before (ISO 8601).")
    model: str | None = Field(None, max_length=128, description="Only this model (model_name).")
    model_version: str | None = Field(None, max_length=64, description="Only this version.")
    limit: int = Field(100, ge=1, le=1000)
    cursor: str | None = Field(
        None, max_length=512, pattern=r"^[A-Za-z0-9_-]*$", description="A page's next_cursor."
    )

    @field_validator("since", "until", mode="before")
    @classmethod
    def _iso_only(cls, value: object) -> object:
        return iso_only(value)

    @field_validator("since", "until")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)

    @field_validator("model", "model_version")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        return None if value is None else check_text(value)


FeatureValue = float | str | bool | None


class LoggedRow(Strict):
    """One row of the prediction log (relation ``predictions``)."""

    request_id: UUID
    row_index: int
    created_at: datetime
    model_name: str
    model_version: str
    features: dict[str, FeatureValue] = Field(
        description="Values as sent: numbers, strings (categories), booleans, null."
    )
    prediction: str
    probabilities: dict[str, float] | None
    latency_ms: float
    client_id: str | None
    client_request_id: str | None = Field(
        description="The client's X-Request-ID (or inference request id), when it sent one."
    )


class PredictionsPage(Strict):
    items: list[LoggedRow]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class V2Error(Strict):
    error: str


class V2ServerMetadata(Strict):
    name: str
    version: str
    extensions: list[str]


class V2TensorMetadata(Strict):
    name: str
    datatype: str
    shape: list[int]


class V2ModelMetadata(Strict):
    name: str
    versions: list[str]
    platform: str
    inputs: list[V2TensorMetadata]
    outputs: list[V2TensorMetadata]
    parameters: dict[str, Any]


class V2ModelReady(Strict):
    name: str
    ready: bool


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or invalid API key."},
    413: {"model": ErrorBody, "description": "Body larger than MAX_BODY_BYTES."},
    415: {"model": ErrorBody, "description": "Content-Type is not application/json."},
    422: {"model": ValidationErrorBody, "description": "Invalid input, one entry per problem."},
    503: {"model": ErrorBody, "description": "No model loaded, or the log is full (Retry-After)."},
}
