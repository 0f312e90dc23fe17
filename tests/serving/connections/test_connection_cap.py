"""MAX_CONNECTIONS: idle connections cannot use up the file descriptors; /health answers."""

from __future__ import annotations

import contextlib
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.live import LiveServer, live_server

NOFILE = 1024
CAP = 500
IDLE = 2000


@pytest.fixture
def capped_server(models_dir: Path, tmp_path: Path) -> Iterator[LiveServer]:
    env = {"MAX_CONNECTIONS": str(CAP), "LOG_LEVEL": "warning"}
    with live_server(models_dir, tmp_path, env=env) as server:
        assert server.process is not None
        resource.prlimit(server.process.pid, resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
        yield server


@contextlib.contextmanager
def _open_files(wanted: int) -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        yield
        return
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"needs {wanted} open files in the test process, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_health_answers_with_four_times_the_fd_limit_in_idle_connections(
    capped_server: LiveServer,
) -> None:
    idle: list[socket.socket] = []
    with _open_files(IDLE + 256):
        try:
            for _ in range(IDLE):
                idle.append(socket.create_connection(("127.0.0.1", capped_server.port), timeout=5))
            latencies = []
            for _ in range(10):
                started = time.perf_counter()
                response = httpx.get(capped_server.base_url + "/health", timeout=5)
                latencies.append(time.perf_counter() - started)
                assert response.status_code == 200
        finally:
            for sock in idle:
                sock.close()
    assert max(latencies) < 1.0, latencies
    assert "closing the longest-idle ones" in capped_server.log()
