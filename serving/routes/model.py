"""GET /model (what is served) and POST /admin/reload (serve another version)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body
from starlette.responses import Response

from serving.artifact import ArtifactError, ArtifactNotFoundError
from serving.deps import AdminDep, StateDep
from serving.errors import ApiError, ServiceUnavailableError, json_response
from serving.schemas import ErrorBody, ModelInfo, ReloadRequest, ReloadResult

router = APIRouter()


@router.get(
    "/model",
    response_model=ModelInfo,
    responses={503: {"model": ErrorBody, "description": "No model loaded."}},
    summary="The served model: version, metrics, feature schema, classes, digest",
)
async def model_info(state: StateDep) -> Response:
    model = state.model
    if model is None:
        raise ServiceUnavailableError(f"no model loaded: {state.load_error}", retry_after=5)
    return Response(model.info_json, media_type="application/json")


@router.post(
    "/admin/reload",
    response_model=ReloadResult,
    responses={
        400: {"model": ErrorBody, "description": "The body is not JSON."},
        401: {"model": ErrorBody, "description": "ADMIN_TOKEN is set and was not sent."},
        404: {"model": ErrorBody, "description": "No such version (or no current one)."},
        409: {
            "model": ErrorBody,
            "description": "Refused (digest, signature, library "
            "version, warm-up); the previous model keeps serving.",
        },
    },
    tags=["admin"],
    summary="Load, verify and warm a version, then swap to it without dropping requests",
)
async def reload(
    state: StateDep,
    _: AdminDep,
    request: Annotated[ReloadRequest | None, Body()] = None,
) -> Response:
    previous = state.model
    try:
        model = await state.reload(request.version if request else None)
    except ArtifactNotFoundError as exc:
        raise ApiError(str(exc), status=404) from None
    except ArtifactError as exc:
        raise ApiError(f"reload refused, previous model still serving: {exc}", status=409) from None
    body = {"model": model.ref, "previous": previous.ref if previous is not None else None}
    return json_response(200, body)
