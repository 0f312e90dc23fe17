"""POST /predict, the hot path: a plain ASGI handler in front of FastAPI's router.

validate → predict (micro-batched; the batch's log records are spooled before any of its
requests resumes, see serving/batching.py) → respond. FastAPI's routing,
dependency resolution and exception middleware cost more per request than all of this
put together (measured with py-spy: see the README's performance section), so this one
route is served here; serving/openapi.py documents it like any other route.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from serving.auth import client_for, token_from
from serving.batching import RequestInfo
from serving.errors import (
    ApiError,
    InvalidInputError,
    PayloadTooLargeError,
    ServiceUnavailableError,
    UnsupportedMediaTypeError,
    entry,
)
from serving.middleware import client_request_id_from, new_request_id, send_json
from serving.model import LoadedModel, Prediction
from serving.predlog.records import LogFullError, LogUnavailableError
from serving.state import AppState
from serving.validation import parse_instances

PATH = "/predict"
_JSON = b"application/json"


class PredictEndpoint:
    """Serves POST /predict; passes every other request to ``app``."""

    def __init__(self, app: ASGIApp, state: AppState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST":
            await send_json(send, 405, {"detail": "Method Not Allowed"}, [(b"allow", b"POST")])
            return
        started = time.perf_counter()
        arrived = time.time()
        headers = dict(scope["headers"])
        request_id = new_request_id()
        client_request_id = None
        extra: dict[str, str] = {}
        try:
            client_request_id = client_request_id_from(headers.get(b"x-request-id"))
            info = RequestInfo(request_id, arrived, started, None, client_request_id)
            payload = await self._predict(headers, receive, info)
            status = 200
        except ApiError as exc:
            status, payload, extra = exc.status, {"detail": exc.detail}, exc.headers
        headers_out = [
            (b"x-request-id", (client_request_id or request_id).encode()),
            *((name.encode(), value.encode()) for name, value in extra.items()),
        ]
        await send_json(send, status, payload, headers_out)
        self.state.metrics.observe_request(PATH, "POST", status, time.perf_counter() - started)

    async def _predict(
        self,
        headers: dict[bytes, bytes],
        receive: Receive,
        info: RequestInfo,
    ) -> dict[str, Any]:
        state = self.state
        settings = state.settings
        _require_json(headers.get(b"content-type"))
        client = None
        if settings.api_keys:
            client = client_for(
                token_from(headers.get(b"authorization"), headers.get(b"x-api-key")),
                settings.api_keys,
            )
        body = await _read_body(receive, headers.get(b"content-length"), settings.max_body_bytes)
        batcher = state.batcher
        if batcher is None:
            state.metrics.refused.labels("no_model").inc()
            raise ServiceUnavailableError(f"no model loaded: {state.load_error}", retry_after=5)
        model = batcher.model
        matrix = parse_instances(body, model.features, settings.max_batch_rows)
        try:
            result = await batcher.predict(matrix, replace(info, client_id=client))
        except ValueError as exc:
            # Finite but extreme values can still overflow inside a pipeline's arithmetic.
            msg = f"The model cannot predict these values: {exc}"
            raise InvalidInputError([entry(["body", "instances"], msg, "value_error")]) from None
        except LogFullError as exc:
            state.metrics.refused.labels("log_full").inc()
            raise ServiceUnavailableError(
                f"prediction log is full, try again later: {exc}", retry_after=exc.retry_after
            ) from None
        except LogUnavailableError as exc:
            state.metrics.refused.labels("log_error").inc()
            raise ServiceUnavailableError(
                f"prediction log unavailable: {exc}", retry_after=5
            ) from None
        return _response(info.request_id, model, result)


def _require_json(content_type: bytes | None) -> None:
    media_type = (content_type or b"").partition(b";")[0].strip().lower()
    if media_type != _JSON:
        got = media_type.decode("latin-1") or "none"
        raise UnsupportedMediaTypeError(f"Content-Type must be application/json, got {got}")


async def _read_body(receive: Receive, declared: bytes | None, limit: int) -> bytes:
    """The whole body; 413 from Content-Length before reading, or once the count passes."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(_too_large(limit))
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ApiError("client disconnected", status=400)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(_too_large(limit))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(limit: int) -> str:
    return f"Request body larger than {limit} bytes (MAX_BODY_BYTES)"


def _response(request_id: str, model: LoadedModel, result: Prediction) -> dict[str, Any]:
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
