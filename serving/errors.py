"""Errors carry their HTTP status; one function renders them, in the caller's protocol.

Our REST API answers in FastAPI's shape: ``{"detail": "message"}`` or, for validation
problems, ``{"detail": [{"loc": [...], "msg": ..., "type": ...}, ...]}``. The Open Inference
Protocol (paths under ``/v2``) answers ``{"error": "message"}``. No body ever echoes the
request payload, a stack trace or a database's error text.

``ApiError`` is a Starlette ``HTTPException``, so FastAPI lets it through its own body
parsing untouched; the app's exception handlers and the request pipeline
(serving/pipeline.py) both render with ``render``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

logger = logging.getLogger("serving")

ErrorEntry = dict[str, Any]

V2_PREFIX = "/v2"


class ApiError(HTTPException):
    """An error response: status, detail and optional headers."""

    status = 500

    def __init__(
        self,
        detail: str | list[ErrorEntry],
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if status is not None:
            self.status = status
        super().__init__(self.status, headers=headers or {})
        self.detail = detail  # type: ignore[assignment]  # a message or FastAPI's entries

    def __str__(self) -> str:
        return self.detail if isinstance(self.detail, str) else f"{len(self.detail)} problem(s)"


class BadRequestError(ApiError):
    """400: the request cannot be read (invalid JSON where no 422 shape applies, a bad
    Open Inference Protocol tensor)."""

    status = 400


class InvalidInputError(ApiError):
    """422: the request is well-formed HTTP but its content is not valid input."""

    status = 422


class NotFoundError(ApiError):
    status = 404


class UnsupportedMediaTypeError(ApiError):
    status = 415


class PayloadTooLargeError(ApiError):
    status = 413


class UnauthorizedError(ApiError):
    status = 401

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class ServiceUnavailableError(ApiError):
    """503: no model, draining, the log is full or unreadable; ``retry_after`` in seconds."""

    status = 503

    def __init__(self, detail: str, *, retry_after: int | None = None) -> None:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        super().__init__(detail, headers=headers)


class ConflictError(ApiError):
    status = 409


def entry(loc: Sequence[str | int], msg: str, kind: str) -> ErrorEntry:
    """One validation problem in FastAPI's shape."""
    return {"loc": list(loc), "msg": msg, "type": kind}


def protocol_status(path: str, status: int) -> int:
    """The Open Inference Protocol has no 422: invalid input there is a 400."""
    return 400 if status == 422 and path.startswith(V2_PREFIX) else status


def render(path: str, status: int, detail: str | list[ErrorEntry]) -> bytes:
    """The body of an error response to a request for ``path``."""
    if path.startswith(V2_PREFIX):
        if not isinstance(detail, str):
            detail = "; ".join(f"{_where(e['loc'])}: {e['msg']}" for e in detail)
        return orjson.dumps({"error": detail})
    return orjson.dumps({"detail": detail})


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, headers=headers, media_type="application/json"
    )


def install_handlers(app: FastAPI) -> None:
    """Render ApiError, Starlette's HTTP errors (404, 405) and FastAPI's validation errors."""

    async def on_http_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, HTTPException):  # registered for HTTPException only
            raise exc
        path = request.url.path
        status = protocol_status(path, exc.status_code)
        return Response(render(path, status, exc.detail), status, exc.headers, media_type=_JSON)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, RequestValidationError):
            raise exc
        # FastAPI's default handler echoes the input; keep only where, what and why.
        detail = [entry(list(e["loc"]), e["msg"], e["type"]) for e in exc.errors()]
        status = 400 if request.url.path.startswith(V2_PREFIX) else 422
        return Response(render(request.url.path, status, detail), status, media_type=_JSON)

    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)


_JSON = "application/json"


def _where(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc if part not in ("body",)) or "body"
