"""The request pipeline every route goes through, the predict fast path included.

One plain ASGI middleware (not ``BaseHTTPMiddleware``: it runs on every request of the hot
path and must stay a few microseconds) that, in order:

1. makes the request's id (a new UUIDv7, the prediction log's key) and keeps the client's
   ``X-Request-ID`` as a correlation id, echoed in the response;
2. refuses what the app does not read: ``Content-Encoding`` other than identity (415), a
   declared body over ``MAX_BODY_BYTES`` (413), and counts a body without Content-Length
   as it is read (413 once it passes the limit);
3. authenticates: with API keys, everything but the probes needs one (fail-closed: a new
   route is protected without anyone remembering to); ``/admin/*`` needs the admin token
   when one is set;
4. renders its own refusals and any unexpected error (a 500 that still carries
   ``X-Request-ID``, logged with its traceback here only), and counts and times every
   request by route template and status.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.auth import check_admin, client_for, token_from
from serving.errors import (
    ApiError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    protocol_status,
    render,
)
from serving.metrics import Metrics
from serving.request_ids import REQUEST_ID_HEADER, client_request_id_from, new_request_id
from serving.settings import Settings

logger = logging.getLogger("serving")

PROBES = frozenset({"/health", "/ready", "/v2/health/live", "/v2/health/ready"})
"""Paths open to anyone even with API keys: a load balancer's probes carry no key."""


class RequestPipeline:
    """Id, limits, auth, errors and metrics for every HTTP request of ``app``."""

    def __init__(self, app: ASGIApp, *, settings: Settings, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self.max_bytes = settings.max_body_bytes
        self.keys = settings.api_keys
        self.admin_token = settings.admin_token
        self.public = PROBES | ({"/metrics"} if settings.metrics_public else frozenset())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = new_request_id()
        echo = request_id.encode()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                message["headers"] = [*message.get("headers", ()), (REQUEST_ID_HEADER, echo)]
            await send(message)

        try:
            headers = _headers(scope)
            client_request_id = client_request_id_from(headers.get(REQUEST_ID_HEADER))
            if client_request_id is not None:
                echo = client_request_id.encode()
            scope["state"] = {
                **scope.get("state", {}),
                "request_id": request_id,
                "client_request_id": client_request_id,
                "started": started,
                "arrived": time.time(),
                "client_id": self._authenticate(scope["path"], headers),
            }
            self._check_body(headers)
            await self.app(scope, self._counting(receive), send_with_id)
        except ApiError as exc:
            if not response_started:
                await _send_error(send_with_id, scope["path"], exc)
        except Exception:
            logger.exception("unexpected error on %s %s", scope["method"], scope["path"])
            if not response_started:
                await _send_error(send_with_id, scope["path"], _INTERNAL)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(
                label, scope["method"], status, time.perf_counter() - started
            )

    def _authenticate(self, path: str, headers: dict[bytes, bytes]) -> str | None:
        """The client id owning the presented API key; None where none is needed."""
        if path in self.public:
            return None
        token = token_from(headers.get(b"authorization"), headers.get(b"x-api-key"))
        if path.startswith("/admin/") and self.admin_token is not None:
            check_admin(token, self.admin_token)
            return None
        return client_for(token, self.keys) if self.keys else None

    def _check_body(self, headers: dict[bytes, bytes]) -> None:
        encoding = headers.get(b"content-encoding")
        if encoding is not None and encoding.strip().lower() not in (b"", b"identity"):
            raise UnsupportedMediaTypeError(
                f"Content-Encoding {encoding.decode('latin-1')[:40]!r} is not supported; "
                "send the body uncompressed"
            )
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            raise PayloadTooLargeError(_too_large(self.max_bytes))

    def _counting(self, receive: Receive) -> Receive:
        limit = self.max_bytes
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLargeError(_too_large(limit))
            return message

        return counting_receive


_INTERNAL = ApiError("internal error; see the server log", status=500)


def _too_large(limit: int) -> str:
    return f"Request body larger than {limit} bytes (MAX_BODY_BYTES)"


def _headers(scope: Scope) -> dict[bytes, bytes]:
    """The request's headers by lower-case name (the last one wins on repeats)."""
    return dict(scope["headers"])


async def _send_error(send: Send, path: str, exc: ApiError) -> None:
    extra = exc.headers or {}
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
    status = protocol_status(path, exc.status)
    await send_json_bytes(send, status, render(path, status, exc.detail), headers)


async def send_json_bytes(
    send: Send, status: int, payload: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """A complete JSON response, straight to the ASGI server."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(payload)),
                *(headers or ()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def send_json(
    send: Send, status: int, body: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send_json_bytes(send, status, orjson.dumps(body), headers)
