"""POST /predict (the default model) and POST /models/{name}/predict: our REST protocol.

Plain ASGI endpoints inside the router and the request pipeline (serving/pipeline.py gave
the request its id, limits, auth, metrics and error rendering): FastAPI's dependency
resolution and response encoding would cost more per request than everything below, so
these two routes decode with orjson and answer with one ``send``. serving/openapi.py
documents them like any other route.

decode + validate (serving/validation.py) → the inference core (micro-batch, predict, log)
→ the response.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from serving.batching import RequestInfo
from serving.errors import (
    InvalidInputError,
    NotFoundError,
    ServiceUnavailableError,
    UnsupportedMediaTypeError,
    entry,
)
from serving.inference import (
    InferenceCore,
    LogRefusedError,
    ModelNotFoundError,
    ModelNotReadyError,
)
from serving.model import LoadedModel, ModelInputError, Prediction
from serving.pipeline import send_json
from serving.validation import parse_instances

_JSON = b"application/json"


class RestPredict:
    """The ASGI app of both predict routes; ``name`` comes from the path, else the default."""

    def __init__(self, core: InferenceCore, max_rows: int) -> None:
        self.core = core
        self.max_rows = max_rows

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        require_json(scope)
        name: str | None = scope["path_params"].get("name")
        core = self.core
        try:
            batcher = core.resolve(name)
        except ModelNotFoundError as exc:
            raise NotFoundError(str(exc)) from None
        except ModelNotReadyError as exc:
            raise ServiceUnavailableError(str(exc), retry_after=5) from None
        body = await read_body(receive)
        model = batcher.model
        inputs = parse_instances(body, model.features, self.max_rows)
        state = scope["state"]
        request = RequestInfo(
            state["request_id"], state["arrived"], state["started"],
            state["client_id"], state["client_request_id"],
        )  # fmt: skip
        try:
            result = await core.predict(batcher, inputs, request)
        except ModelInputError as exc:
            raise InvalidInputError(_refused(exc)) from None
        except LogRefusedError as exc:
            raise ServiceUnavailableError(str(exc), retry_after=exc.retry_after) from None
        await send_json(send, 200, response(request.request_id, model, result))


def routes(core: InferenceCore, max_rows: int) -> list[Route]:
    endpoint = RestPredict(core, max_rows)
    return [
        AsgiRoute("/predict", endpoint, methods=["POST"], name="predict"),
        AsgiRoute("/models/{name}/predict", endpoint, methods=["POST"], name="model_predict"),
    ]


class AsgiRoute(Route):
    """A Route to a plain ASGI endpoint that, like FastAPI's routes, leaves itself in the
    scope (``scope["route"]``), so metrics count requests by route template."""

    def matches(self, scope: Scope) -> tuple[Any, Scope]:
        match, child = super().matches(scope)
        if child:
            child["route"] = self
        return match, child


def require_json(scope: Scope) -> None:
    for key, value in scope["headers"]:
        if key == b"content-type":
            media_type = value.partition(b";")[0].strip().lower()
            if media_type == _JSON:
                return
            got = media_type.decode("latin-1")[:60] or "none"
            break
    else:
        got = "none"
    raise UnsupportedMediaTypeError(f"Content-Type must be application/json, got {got}")


async def read_body(receive: Receive) -> bytes:
    """The whole body (the pipeline enforces MAX_BODY_BYTES while it is read)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InvalidInputError([entry(["body"], "client disconnected", "disconnected")])
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def response(request_id: str, model: LoadedModel, result: Prediction) -> dict[str, Any]:
    body: dict[str, Any] = {
        "request_id": request_id,
        "model": model.ref,
        "predictions": result.labels,
    }
    if result.probabilities is not None and model.classes is not None:
        classes = model.classes
        rows = result.probabilities.tolist()
        body["probabilities"] = [dict(zip(classes, row, strict=True)) for row in rows]
    if result.outside is not None:
        names = model.features.names
        body["out_of_range"] = [
            {"row": i, "features": [n for n, out in zip(names, row, strict=True) if out]}
            for i, row in enumerate(result.outside.tolist())
            if any(row)
        ]
    return body


def _refused(exc: ModelInputError) -> list[dict[str, Any]]:
    if exc.cells:
        return [
            entry(
                ["body", "instances", row, feature],
                "A category not seen in training, which this model cannot take",
                "category_unknown",
            )
            for row, feature in exc.cells
        ]
    # Finite but extreme values can still overflow inside a pipeline's arithmetic.
    msg = f"The model cannot predict these values: {str(exc)[:200]}"
    return [entry(["body", "instances"], msg, "value_error")]
