"""ConnectionLimits from the settings, the connection cap's choice of whom to close."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest

from serving.connections.cap import OpenConnections
from serving.connections.limits import ConnectionLimits
from serving.connections.refusals import RefusalLog, error_response
from tests.serving.conftest import make_settings


class _Conn:
    def __init__(self, name: str, closed: list[str]) -> None:
        self.name = name
        self.closed = closed
        self.busy = False

    def close_idle(self) -> bool:
        if self.busy:
            return False
        self.closed.append(self.name)
        return True


def test_at_the_cap_the_longest_idle_connection_is_closed() -> None:
    closed: list[str] = []
    pool = OpenConnections(cap=2)
    a, b, c = (_Conn(n, closed) for n in "abc")
    pool.opened(a)
    pool.opened(b)
    pool.active(a)  # a started a request: now b has been idle longer
    pool.opened(c)
    assert closed == ["b"]


def test_a_connection_serving_a_request_is_never_closed_for_room() -> None:
    closed: list[str] = []
    pool = OpenConnections(cap=1)
    a, b = _Conn("a", closed), _Conn("b", closed)
    pool.opened(a)
    a.busy = True
    pool.opened(b)
    assert closed == ["b"]
    a.busy = False  # its response went out: it may be closed for room again
    pool.opened(_Conn("c", closed))
    assert closed == ["b", "a"]


def test_a_connection_closing_for_room_is_not_closed_twice() -> None:
    closed: list[str] = []
    pool = OpenConnections(cap=2)
    conns = [_Conn(str(i), closed) for i in range(4)]
    for conn in conns:
        pool.opened(conn)  # connection_lost of the closed ones has not run yet
    assert closed == ["0", "1"]
    pool.closed(conns[0])
    pool.closed(conns[1])
    assert pool.count == 2


def test_the_cap_leaves_a_quarter_of_the_open_file_limit(models_dir: Path, tmp_path: Path) -> None:
    settings = make_settings(models_dir, tmp_path, max_connections=4096)
    assert ConnectionLimits.from_settings(settings, nofile=1024).max_connections == 768
    assert ConnectionLimits.from_settings(settings, nofile=1 << 20).max_connections == 4096


def test_the_defaults(models_dir: Path, tmp_path: Path) -> None:
    limits = ConnectionLimits.from_settings(make_settings(models_dir, tmp_path), nofile=1 << 20)
    assert (limits.max_header_bytes, limits.max_headers) == (32 * 1024, 100)
    assert (limits.header_timeout, limits.body_timeout) == (10.0, 30.0)
    assert limits.discard_bytes == 16 * 1024 * 1024


def test_an_error_response_is_json_and_closes() -> None:
    reply = error_response(431, "too big", [(b"date", b"today")])
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 431 Request Header Fields Too Large"
    assert b"connection: close" in head
    assert b"content-length: %d" % len(body) in head
    assert orjson.loads(body) == {"detail": "too big"}


def test_refusals_are_logged_at_most_once_a_second(caplog: pytest.LogCaptureFixture) -> None:
    log = RefusalLog(interval=60)
    with caplog.at_level(logging.WARNING, logger="serving.connections"):
        for _ in range(1000):
            log.refused("1.2.3.4:5", 431, "too big")
    assert len(caplog.records) == 1
