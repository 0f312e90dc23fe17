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
