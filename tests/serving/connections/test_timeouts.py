"""Deadlines: a slow head or body gets 408 and a close; a connection idle before or
between requests is closed; a client streaming an endless header stalls nobody else."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import orjson

from tests.live import LiveServer
from tests.serving.connections.conftest import TIMEOUT
from tests.serving.connections.raw import (
    closed_within,
    connect,
    json_body,
    send_ignoring_close,
    status_of,
)

SLACK = 2.0


def test_a_head_that_stops_arriving_gets_408(limited_server: LiveServer) -> None:
    with connect(limited_server.port) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: a")
        reply, seconds = closed_within(sock, TIMEOUT + SLACK)
    assert status_of(reply) == 408
    assert "HEADER_TIMEOUT_SECONDS" in json_body(reply)["detail"]  # type: ignore[index]
    assert seconds >= TIMEOUT * 0.9


def test_a_head_dripping_one_byte_at_a_time_gets_408(limited_server: LiveServer) -> None:
    with connect(limited_server.port) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Drip: ")
        started = time.monotonic()
        while time.monotonic() - started < TIMEOUT + SLACK:
            if not send_ignoring_close(sock, [b"a"]):
                break
            time.sleep(0.05)
        reply, _ = closed_within(sock, SLACK)
    assert status_of(reply) == 408
    assert time.monotonic() - started < TIMEOUT + SLACK


def test_a_body_that_stops_arriving_gets_408(limited_server: LiveServer) -> None:
    with connect(limited_server.port) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        reply, seconds = closed_within(sock, TIMEOUT + SLACK)
    assert status_of(reply) == 408
    assert "BODY_TIMEOUT_SECONDS" in json_body(reply)["detail"]  # type: ignore[index]
    assert seconds >= TIMEOUT * 0.9


def test_a_head_and_body_arriving_in_pieces_within_the_deadlines_are_served(
    limited_server: LiveServer, rows: list[list[float]]
) -> None:
    body = orjson.dumps({"instances": [rows[0]]})
    head = (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    with connect(limited_server.port) as sock:
        for piece in (head[:20], head[20:], body[:10], body[10:]):
            sock.sendall(piece)
            time.sleep(TIMEOUT / 4)
        reply, _ = closed_within(sock, TIMEOUT + SLACK)
    assert status_of(reply) == 200
    assert "predictions" in json_body(reply)  # type: ignore[operator]


def test_a_connection_that_sends_nothing_is_closed(limited_server: LiveServer) -> None:
    with connect(limited_server.port) as sock:
        reply, _ = closed_within(sock, TIMEOUT + SLACK)
    assert reply == b""


def test_an_idle_keepalive_connection_is_closed(limited_server: LiveServer) -> None:
    with connect(limited_server.port) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        reply, seconds = closed_within(sock, TIMEOUT + SLACK)
    assert status_of(reply) == 200
    assert seconds >= TIMEOUT * 0.9


def _endless_header(port: int, stop: threading.Event) -> None:
    """The slowloris of issue 10: one client streaming a header without end, reconnecting
    whenever the server hangs up."""
    while not stop.is_set():
        with connect(port) as sock:
            pieces: Iterator[bytes] = iter(lambda: b"a" * 65536, None)
            if stop.is_set() or not send_ignoring_close(
                sock, [b"GET /health HTTP/1.1\r\nHost: x\r\nX-Endless: "]
            ):
                continue
            for piece in pieces:
                if stop.is_set() or not send_ignoring_close(sock, [piece]):
                    break


def _dripping_header(port: int, stop: threading.Event) -> None:
    while not stop.is_set():
        with connect(port) as sock:
            if not send_ignoring_close(sock, [b"GET /health HTTP/1.1\r\nHost: x\r\nX-Drip: "]):
                continue
            while not stop.is_set() and send_ignoring_close(sock, [b"a"]):
                time.sleep(0.1)


def test_health_stays_fast_while_clients_stream_and_drip_headers(
    limited_server: LiveServer,
) -> None:
    stop = threading.Event()
    attackers = [
        threading.Thread(target=_endless_header, args=(limited_server.port, stop), daemon=True),
        *(
            threading.Thread(target=_dripping_header, args=(limited_server.port, stop), daemon=True)
            for _ in range(20)
        ),
    ]
    for thread in attackers:
        thread.start()
    latencies: list[float] = []
    try:
        time.sleep(0.5)
        with httpx.Client(base_url=limited_server.base_url, timeout=30) as client:
            deadline = time.monotonic() + 3 * TIMEOUT
            while time.monotonic() < deadline or len(latencies) < 50:
                started = time.perf_counter()
                assert client.get("/health").status_code == 200
                latencies.append(time.perf_counter() - started)
    finally:
        stop.set()
        for thread in attackers:
            thread.join(timeout=10)
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    assert p99 < 1.0, f"/health p99 {p99:.2f} s, max {latencies[-1]:.2f} s under attack"
