"""413 before parsing: by Content-Length, and by counting a chunked body as it arrives."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.live import LiveServer, live_server


@pytest.fixture(scope="module")
def small_limit_server(
    models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp("limit")
    with live_server(models_dir, workdir, env={"MAX_BODY_BYTES": "2048"}) as server:
        yield server


def test_declared_oversize_body_is_413_before_it_is_sent(small_limit_server: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", small_limit_server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 104857600\r\n\r\n{"
        )
        reply = b""
        while b"2048" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 413")
    assert b"2048" in reply


def test_chunked_oversize_body_is_413(small_limit_server: LiveServer) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"instances": ['
        for _ in range(200):
            yield b"[1.0, 2.0, 3.0],"
        yield b"[1.0]]}"

    response = httpx.post(
        small_limit_server.base_url + "/predict",
        content=chunks(),
        headers={"content-type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 413
    assert response.request.headers.get("transfer-encoding") == "chunked"


def test_body_under_the_limit_is_served(
    small_limit_server: LiveServer, rows: list[list[float]]
) -> None:
    response = httpx.post(
        small_limit_server.base_url + "/predict", json={"instances": [rows[0]]}, timeout=10
    )
    assert response.status_code == 200
