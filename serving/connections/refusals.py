"""What the protocol refuses, and how: checks on a request head, the error response it
writes itself, a log of refusals that an attack cannot flood."""

from __future__ import annotations

import http
import logging
import time

import orjson

from serving.connections.limits import ConnectionLimits

logger = logging.getLogger("serving.connections")

TRANSFER_ENCODING = b"transfer-encoding"

Headers = list[tuple[bytes, bytes]]


def check_head(url: bytes, headers: Headers, limits: ConnectionLimits) -> tuple[int, str] | None:
    """(status, detail) when a complete head breaks a limit or has a transfer coding
    other than chunked."""
    if len(headers) > limits.max_headers:
        return 431, f"More than {limits.max_headers} header fields (MAX_HEADERS)"
    if head_size(url, headers) > limits.max_header_bytes:
        return 431, too_large_head(limits)
    for name, _ in headers:
        if name == TRANSFER_ENCODING:
            return transfer_coding_problem(headers)
    return None


def head_size(url: bytes, headers: Headers) -> int:
    # Request line: method, spaces, version and line ends add at most ~20 bytes to the URL.
    return len(url) + 20 + sum(len(name) + len(value) + 4 for name, value in headers)


def too_large_head(limits: ConnectionLimits) -> str:
    return f"Request head larger than {limits.max_header_bytes} bytes (MAX_HEADER_BYTES)"


def transfer_coding_problem(headers: Headers) -> tuple[int, str] | None:
    """Only ``chunked`` is understood. RFC 9112 §6.3: when chunked is not the final coding
    of a request, "the server MUST respond with the 400 (Bad Request) status code and then
    close the connection"; §6.1: "A server that receives a request message with a transfer
    coding it does not understand SHOULD respond with 501 (Not Implemented)."
    """
    codings = [
        coding.strip().lower()
        for name, value in headers
        if name == TRANSFER_ENCODING
        for coding in value.split(b",")
        if coding.strip()
    ]
    if codings == [b"chunked"]:
        return None
    listed = ", ".join(c.decode("latin-1") for c in codings)
    if not codings or codings[-1] != b"chunked":
        return 400, f"Transfer-Encoding '{listed}': chunked must be the final coding"
    return 501, f"Transfer-Encoding '{listed}' is not supported: only chunked"


def error_response(status: int, detail: str, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A complete HTTP/1.1 JSON error response that closes the connection."""
    body = orjson.dumps({"detail": detail})
    phrase = http.HTTPStatus(status).phrase.encode()
    lines = [b"HTTP/1.1 %d %s" % (status, phrase)]
    lines += [name + b": " + value for name, value in default_headers]
    lines += [
        b"content-type: application/json",
        b"content-length: %d" % len(body),
        b"connection: close",
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class RefusalLog:
    """Logs a refusal as a WARNING at most once a second, counting the ones in between."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._last = -interval
        self._suppressed = 0

    def refused(self, peer: str, status: int, detail: str) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            self._suppressed += 1
            return
        more = f" (and {self._suppressed} more refused since)" if self._suppressed else ""
        logger.warning("%s: %d %s%s", peer, status, detail, more)
        self._last = now
        self._suppressed = 0
