"""POST /feedback: ground truth for logged predictions, with the log's guarantees.

A label names its prediction by the ids a predict answer returned (``request_id``, and the
instance's ``row_index``). Labels are spooled before the ``200`` like predictions (nothing
lost while the database is away, no duplicates on replay) and land in the ``feedback``
relation, where a later label for the same row replaces the earlier one.

A label whose prediction is not (yet) in the log is accepted, not refused: the prediction
may still be in a spool on its way, and checking would cost a database lookup on every
label and fail while the database is down, losing exactly the labels the log promises to
keep. Such a label waits in ``feedback`` and joins its prediction once that is written;
docs/monitoring.md ("Ground truth") has the query that counts labels still unmatched.
With ``model`` named, labels are checked against that model's target: a class label
(string) for a classifier, a number for a regressor.
"""

from __future__ import annotations

import time
from typing import Annotated, Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Request
from pydantic import Field, ValidationError
from starlette.responses import Response

from serving.deps import StateDep
from serving.errors import (
    BadRequestError,
    InvalidInputError,
    NotFoundError,
    ServiceUnavailableError,
    UnsupportedMediaTypeError,
    entry,
    json_response,
)
from serving.features import number_problem
from serving.predlog.feedback import FeedbackRecord
from serving.predlog.records import LogDisabledError, LogFullError, LogUnavailableError
from serving.schemas import ErrorBody, Strict, ValidationErrorBody

router = APIRouter(tags=["monitoring"])

Label = Annotated[str | bool | int | float, Field(description="A class label, or a number.")]


class LabelItem(Strict):
    request_id: UUID = Field(description="The request_id of the predict answer.")
    row_index: int = Field(ge=0, le=2**31 - 1, description="The instance's row in it.")
    label: Label


class FeedbackRequest(Strict):
    model: str | None = Field(
        None, max_length=64, description="Check each label against this model's target."
    )
    feedback: list[LabelItem] = Field(min_length=1)


class FeedbackAccepted(Strict):
    accepted: int


@router.post(
    "/feedback",
    response_model=FeedbackAccepted,
    responses={
        400: {"model": ErrorBody, "description": "The body is not JSON."},
        404: {"model": ErrorBody, "description": "`model` names no served model."},
        415: {"model": ErrorBody, "description": "Content-Type is not application/json."},
        422: {"model": ValidationErrorBody, "description": "A malformed item, by position."},
        503: {"model": ErrorBody, "description": "The log is full or unavailable (Retry-After)."},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": FeedbackRequest.model_json_schema()}},
        }
    },
    summary="Labels (ground truth) for logged predictions, spooled before the answer",
)
async def feedback(request: Request, state: StateDep) -> Response:
    asked = await _parse(request, state.settings.max_batch_rows)
    if asked.model is not None:
        _check_labels(state, asked)
    received = time.time()
    client = request.state.client_id
    records = [
        FeedbackRecord(str(item.request_id), item.row_index, item.label, received, client)
        for item in asked.feedback
    ]
    try:
        state.log.append_feedback(records)
    except LogFullError as exc:
        raise ServiceUnavailableError(
            "the prediction log is full; try again later", retry_after=exc.retry_after
        ) from None
    except LogDisabledError as exc:
        raise ServiceUnavailableError(f"labels are not kept here: {exc}") from None
    except LogUnavailableError:
        raise ServiceUnavailableError(
            "the prediction log cannot record now; try again later", retry_after=5
        ) from None
    return json_response(200, {"accepted": len(records)})


async def _parse(request: Request, max_items: int) -> FeedbackRequest:
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        got = media_type[:60] or "none"
        raise UnsupportedMediaTypeError(f"Content-Type must be application/json, got {got}")
    try:
        document: Any = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise BadRequestError("the body is not valid JSON") from None
    try:
        asked = FeedbackRequest.model_validate(document)
    except ValidationError as exc:
        raise InvalidInputError(
            [entry(["body", *e["loc"]], e["msg"], e["type"]) for e in exc.errors()][:100]
        ) from None
    if len(asked.feedback) > max_items:
        msg = f"At most {max_items} labels per request, got {len(asked.feedback)}"
        raise InvalidInputError([entry(["body", "feedback"], msg, "too_long")])
    return asked


def _check_labels(state: Any, asked: FeedbackRequest) -> None:
    served = state.catalog.get(asked.model)
    model = served.model if served is not None else None
    if model is None:
        raise NotFoundError(f"no model {asked.model!r} is served here (see GET /models)")
    classifier = model.classes is not None
    problems = []
    for i, item in enumerate(asked.feedback):
        label = item.label
        if classifier and type(label) is not str:
            msg = f"{asked.model} is a classifier: a label is a class name (a string)"
            problems.append(entry(["body", "feedback", i, "label"], msg, "string_type"))
        elif not classifier and (type(label) is bool or number_problem(label) is not None):
            msg = f"{asked.model} is a regressor: a label is a finite number"
            problems.append(entry(["body", "feedback", i, "label"], msg, "float_type"))
    if problems:
        raise InvalidInputError(problems[:100])
