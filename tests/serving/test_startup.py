"""A newcomer's misconfigurations are one line each, never a traceback; a store that can
never work is reported and makes the server not ready."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.live import LiveServer, live_server
from tests.pgcluster import free_port


def _serve(models_dir: Path, workdir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    server = LiveServer(models_dir, workdir, env=env)
    return subprocess.run(
        [sys.executable, "-m", "serving", "serve"],
        env=server.env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_port_in_use_is_one_line_and_exit_2(models_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    with socket.create_server(("127.0.0.1", port)):
        result = _serve(models_dir, tmp_path, PORT=str(port))
    assert result.returncode == 2
    assert f"error: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_second_server_on_the_same_spool_is_one_line_and_exit_2(
    models_dir: Path, tmp_path: Path
) -> None:
    with live_server(models_dir, tmp_path):
        result = _serve(models_dir, tmp_path, PORT=str(free_port()))
    assert result.returncode == 2
    assert "is in use by another server process" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgresql://postgres@127.0.0.1:5432/skship_no_such_db", "the database does not exist"),
        ("postgresql://no_such_role@127.0.0.1:5432/postgres", "the database role does not exist"),
    ],
)
@pytest.mark.postgres
def test_a_store_that_can_never_work_is_not_ready_and_logged_once(
    models_dir: Path, tmp_path: Path, pg_admin_url: str, url: str, problem: str
) -> None:
    server = LiveServer(models_dir, tmp_path, database_url=url).start(wait_ready=False)
    try:
        time.sleep(3)  # several reconnection attempts
        ready = httpx.get(server.base_url + "/ready")
        predict = httpx.post(
            server.base_url + "/predict", json={"instances": [[1.0] * 30]}, timeout=10
        )
    finally:
        server.stop()
    assert ready.status_code == 503
    assert any(problem in reason for reason in ready.json()["reasons"])
    assert "FATAL" not in ready.text  # the database's own words stay in the server log
    assert predict.status_code == 200  # answered and spooled: nothing is lost meanwhile
    assert server.log().count("FATAL") <= 2


def test_the_heap_left_by_startup_is_frozen_out_of_full_collections(
    models_dir: Path, tmp_path: Path
) -> None:
    """Without it, collections walking the libraries' million objects made the 1-row p99
    about 100 ms under load (serving/app.py, settle_heap)."""
    script = (
        "import gc, sys\n"
        "from fastapi.testclient import TestClient\n"
        "from serving.app import create_app\n"
        "from tests.serving.conftest import make_settings\n"
        "from pathlib import Path\n"
        "settings = make_settings(Path(sys.argv[1]), Path(sys.argv[2]))\n"
        "before = gc.get_freeze_count()\n"
        "with TestClient(create_app(settings)) as client:\n"
        "    assert client.get('/ready').status_code == 200\n"
        "    print(before, gc.get_freeze_count())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(models_dir), str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=True,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    before, after = map(int, done.stdout.split())
    assert before == 0
    assert after > 100_000
