"""What is served (GET /models, /models/{name}, /model) and POST /admin/reload."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from serving import artifact
from serving.catalog import ReloadResult, ServedModel
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
from serving.schemas import (
    ErrorBody,
    ModelInfo,
    ModelsList,
    ReloadFailed,
    ReloadRequest,
    ReloadResults,
    ValidationErrorBody,
)

router = APIRouter(tags=["models"])


@router.get("/models", response_model=ModelsList, summary="Every served model and its state")
async def models(state: StateDep) -> Response:
    catalog = state.catalog
    default = catalog.default
    items = [_status(m, m is default) for _, m in sorted(catalog.models.items())]
    return json_response(200, {"models": items})


@router.get(
    "/models/{name}",
    response_model=ModelInfo,
    responses={
        404: {"model": ErrorBody, "description": "No such model is served."},
        503: {"model": ErrorBody, "description": "The model failed to load; detail says why."},
    },
    summary="One model: version, metrics, typed feature schema, classes, digest",
)
async def model_by_name(name: str, state: StateDep) -> Response:
    return _document(state.catalog.get(name), name)


@router.get(
    "/model",
    response_model=ModelInfo,
    responses={
        404: {"model": ErrorBody, "description": "No default model (see MODEL_NAME)."},
        503: {"model": ErrorBody, "description": "The default model is not loaded."},
    },
    summary="The default model (the one POST /predict uses)",
)
async def default_model(state: StateDep) -> Response:
    return _document(state.catalog.default, state.catalog.default_name)


@router.post(
    "/admin/reload",
    response_model=ReloadResults,
    responses={
        400: {"model": ErrorBody, "description": "The body is not JSON."},
        401: {"model": ErrorBody, "description": "ADMIN_TOKEN (or API_KEYS) set, none sent."},
        404: {"model": ErrorBody, "description": "No such model or version."},
        409: {
            "model": ReloadFailed,
            "description": "Refused (digest, signature, trusted types, library version, "
            "warm-up); the previous version keeps serving.",
        },
        415: {"model": ErrorBody, "description": "A body that is not application/json."},
        422: {"model": ValidationErrorBody, "description": "Unknown fields or wrong types."},
    },
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": ReloadRequest.model_json_schema()}},
        }
    },
    tags=["admin"],
    summary="Load, verify and warm versions, then swap to them without dropping requests",
)
async def reload(request: Request, state: StateDep) -> Response:
    """Without a body: every model reloads its pinned or current version (and models newly
    promoted in the registry appear). With `model` and/or `version`: that one model, pinned
    to `version` ("current" unpins)."""
    asked = await _reload_request(request)
    catalog = state.catalog
    if asked.model is None and asked.version is None:
        results = await catalog.load_all()
    else:
        name = asked.model or catalog.default_name
        try:
            artifact.check_name(name)
        except artifact.ArtifactError as exc:
            raise NotFoundError(str(exc)) from None
        result = await catalog.reload(name, asked.version)
        if result.not_found:
            raise NotFoundError(result.error or f"no model {name!r}")
        results = [result]
    body: dict[str, Any] = {"models": [_result(r) for r in results]}
    failed = [r for r in results if r.outcome == "failed"]
    if failed:
        names = ", ".join(f"{r.name} ({r.error})" for r in failed)
        body["detail"] = f"reload refused for {names}; previous versions keep serving"
        return json_response(409, body)
    return json_response(200, body)


async def _reload_request(request: Request) -> ReloadRequest:
    raw = await request.body()
    if not raw.strip():
        return ReloadRequest()
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaTypeError(
            f"Content-Type must be application/json, got {media_type[:60] or 'none'}"
        )
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequestError("the body is not valid JSON") from None
    try:
        return ReloadRequest.model_validate(document)
    except ValidationError as exc:
        raise InvalidInputError(
            [entry(["body", *e["loc"]], e["msg"], e["type"]) for e in exc.errors()]
        ) from None


def _document(served: ServedModel | None, name: str) -> Response:
    if served is None:
        raise NotFoundError(f"no model {name!r} is served here (see GET /models)")
    model = served.model
    if model is None:
        detail = f"model {name!r} is not loaded: {served.error}"
        raise ServiceUnavailableError(detail, retry_after=5)
    return Response(model.info_json, media_type="application/json")


def _status(served: ServedModel, default: bool) -> dict[str, Any]:
    model = served.model
    return {
        "name": served.name,
        "version": model.version if model is not None else None,
        "ready": model is not None,
        "error": served.error,
        "pinned": served.pinned,
        "default": default,
        "task": model.metadata.task if model is not None else None,
    }


def _result(result: ReloadResult) -> dict[str, Any]:
    return {
        "name": result.name,
        "outcome": result.outcome,
        "version": result.version,
        "previous": result.previous,
        "pinned": result.pinned,
        "error": result.error,
    }
