"""Open Inference Protocol (KServe V2) REST routes, for the same models as our own API.

Health, server and model metadata and model readiness are ordinary FastAPI routes; ``infer``
is a plain ASGI endpoint like our predict routes (serving/routes/predict.py), calling the
same inference core, so its answers are micro-batched and logged with every guarantee. The
request's ``id`` (else the ``X-Request-ID`` header) is stored as ``client_request_id``; the
server's own request id, the log's key that ``POST /feedback`` refers to, is returned in
the response's ``parameters.request_id``.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from serving.batching import RequestInfo
from serving.deps import StateDep
from serving.errors import (
    BadRequestError,
    NotFoundError,
    ServiceUnavailableError,
    UnsupportedMediaTypeError,
    json_response,
)
from serving.inference import (
    InferenceCore,
    LogRefusedError,
    ModelNotFoundError,
    ModelNotReadyError,
)
from serving.model import LoadedModel, ModelInputError
from serving.pipeline import send_json
from serving.request_ids import MAX_CLIENT_REQUEST_ID
from serving.routes.predict import AsgiRoute, read_body
from serving.routes.probes import readiness
from serving.schemas import V2Error, V2ModelMetadata, V2ModelReady, V2ServerMetadata
from serving.v2 import codec

PLATFORM = "sklearn"

router = APIRouter(prefix="/v2", tags=["open inference protocol"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": V2Error, "description": "No such model or version."},
    503: {"model": V2Error, "description": "The model is not loaded."},
}


@router.get("/health/live", summary="Server liveness (Open Inference Protocol)")
async def live() -> Response:
    return json_response(200, {"live": True})


@router.get("/health/ready", summary="Server readiness (Open Inference Protocol)")
async def ready(state: StateDep) -> Response:
    is_ready = not readiness(state)["reasons"]
    return json_response(200 if is_ready else 503, {"ready": is_ready})


@router.get("", response_model=V2ServerMetadata, summary="Server metadata")
async def server_metadata() -> Response:
    return json_response(200, {"name": "skship", "version": "0.2.0", "extensions": []})


@router.get(
    "/models/{name}", response_model=V2ModelMetadata, responses=_ERRORS, summary="Model metadata"
)
async def model_metadata(name: str, state: StateDep) -> Response:
    return json_response(200, metadata(_model(state, name, None)))


@router.get(
    "/models/{name}/versions/{version}",
    response_model=V2ModelMetadata,
    responses=_ERRORS,
    summary="Model metadata of a version",
)
async def version_metadata(name: str, version: str, state: StateDep) -> Response:
    return json_response(200, metadata(_model(state, name, version)))


_READY_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": V2Error, "description": "No such model or version."},
    503: {"model": V2ModelReady, "description": "The model is not loaded."},
}


@router.get(
    "/models/{name}/ready",
    response_model=V2ModelReady,
    responses=_READY_ERRORS,
    summary="Model ready",
)
async def model_ready(name: str, state: StateDep) -> Response:
    return _ready(state, name, None)


@router.get(
    "/models/{name}/versions/{version}/ready",
    response_model=V2ModelReady,
    responses=_READY_ERRORS,
    summary="Model version ready",
)
async def version_ready(name: str, version: str, state: StateDep) -> Response:
    return _ready(state, name, version)


class Infer:
    """POST /v2/models/{name}[/versions/{version}]/infer."""

    def __init__(self, core: InferenceCore, max_rows: int) -> None:
        self.core = core
        self.max_rows = max_rows

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        _require_json(scope)
        params = scope["path_params"]
        try:
            batcher = self.core.resolve(params["name"], params.get("version"))
        except ModelNotFoundError as exc:
            raise NotFoundError(str(exc)) from None
        except ModelNotReadyError as exc:
            raise ServiceUnavailableError(str(exc), retry_after=5) from None
        body = await read_body(receive)
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise BadRequestError("the body is not valid JSON") from None
        model = batcher.model
        try:
            inputs, wanted = codec.decode(document, model.features, self.max_rows)
            wanted = wanted or codec.default_outputs(model)
            if "predict_proba" in wanted and model.classes is None:
                raise codec.V2InputError("output 'predict_proba' exists for classifiers only")
        except codec.V2InputError as exc:
            raise BadRequestError(str(exc)) from None
        state = scope["state"]
        client_id = _client_id(document.get("id")) or state["client_request_id"]
        request = RequestInfo(
            state["request_id"], state["arrived"], state["started"], state["client_id"], client_id
        )
        try:
            result = await self.core.predict(batcher, inputs, request)
        except ModelInputError as exc:
            where = ", ".join(f"input {f!r}, row {r}" for r, f in exc.cells)
            raise BadRequestError(
                f"{where}: a category not seen in training, which this model cannot take"
                if where
                else f"the model cannot predict these values: {str(exc)[:200]}"
            ) from None
        except LogRefusedError as exc:
            raise ServiceUnavailableError(str(exc), retry_after=exc.retry_after) from None
        parameters: dict[str, Any] = {"request_id": request.request_id}
        if result.outside is not None:
            names = model.features.names
            parameters["out_of_range"] = [
                {"row": i, "inputs": [n for n, out in zip(names, row, strict=True) if out]}
                for i, row in enumerate(result.outside.tolist())
                if any(row)
            ]
        response = {
            "model_name": model.name,
            "model_version": model.version,
            "id": client_id or request.request_id,
            "parameters": parameters,
            "outputs": codec.encode(model, result, wanted),
        }
        await send_json(send, 200, response)


def infer_routes(core: InferenceCore, max_rows: int) -> list[Route]:
    endpoint = Infer(core, max_rows)
    return [
        AsgiRoute("/v2/models/{name}/infer", endpoint, methods=["POST"], name="v2_infer"),
        AsgiRoute(
            "/v2/models/{name}/versions/{version}/infer",
            endpoint,
            methods=["POST"],
            name="v2_version_infer",
        ),
    ]


def metadata(model: LoadedModel) -> dict[str, Any]:
    """A model's metadata: one input per feature (a numeric model also takes one
    ``[n, n_features]`` tensor), and its outputs."""
    outputs = [{"name": "predict", "datatype": codec.label_datatype(model), "shape": [-1]}]
    if model.classes is not None:
        outputs.append(
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(model.classes)]}
        )
    return {
        "name": model.name,
        "versions": [model.version],
        "platform": PLATFORM,
        "inputs": [
            {"name": spec.name, "datatype": codec.input_datatype(spec.type), "shape": [-1]}
            for spec in model.features.specs
        ],
        "outputs": outputs,
        "parameters": {"classes": list(model.classes) if model.classes else None},
    }


def _model(state: Any, name: str, version: str | None) -> LoadedModel:
    try:
        return state.core.resolve(name, version).model  # type: ignore[no-any-return]
    except ModelNotFoundError as exc:
        raise NotFoundError(str(exc)) from None
    except ModelNotReadyError as exc:
        raise ServiceUnavailableError(str(exc), retry_after=5) from None


def _ready(state: Any, name: str, version: str | None) -> Response:
    served = state.catalog.get(name)
    if served is None:
        raise NotFoundError(f"no model {name!r} is served here")
    model = served.model
    if version is not None and (model is None or model.version != version):
        raise NotFoundError(f"model {name!r} does not serve version {version!r}")
    ready = model is not None
    return json_response(200 if ready else 503, {"name": name, "ready": ready})


def _require_json(scope: Scope) -> None:
    """JSON, or no Content-Type at all (some V2 clients send none)."""
    for key, value in scope["headers"]:
        if key == b"content-type":
            media_type = value.partition(b";")[0].strip().lower()
            if media_type != b"application/json":
                got = media_type.decode("latin-1")[:60] or "none"
                raise UnsupportedMediaTypeError(f"Content-Type must be application/json, got {got}")
            return


def _client_id(value: Any) -> str | None:
    if type(value) is not str or not value:
        return None
    if len(value) > MAX_CLIENT_REQUEST_ID or not value.isprintable() or not value.isascii():
        raise BadRequestError(
            f"'id' must be 1 to {MAX_CLIENT_REQUEST_ID} printable ASCII characters"
        )
    return value
