"""Errors carry their HTTP status; one handler renders them all.

Bodies follow FastAPI's shape: ``{"detail": "message"}`` or, for validation problems,
``{"detail": [{"loc": [...], "msg": ..., "type": ...}, ...]}``. No body ever echoes the
request payload or a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import Response

logger = logging.getLogger("serving")

ErrorEntry = dict[str, Any]


class ApiError(Exception):
    """An error response: status, detail and optional headers."""

    status = 500

    def __init__(
        self,
        detail: str | list[ErrorEntry],
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail if isinstance(detail, str) else f"{len(detail)} problem(s)")
        self.detail = detail
        self.headers = headers or {}
        if status is not None:
            self.status = status


class InvalidInputError(ApiError):
    """422: the request is well-formed HTTP but its content is not valid input."""

    status = 422


class UnsupportedMediaTypeError(ApiError):
    status = 415


class PayloadTooLargeError(ApiError):
    status = 413


class UnauthorizedError(ApiError):
    status = 401

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class ServiceUnavailableError(ApiError):
    """503: no model, draining, or the prediction log is full; ``retry_after`` in seconds."""

    status = 503

    def __init__(self, detail: str, *, retry_after: int | None = None) -> None:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        super().__init__(detail, headers=headers)


class ConflictError(ApiError):
    status = 409


def entry(loc: Sequence[str | int], msg: str, kind: str) -> ErrorEntry:
    """One validation problem in FastAPI's shape."""
    return {"loc": list(loc), "msg": msg, "type": kind}


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, headers=headers, media_type="application/json"
    )


def install_handlers(app: FastAPI) -> None:
    """Render ApiError, FastAPI's own validation errors and anything unexpected."""

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return json_response(exc.status, {"detail": exc.detail}, exc.headers)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        # FastAPI's default handler echoes the input; keep only where, what and why.
        detail = [entry(list(e["loc"]), e["msg"], e["type"]) for e in exc.errors()]
        return json_response(422, {"detail": detail})

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return json_response(500, {"detail": "internal error; see the server log"})

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_unexpected)
