"""Issue 4's fault tests: a real server under load while its PostgreSQL or itself fails.

Each test runs `python -m serving serve` against its own database in a throwaway cluster,
drives it with concurrent HTTP clients, breaks something, and then compares the store with
the 200 responses: every instance of every 200 response is logged exactly once.
"""

from __future__ import annotations

import secrets
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.live import LiveServer
from tests.pgcluster import PgCluster

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def url(cluster: PgCluster) -> str:
    dbname = f"serve_{secrets.token_hex(4)}"
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    return cluster.url_for(dbname)


@dataclass(frozen=True)
class Outcome:
    status: int | None
    """None when the connection failed (server killed or not listening)."""
    request_id: str | None
    instances: int
    retry_after: str | None = None
    at: float = field(default_factory=time.monotonic)
    """When the answer (or the failure) came."""


class Load:
    """Concurrent clients posting one or two breast-cancer instances per request."""

    def __init__(
        self,
        base_url: str,
        rows: list[list[float]],
        clients: int = 6,
        *,
        fresh_connections: bool = False,
    ) -> None:
        """``fresh_connections``: a new connection per request (so that with workers every
        worker gets a share, and a dead one's clients move to the others at once)."""
        self.base_url, self.rows = base_url, rows
        self.limits = httpx.Limits(
            max_connections=100, max_keepalive_connections=0 if fresh_connections else 20
        )
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(k,)) for k in range(clients)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _client(self, k: int) -> None:
        with httpx.Client(base_url=self.base_url, timeout=30, limits=self.limits) as client:
            i = k
            while not self._stop.is_set():
                n = 1 + (i % 3 == 0)
                body = {"instances": [self.rows[(i + j) % len(self.rows)] for j in range(n)]}
                i += 1
                try:
                    response = client.post("/predict", json=body)
                except httpx.HTTPError:
                    self.outcomes.append(Outcome(None, None, n))
                    time.sleep(0.05)
                    continue
                request_id = response.json()["request_id"] if response.status_code == 200 else None
                self.outcomes.append(
                    Outcome(
                        response.status_code, request_id, n, response.headers.get("retry-after")
                    )
                )
                if response.status_code != 200:
                    time.sleep(0.02)

    def answered(self) -> Counter[tuple[str, int]]:
        """(request_id, row_index) of every instance of every 200 response."""
        return Counter(
            (o.request_id, row)
            for o in self.outcomes
            if o.status == 200 and o.request_id is not None
            for row in range(o.instances)
        )

    def wait_for(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while sum(o.status == 200 for o in self.outcomes) < count:
            assert time.monotonic() < deadline, "the load made no progress"
            time.sleep(0.05)


def stored(url: str) -> Counter[tuple[str, int]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT request_id, row_index FROM predictions").fetchall()
    return Counter((str(rid), int(index)) for rid, index in rows)


def wait_until_stored(url: str, wanted: Counter[tuple[str, int]], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not wanted - stored(url):
            return
        time.sleep(0.2)


def server(models_dir: Path, workdir: Path, url: str, **env: str) -> LiveServer:
    return LiveServer(
        models_dir,
        workdir,
        database_url=url,
        env={"LOG_RETRY_MAX_SECONDS": "1", "LOG_LEVEL": "warning", **env},
    )


def test_database_stopped_for_20_seconds_fails_no_prediction_and_loses_no_row(
    cluster: PgCluster, url: str, models_dir: Path, rows: list[list[float]], tmp_path: Path
) -> None:
    live = server(models_dir, tmp_path, url).start()
    try:
        with Load(live.base_url, rows) as load:
            load.wait_for(50)
            cluster.stop()
            try:
                time.sleep(20)
                during = httpx.get(live.base_url + "/ready", timeout=5).json()
            finally:
                cluster.start()
            time.sleep(2)
        wait_until_stored(url, load.answered())
    finally:
        live.stop()
    assert [o for o in load.outcomes if o.status != 200] == []
    assert during["log"]["accepting"] is True
    assert during["log"]["store_reachable"] is False
    assert during["log"]["spooled_bytes"] > 0
    assert stored(url) == load.answered()


def test_server_killed_mid_load_and_restarted_logs_every_answer_once(
    url: str, models_dir: Path, rows: list[list[float]], tmp_path: Path
) -> None:
    live = server(models_dir, tmp_path, url).start()
    try:
        with Load(live.base_url, rows) as load:
            load.wait_for(300)
            live.signal(signal.SIGKILL)
            live.wait_exit()
            live.start()
            answered_before = sum(o.status == 200 for o in load.outcomes)
            load.wait_for(answered_before + 200)
        wait_until_stored(url, load.answered())
    finally:
        live.stop()
    logged = stored(url)
    assert load.answered() - logged == Counter()
    assert max(logged.values()) == 1
    assert any(o.status is None for o in load.outcomes)  # the kill did cut requests


def test_sigterm_under_load_flushes_the_spool_before_exit(
    url: str, models_dir: Path, rows: list[list[float]], tmp_path: Path
) -> None:
    live = server(models_dir, tmp_path, url).start()
    with Load(live.base_url, rows) as load:
        load.wait_for(300)
        live.signal(signal.SIGTERM)
        assert live.wait_exit(timeout=30) == 0
    assert sorted((tmp_path / "spool").glob("*.skb")) == []
    logged = stored(url)
    assert load.answered() - logged == Counter()
    assert max(logged.values()) == 1


def test_spool_cap_answers_503_with_retry_after_and_loses_nothing_accepted(
    cluster: PgCluster, url: str, models_dir: Path, rows: list[list[float]], tmp_path: Path
) -> None:
    live = server(models_dir, tmp_path, url, SPOOL_MAX_BYTES=str(1024 * 1024)).start()
    try:
        cluster.stop()
        try:
            with Load(live.base_url, rows) as load:
                deadline = time.monotonic() + 120
                while not any(o.status == 503 for o in load.outcomes):
                    assert time.monotonic() < deadline, "the spool never filled"
                    time.sleep(0.1)
                ready = httpx.get(live.base_url + "/ready", timeout=5)
        finally:
            cluster.start()
        wait_until_stored(url, load.answered())
    finally:
        live.stop()
    refused = [o for o in load.outcomes if o.status == 503]
    assert refused
    assert all(o.retry_after is not None and int(o.retry_after) >= 1 for o in refused)
    assert ready.status_code == 503
    assert "cap" in " ".join(ready.json()["reasons"])
    assert {o.status for o in load.outcomes} <= {200, 503}
    assert stored(url) == load.answered()


@pytest.mark.parametrize("drain", [2.0, 4.0])
def test_sigterm_while_the_database_is_down_exits_within_the_drain_deadline(
    cluster: PgCluster, url: str, models_dir: Path, rows: list[list[float]], tmp_path: Path,
    drain: float,
) -> None:  # fmt: skip
    live = server(models_dir, tmp_path, url, DRAIN_SECONDS=str(drain)).start()
    with Load(live.base_url, rows) as load:
        load.wait_for(100)
        cluster.stop()
        try:
            time.sleep(2.5)  # the writers are now retrying, or waiting for a connection
            signalled = time.monotonic()
            live.signal(signal.SIGTERM)
            code = live.wait_exit(timeout=30)
            elapsed = time.monotonic() - signalled
        finally:
            cluster.start()
    restarted = server(models_dir, tmp_path, url).start()
    try:
        wait_until_stored(url, load.answered())
    finally:
        restarted.stop()
    assert code == 0
    assert elapsed < drain + 1.0, f"{elapsed:.1f} s against DRAIN_SECONDS={drain}"
    assert load.answered() - stored(url) == Counter()
