"""GET /predictions: the prediction log, newest first, a page at a time."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from serving.deps import ClientDep, StateDep
from serving.errors import InvalidInputError, ServiceUnavailableError, entry, json_response
from serving.predlog.queries import Filters
from serving.predlog.records import InvalidCursorError, LogUnavailableError
from serving.schemas import ErrorBody, PredictionsPage, PredictionsQuery, ValidationErrorBody

router = APIRouter(tags=["prediction log"])


@router.get(
    "/predictions",
    response_model=PredictionsPage,
    responses={
        401: {"model": ErrorBody, "description": "API keys are configured and none was sent."},
        422: {"model": ValidationErrorBody, "description": "Bad filter or cursor."},
        503: {
            "model": ErrorBody,
            "description": "The log is disabled, or cannot be read in time (Retry-After).",
        },
    },
    summary="Logged predictions, newest first, filtered and paginated",
)
async def predictions(
    state: StateDep, _: ClientDep, query: Annotated[PredictionsQuery, Query()]
) -> Response:
    """Each row is one predicted instance: features and probabilities keyed by name. Times
    without a zone are UTC. Pass a page's `next_cursor` back to get the next page. A query
    waits at most DATABASE_QUERY_TIMEOUT_SECONDS for the database and runs at most
    DATABASE_STATEMENT_TIMEOUT_SECONDS; past either, 503 with Retry-After."""
    if not state.settings.log_predictions:
        raise ServiceUnavailableError("prediction logging is disabled (LOG_PREDICTIONS=false)")
    filters = Filters(
        since=query.since,
        until=query.until,
        model_name=query.model,
        model_version=query.model_version,
    )
    try:
        page = await state.log.query_page(filters, query.limit, query.cursor)
    except InvalidCursorError as exc:
        raise InvalidInputError([entry(["query", "cursor"], str(exc), "cursor_invalid")]) from None
    except LogUnavailableError as exc:
        # The message is generic by construction; the database's own text is in the server log.
        raise ServiceUnavailableError(str(exc), retry_after=5) from None
    items = [
        {
            "request_id": row.request_id,
            "row_index": row.row_index,
            "created_at": row.created_at.isoformat(),
            "model_name": row.model_name,
            "model_version": row.model_version,
            "features": row.features,
            "prediction": row.prediction,
            "probabilities": row.probabilities,
            "latency_ms": row.latency_ms,
            "client_id": row.client_id,
            "client_request_id": row.client_request_id,
        }
        for row in page.items
    ]
    return json_response(200, {"items": items, "next_cursor": page.next_cursor})
