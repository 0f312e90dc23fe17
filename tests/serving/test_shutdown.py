"""SIGTERM: readiness 503 at once, in-flight requests finish, exit 0 within the deadline."""

from __future__ import annotations

import re
import signal
import threading
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from serving.app import app_state, create_app
from tests.live import LiveServer
from tests.serving.conftest import make_settings


def test_ready_is_503_while_draining(models_dir: Path, tmp_path: Path) -> None:
    app = create_app(make_settings(models_dir, tmp_path))
    with TestClient(app) as client:
        assert client.get("/ready").status_code == 200
        app_state(app).draining = True
        response = client.get("/ready")
    assert response.status_code == 503
    assert "draining" in response.json()["reasons"][0]


def test_sigterm_when_idle_exits_zero(models_dir: Path, tmp_path: Path) -> None:
    server = LiveServer(models_dir, tmp_path).start()
    server.signal(signal.SIGTERM)
    assert server.wait_exit(timeout=15) == 0


def test_sigint_exits_zero(models_dir: Path, tmp_path: Path) -> None:
    server = LiveServer(models_dir, tmp_path).start()
    server.signal(signal.SIGINT)
    assert server.wait_exit(timeout=15) == 0


def test_sigterm_under_load_answers_every_accepted_request(
    models_dir: Path, tmp_path: Path, rows: list[list[float]]
) -> None:
    server = LiveServer(models_dir, tmp_path, env={"ACCESS_LOG": "true"}).start()
    statuses: list[int] = []
    refused: list[str] = []
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=server.base_url, timeout=20) as client:
            while not stop.is_set():
                try:
                    response = client.post("/predict", json={"instances": rows[:50]})
                except httpx.TransportError as exc:  # the server no longer accepts
                    refused.append(type(exc).__name__)
                    return
                statuses.append(response.status_code)
                assert len(response.json()["predictions"]) == 50

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    signalled = time.monotonic()
    server.signal(signal.SIGTERM)
    code = server.wait_exit(timeout=30)
    elapsed = time.monotonic() - signalled
    stop.set()
    for thread in threads:
        thread.join()

    answered = re.findall(r'"POST /predict HTTP/1.1" (\d+)', server.log())
    assert code == 0
    assert elapsed < 10 + 2  # DRAIN_SECONDS default plus slack
    assert set(statuses) == {200}
    # Every request the server took in was answered to its client, and only those.
    assert answered.count("200") == len(statuses)
    assert set(answered) == {"200"}
    assert len(refused) == len(threads)
