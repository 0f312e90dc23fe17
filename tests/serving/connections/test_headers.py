"""Request heads: 431 over MAX_HEADER_BYTES or MAX_HEADERS, answered in JSON, then closed."""

from __future__ import annotations

import time

from tests.live import LiveServer
from tests.serving.connections.raw import exchange, json_body, status_of

MiB = 1024 * 1024


def _head(*lines: bytes) -> bytes:
    return b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(line + b"\r\n" for line in lines)


def test_a_16_mib_header_value_is_431(limited_server: LiveServer) -> None:
    value = b"a" * (16 * MiB)
    started = time.monotonic()
    reply = exchange(limited_server.port, _head(b"X-Big: " + value) + b"\r\n")
    assert status_of(reply) == 431
    assert "MAX_HEADER_BYTES" in json_body(reply)["detail"]  # type: ignore[index]
    assert time.monotonic() - started < 5


def test_a_header_value_streamed_in_pieces_is_431(limited_server: LiveServer) -> None:
    pieces = [_head() + b"X-Slow: "] + [b"a" * 4096] * 4096
    reply = exchange(limited_server.port, *pieces)
    assert status_of(reply) == 431


def test_100000_headers_are_431(limited_server: LiveServer) -> None:
    lines = [b"X-H%d: v" % i for i in range(100_000)]
    reply = exchange(limited_server.port, _head(*lines) + b"\r\n")
    assert status_of(reply) == 431


def test_more_header_fields_than_max_headers_is_431(limited_server: LiveServer) -> None:
    lines = [b"X-H%d: v" % i for i in range(150)]  # 1.5 KiB: under the byte limit
    reply = exchange(limited_server.port, _head(*lines) + b"\r\n")
    assert status_of(reply) == 431
    assert "MAX_HEADERS" in json_body(reply)["detail"]  # type: ignore[index]


def test_a_head_near_both_limits_is_served(limited_server: LiveServer) -> None:
    lines = [b"X-H%d: %s" % (i, b"v" * 300) for i in range(90)]  # 90 fields, ~28 KiB
    reply = exchange(limited_server.port, _head(*lines, b"Connection: close") + b"\r\n")
    assert status_of(reply) == 200


def test_an_oversized_head_pipelined_behind_a_request_ends_the_connection_after_it(
    limited_server: LiveServer,
) -> None:
    first = _head() + b"\r\n"
    second = _head(b"X-Big: " + b"a" * (40 * 1024)) + b"\r\n"
    reply = exchange(limited_server.port, first + second)
    assert status_of(reply) == 200
    assert reply.count(b"HTTP/1.1 ") == 1
