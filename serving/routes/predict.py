"""POST /predict: validate → predict (micro-batched) → spool the log record → respond.

The body is read and validated by hand (serving/validation.py) rather than through a
pydantic parameter: it is the hot path, and the errors must name row and feature. The
record reaches the durable spool before the response is sent, so every 200 is logged.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from serving.deps import ClientDep, StateDep
from serving.errors import (
    InvalidInputError,
    ServiceUnavailableError,
    UnsupportedMediaTypeError,
    entry,
)
from serving.model import LoadedModel, Prediction
from serving.predlog.records import LogFullError, LogUnavailableError, PredictionRecord
from serving.schemas import ERROR_RESPONSES, PredictResponse
from serving.state import AppState
from serving.validation import parse_instances

router = APIRouter()

_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}
        },
    }
}


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=_REQUEST_BODY,
    summary="Predict one or many instances",
)
async def predict(request: Request, state: StateDep, client: ClientDep) -> Response:
    """Instances keyed by feature name or as arrays in the model's feature order (GET /model).
    Send ``X-Request-ID: <uuid>`` to make a retry log once; the id is echoed back."""
    _require_json(request.headers.get("content-type"))
    batcher = state.batcher
    if batcher is None:
        state.metrics.refused.labels("no_model").inc()
        raise ServiceUnavailableError(f"no model loaded: {state.load_error}", retry_after=5)
    model = batcher.model
    matrix = parse_instances(await request.body(), model.features, state.settings.max_batch_rows)
    try:
        result = await batcher.predict(matrix)
    except ValueError as exc:
        # Finite but absurd values (1e308) can overflow inside the pipeline's arithmetic.
        raise InvalidInputError(
            [
                entry(
                    ["body", "instances"],
                    f"The model cannot predict these values: {exc}",
                    "value_error",
                )
            ]
        ) from None
    context = request.state
    record = PredictionRecord(
        request_id=context.request_id,
        created_at=context.arrived,
        model=model.log_schema,
        features=matrix,
        predictions=result.labels,
        probabilities=result.probabilities,
        latency_ms=(time.perf_counter() - context.started) * 1000.0,
        client_id=client,
    )
    _spool(state, record)
    body = _response_body(context.request_id, model, result)
    flagged = _out_of_range(state, model, matrix)
    if flagged is not None:
        body["out_of_range"] = flagged
    _count_predictions(state, model, result)
    return Response(orjson.dumps(body), media_type="application/json")


def _require_json(content_type: str | None) -> None:
    media_type = (content_type or "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaTypeError(
            f"Content-Type must be application/json, got {media_type or 'none'}"
        )


def _spool(state: AppState, record: PredictionRecord) -> None:
    try:
        state.log.append((record,))
    except LogFullError as exc:
        state.metrics.refused.labels("log_full").inc()
        raise ServiceUnavailableError(
            f"prediction log is full, try again later: {exc}", retry_after=exc.retry_after
        ) from None
    except LogUnavailableError as exc:
        state.metrics.refused.labels("log_error").inc()
        raise ServiceUnavailableError(f"prediction log unavailable: {exc}", retry_after=5) from None


def _response_body(request_id: str, model: LoadedModel, result: Prediction) -> dict[str, Any]:
    body: dict[str, Any] = {
        "request_id": request_id,
        "model": model.ref,
        "predictions": result.labels,
    }
    if result.probabilities is not None and model.classes is not None:
        classes = model.classes
        body["probabilities"] = [
            dict(zip(classes, row, strict=True)) for row in result.probabilities.tolist()
        ]
    return body


def _count_predictions(state: AppState, model: LoadedModel, result: Prediction) -> None:
    predictions = state.metrics.predictions
    if model.classes is None:
        predictions.labels(model.version, "value").inc(len(result.labels))
        return
    for label, count in Counter(result.labels).items():
        predictions.labels(model.version, label).inc(count)


def _out_of_range(
    state: AppState, model: LoadedModel, matrix: np.ndarray
) -> list[dict[str, Any]] | None:
    """Rows with values outside the training range, counted per feature; None if none."""
    outside = model.out_of_range(matrix)
    if not outside.any():
        return None
    names = model.features.names
    flagged = []
    for row in np.flatnonzero(outside.any(axis=1)).tolist():
        features = [names[j] for j in np.flatnonzero(outside[row]).tolist()]
        flagged.append({"row": row, "features": features})
        for name in features:
            state.metrics.out_of_range.labels(name).inc()
    return flagged
