"""Log queries never hang the service: a database that is stopped, silent or locked gets a fast
503 for GET /predictions, delays neither /health nor a reload, and never holds up SIGTERM.

PostgreSQL here is a throwaway cluster that the tests stop and start (tests/pgcluster.py).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import signal
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.predlog.reading import SHUTTING_DOWN, UNREADABLE
from tests.live import LiveServer
from tests.pgcluster import PgCluster
from tests.serving.conftest import make_settings

DATABASE_WORDS = ("psycopg", "connection", "CONTEXT", "portal", "port ", "127.0.0.1", "FATAL")


@pytest.fixture
def url(cluster: PgCluster) -> str:
    dbname = f"outage_{secrets.token_hex(4)}"
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    return cluster.url_for(dbname)


@contextlib.contextmanager
def stopped(cluster: PgCluster) -> Iterator[None]:
    cluster.stop()
    try:
        yield
    finally:
        cluster.start()


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word, as a hung database."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield int(listener.getsockname()[1])


def timed_get(base_url: str, path: str) -> tuple[int | None, float, str]:
    started = time.monotonic()
    try:
        response = httpx.get(base_url + path, timeout=120)
    except httpx.HTTPError as exc:  # the server closed the connection while shutting down
        return None, time.monotonic() - started, type(exc).__name__
    return response.status_code, time.monotonic() - started, response.text


def assert_generic_503(status: int, body: str) -> None:
    assert status == 503
    assert body in (f'{{"detail":"{UNREADABLE}"}}', f'{{"detail":"{SHUTTING_DOWN}"}}')
    assert not any(word in body for word in DATABASE_WORDS)


def test_a_silent_database_gets_a_503_within_the_query_timeout(
    models_dir: Path, tmp_path: Path
) -> None:
    with silent_server() as port:
        settings = make_settings(
            models_dir,
            tmp_path,
            database_read_url=f"postgresql://nobody@127.0.0.1:{port}/none",
            database_query_timeout_seconds=1.0,
        )
        client = TestClient(create_app(settings))
        with client:
            started = time.monotonic()
            response = client.get("/predictions")
            elapsed = time.monotonic() - started
            closing = time.monotonic()
        closed_in = time.monotonic() - closing
    assert_generic_503(response.status_code, response.text)
    assert response.headers["retry-after"] == "5"
    assert elapsed < 1.0 + 1.0
    assert closed_in < 3.0  # the pool's connect attempts never hold up the shutdown


@pytest.mark.postgres
@pytest.mark.slow
def test_a_stopped_database_gets_a_fast_generic_503_logged_once(
    cluster: PgCluster, url: str, models_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(
        models_dir, tmp_path, database_url=url, database_query_timeout_seconds=1.0
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/predictions").status_code == 200
        with stopped(cluster), caplog.at_level(logging.WARNING, "serving.predlog.reading"):
            answers = []
            for _ in range(5):
                started = time.monotonic()
                response = client.get("/predictions")
                answers.append((response, time.monotonic() - started))
    for response, elapsed in answers:
        assert_generic_503(response.status_code, response.text)
        assert response.headers["retry-after"]
        assert elapsed < 1.0 + 1.0
    problems = [r.getMessage() for r in caplog.records if r.name == "serving.predlog.reading"]
    assert len(problems) == 1  # once per distinct problem, not once per request


@pytest.mark.postgres
@pytest.mark.slow
def test_database_errors_reach_the_server_log_not_the_client(
    cluster: PgCluster, url: str, models_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    role = f"noaccess_{secrets.token_hex(3)}"
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
    reader = url.replace("postgres@", f"{role}@")
    settings = make_settings(models_dir, tmp_path, database_url=url, database_read_url=reader)
    with TestClient(create_app(settings)) as client, caplog.at_level(logging.WARNING):
        responses = [client.get("/predictions") for _ in range(3)]
    for response in responses:
        assert_generic_503(response.status_code, response.text)
        assert "permission" not in response.text
    logged = [r.getMessage() for r in caplog.records if r.name == "serving.predlog.reading"]
    assert len(logged) == 1
    assert "permission denied" in logged[0]


@pytest.mark.postgres
@pytest.mark.slow
def test_queries_during_an_outage_delay_neither_a_reload_nor_health(
    cluster: PgCluster, url: str, models_dir: Path, tmp_path: Path
) -> None:
    wait = 8.0
    server = LiveServer(
        models_dir, tmp_path, database_url=url, env={"DATABASE_QUERY_TIMEOUT_SECONDS": str(wait)}
    ).start()
    try:
        assert httpx.get(server.base_url + "/predictions", timeout=10).status_code == 200
        with stopped(cluster), ThreadPoolExecutor(10) as clients:
            queries = [
                clients.submit(timed_get, server.base_url, "/predictions") for _ in range(10)
            ]
            time.sleep(1.0)  # all ten in flight, more than the default executor's 6 threads
            started = time.monotonic()
            health = httpx.get(server.base_url + "/health", timeout=60)
            health_s = time.monotonic() - started
            started = time.monotonic()
            reload = httpx.post(server.base_url + "/admin/reload", timeout=60)
            reload_s = time.monotonic() - started
            answers = [q.result() for q in queries]
    finally:
        server.stop()
    assert health.status_code == 200
    assert health_s < 1.0
    assert reload.status_code == 200, reload.text
    assert reload_s < 5.0
    for status, elapsed, body in answers:
        assert status is not None
        assert_generic_503(status, body)
        assert elapsed < wait + 3.0
    assert min(elapsed for _, elapsed, _ in answers) > 1.0 + reload_s  # they overlapped


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("fault", ["locked", "stopped"])
def test_sigterm_with_queries_hanging_exits_within_the_drain_deadline(
    cluster: PgCluster, url: str, models_dir: Path, tmp_path: Path, fault: str
) -> None:
    drain = 5.0
    env = {
        "DRAIN_SECONDS": str(drain),
        # Bounds far beyond the drain deadline: only cancelling the queries can meet it.
        "DATABASE_QUERY_TIMEOUT_SECONDS": "60",
        "DATABASE_STATEMENT_TIMEOUT_SECONDS": "120",
    }
    server = LiveServer(models_dir, tmp_path, database_url=url, env=env).start()
    answers: list[tuple[int | None, float, str]] = []
    try:
        assert httpx.get(server.base_url + "/predictions", timeout=10).status_code == 200
        with contextlib.ExitStack() as fault_on:
            if fault == "locked":
                locker = fault_on.enter_context(psycopg.connect(url))
                locker.execute("LOCK TABLE predictions IN ACCESS EXCLUSIVE MODE")
            else:
                fault_on.enter_context(stopped(cluster))
            threads = [
                threading.Thread(
                    target=lambda: answers.append(timed_get(server.base_url, "/predictions"))
                )
                for _ in range(10)
            ]
            for thread in threads:
                thread.start()
            if fault == "locked":
                _wait_for_blocked_queries(cluster.url, count=4)
            else:
                time.sleep(1.5)
            signalled = time.monotonic()
            server.signal(signal.SIGTERM)
            code = server.wait_exit(timeout=60)
            exited_in = time.monotonic() - signalled
            for thread in threads:
                thread.join(30)
    finally:
        server.stop()
    assert code == 0, server.log()
    # No query outlived the signal: uvicorn's wait for in-flight requests ended at once.
    assert "timeout graceful shutdown exceeded" not in server.log()
    assert _requests_drained_in(server.log()) < 1.5, server.log()
    # Stopped, the log's final flush may spend what is left of the deadline (its own
    # contract: test_postgres_faults.py, test_close_with_the_database_down_...), and the
    # interpreter takes a second or so to exit after that (as on an idle SIGTERM).
    assert exited_in < (drain + 2.5 if fault == "stopped" else drain), (exited_in, server.log())
    assert len(answers) == 10
    for status, _, body in answers:
        if status is not None:
            assert_generic_503(status, body)


def _requests_drained_in(log: str) -> float:
    """Seconds from the signal to the start of the lifespan's shutdown, from the server log."""

    def at(line: str) -> float:
        return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()

    lines = log.splitlines()
    signalled = next(at(line) for line in lines if "signal 15: draining" in line)
    closed = next(line for line in lines if "prediction log closed in" in line)
    took = float(closed.rsplit(" in ", 1)[1].split()[0])
    return at(closed) - took - signalled


def _wait_for_blocked_queries(admin_url: str, count: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(admin_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND query LIKE '%FROM predictions%'"
            ).fetchone()
            if row is not None and row[0] >= count:
                return
            time.sleep(0.05)
    raise AssertionError(f"fewer than {count} queries waiting on the lock")
