"""413 before parsing: by Content-Length, and by counting a chunked body as it arrives;
readable by every mainstream client."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
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


# The 413 is answered before the body is read; every mainstream client must still read it.
# Python's urllib sends `Connection: close` and the whole body before reading anything.
OVERSIZE = b"x" * (8 * 1024 * 1024)  # more than the sockets on both ends buffer


def _assert_413_json(status: int, body: bytes) -> None:
    assert status == 413
    assert json.loads(body)["detail"].endswith("(MAX_BODY_BYTES)")


def test_urllib_reads_the_413(small_limit_server: LiveServer) -> None:
    request = urllib.request.Request(
        small_limit_server.base_url + "/predict",
        data=OVERSIZE,
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    _assert_413_json(caught.value.code, caught.value.read())


def test_httpx_reads_the_413(small_limit_server: LiveServer) -> None:
    response = httpx.post(
        small_limit_server.base_url + "/predict",
        content=OVERSIZE,
        headers={"content-type": "application/json"},
        timeout=10,
    )
    _assert_413_json(response.status_code, response.content)


def test_requests_reads_the_413(small_limit_server: LiveServer) -> None:
    requests = pytest.importorskip("requests")
    response = requests.post(
        small_limit_server.base_url + "/predict",
        data=OVERSIZE,
        headers={"content-type": "application/json"},
        timeout=10,
    )
    _assert_413_json(response.status_code, response.content)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_reads_the_413(small_limit_server: LiveServer, tmp_path: Path) -> None:
    payload = tmp_path / "big.json"
    payload.write_bytes(OVERSIZE)
    done = subprocess.run(
        [
            "curl",
            "-sS",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            f"@{payload}",
            small_limit_server.base_url + "/predict",
        ],
        capture_output=True,
        timeout=30,
        check=True,
    )
    body, _, status = done.stdout.rpartition(b"\n")
    _assert_413_json(int(status), body)


def test_a_keepalive_connection_serves_the_next_request_after_a_413(
    small_limit_server: LiveServer,
) -> None:
    with socket.create_connection(("127.0.0.1", small_limit_server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(OVERSIZE)
        )
        sock.sendall(OVERSIZE)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        replies = b""
        while chunk := sock.recv(65536):
            replies += chunk
    assert replies.startswith(b"HTTP/1.1 413")
    assert replies.count(b"HTTP/1.1 200 OK") == 1
