"""Raw-socket HTTP for the connection tests: what a hostile client sends, byte for byte."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterable

import orjson


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def send_ignoring_close(sock: socket.socket, parts: Iterable[bytes]) -> bool:
    """Send every part; False once the server has stopped reading (it may have answered)."""
    try:
        for part in parts:
            sock.sendall(part)
    except (BrokenPipeError, ConnectionResetError):
        return False
    return True


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a reset after the data counts as close)."""
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            received += chunk
    return received


def exchange(port: int, *parts: bytes) -> bytes:
    with connect(port) as sock:
        send_ignoring_close(sock, parts)
        return read_until_closed(sock)


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else 0


def json_body(reply: bytes) -> object:
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    return orjson.loads(body)


def closed_within(sock: socket.socket, seconds: float) -> tuple[bytes, float]:
    """(what the server sent, seconds until it closed); fails if it stays open longer."""
    started = time.monotonic()
    sock.settimeout(seconds)
    try:
        received = read_until_closed(sock)
    except TimeoutError:
        raise AssertionError(f"connection still open after {seconds} s") from None
    return received, time.monotonic() - started
