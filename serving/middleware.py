"""Plain ASGI middleware for what every request needs: an id, metrics, a body limit.

Plain ASGI (not ``BaseHTTPMiddleware``) because this runs on every request of the hot
path and must stay a few microseconds.
"""

from __future__ import annotations

import os
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.errors import InvalidInputError, entry
from serving.metrics import Metrics, route_label

REQUEST_ID_HEADER = b"x-request-id"


class RequestContextMiddleware:
    """Makes the request's id (a new UUIDv7; the client's ``X-Request-ID`` is kept as a
    correlation id and echoed), and counts and times every request by route and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = new_request_id()
        try:
            client_request_id = client_request_id_from(_header(scope, REQUEST_ID_HEADER))
        except InvalidInputError as exc:
            new_id = new_request_id().encode()
            await send_json(send, 422, {"detail": exc.detail}, [(REQUEST_ID_HEADER, new_id)])
            self._observe(scope, 422, started)
            return
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["client_request_id"] = client_request_id
        state["started"] = started
        state["arrived"] = time.time()
        status = 500
        id_header = (REQUEST_ID_HEADER, (client_request_id or request_id).encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._observe(scope, status, started)

    def _observe(self, scope: Scope, status: int, started: float) -> None:
        seconds = time.perf_counter() - started
        self.metrics.observe_request(route_label(scope["path"]), scope["method"], status, seconds)


class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes``: from Content-Length before reading anything, and
    by counting while reading, so a chunked body without Content-Length is cut off too.

    Not FastAPI's ``max_body_size``: Starlette's limiter answers a too-large Content-Length
    with a text/plain body, and every error here is JSON naming the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await send_json(send, 413, self._too_large())
            return
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLargeError
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLargeError:
            if not response_started:
                await send_json(send, 413, self._too_large())

    def _too_large(self) -> dict[str, Any]:
        return {"detail": f"Request body larger than {self.max_bytes} bytes (MAX_BODY_BYTES)"}


class _BodyTooLargeError(Exception):
    pass


def new_request_id() -> str:
    """A UUIDv7 (RFC 9562): time-ordered, so the log's unique index on request ids grows
    at its right edge instead of at random places (Python 3.11 has no uuid.uuid7).

    Formatted by hand: it runs once per request and ``uuid.UUID`` costs twice as much.
    """
    ms = f"{time.time_ns() // 1_000_000:012x}"
    rand = os.urandom(10).hex()
    # 48-bit ms | version 7 + 12 random bits | variant 10 + 14 random bits | 48 random bits
    variant = _VARIANT[rand[3]]
    return f"{ms[:8]}-{ms[8:]}-7{rand[:3]}-{variant}{rand[4:7]}-{rand[8:20]}"


# The variant's two top bits are 10: a random hex digit keeps its low two bits.
_VARIANT = {f"{d:x}": f"{0x8 | (d & 0x3):x}" for d in range(16)}


MAX_CLIENT_REQUEST_ID = 128


def client_request_id_from(supplied: bytes | None) -> str | None:
    """The client's X-Request-ID, a correlation id of at most 128 printable ASCII characters
    (None when absent). It never keys the log: the server makes its own id per request."""
    if supplied is None:
        return None
    if not 0 < len(supplied) <= MAX_CLIENT_REQUEST_ID or not all(
        0x20 <= b < 0x7F for b in supplied
    ):
        msg = f"X-Request-ID must be 1 to {MAX_CLIENT_REQUEST_ID} printable ASCII characters"
        raise InvalidInputError([entry(["header", "x-request-id"], msg, "string_pattern")])
    return supplied.decode("ascii")


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def send_json(
    send: Send, status: int, body: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """A complete JSON response, straight to the ASGI server."""
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(headers or ()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
