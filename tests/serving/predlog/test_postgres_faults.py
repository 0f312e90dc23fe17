"""PostgreSQL failing under a running log: stopped, killed, restarted; the writer killed.

Each test uses a database in this module's throwaway cluster; nothing accepted may be lost
or duplicated, and append never refuses while the spool has room.
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from serving.predlog.log import DurablePredictionLog
from serving.predlog.records import LogStatus, PredictionRecord
from tests.pgcluster import PgCluster
from tests.serving.predlog.helpers import (
    expected_keys,
    make_record,
    metric,
    open_started,
    stored_keys,
    wait_for_rows,
)
from tests.serving.predlog.log_process import request_id

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def url(cluster: PgCluster) -> str:
    dbname = f"faults_{secrets.token_hex(4)}"
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    return cluster.url_for(dbname)


def append_through(
    log: DurablePredictionLog, seconds: float, fault: threading.Thread
) -> tuple[list[PredictionRecord], int, list[LogStatus]]:
    """Append one record every ~2 ms for ``seconds`` while ``fault`` runs."""
    accepted: list[PredictionRecord] = []
    refused = 0
    statuses = []
    fault.start()
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        record = make_record(rows=1 + i % 2, seed=i)
        try:
            log.append([record])
            accepted.append(record)
        except Exception:
            refused += 1
        if i % 100 == 0:
            statuses.append(log.status())
        i += 1
        time.sleep(0.002)
    fault.join()
    return accepted, refused, statuses


def test_database_stopped_for_20_seconds_loses_and_refuses_nothing(
    cluster: PgCluster, url: str, tmp_path: Path
) -> None:
    registry = CollectorRegistry()
    log = open_started(url, tmp_path / "spool", registry)

    def outage() -> None:
        time.sleep(3)
        cluster.stop()
        time.sleep(20)
        cluster.start()

    try:
        accepted, refused, statuses = append_through(log, 27, threading.Thread(target=outage))
        rows = sum(len(r.features) for r in accepted)
        assert wait_for_rows(url, rows, timeout=90) == rows
    finally:
        log.close(timeout=30)
    assert refused == 0
    assert all(s.accepting for s in statuses)
    assert any(not s.store_reachable for s in statuses)
    assert max(s.oldest_unwritten_age_s or 0 for s in statuses) > 10
    assert stored_keys(url) == expected_keys(accepted)
    assert metric(registry, "skship_log_write_retries_total") > 0
    assert metric(registry, "skship_log_dropped_rows_total", reason="corrupt") == 0


def test_database_killed_and_restarted_loses_and_duplicates_nothing(
    cluster: PgCluster, url: str, tmp_path: Path
) -> None:
    log = open_started(url, tmp_path / "spool")

    def crash() -> None:
        time.sleep(3)
        cluster.kill()
        time.sleep(5)
        cluster.start()

    try:
        accepted, refused, _ = append_through(log, 12, threading.Thread(target=crash))
        rows = sum(len(r.features) for r in accepted)
        assert wait_for_rows(url, rows, timeout=90) == rows
    finally:
        log.close(timeout=30)
    assert refused == 0
    assert stored_keys(url) == expected_keys(accepted)


def test_close_with_the_database_down_returns_by_its_deadline(
    cluster: PgCluster, url: str, tmp_path: Path
) -> None:
    log = open_started(url, tmp_path / "spool")
    records = [make_record(seed=i) for i in range(200)]
    cluster.stop()
    try:
        log.append(records)
        started = time.monotonic()
        log.close(timeout=2)
        assert time.monotonic() - started < 10
    finally:
        cluster.start()
    assert sorted((tmp_path / "spool").glob("*.skb"))
    open_started(url, tmp_path / "spool").close(timeout=30)
    assert stored_keys(url) == expected_keys(records)


def test_log_started_while_the_database_is_down_catches_up(
    cluster: PgCluster, url: str, tmp_path: Path
) -> None:
    cluster.stop()
    try:
        log = open_started(url, tmp_path / "spool")
        records = [make_record(seed=i) for i in range(50)]
        log.append(records)
        status = log.status()
        assert status.accepting
        assert not status.store_reachable
    finally:
        cluster.start()
    try:
        assert wait_for_rows(url, 50, timeout=60) == 50
    finally:
        log.close(timeout=10)
    assert stored_keys(url) == expected_keys(records)


def test_writer_process_killed_mid_drain_loses_nothing_acknowledged(
    url: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.serving.predlog.log_process", url, str(spool), "3000"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    acknowledged = -1
    assert child.stdout is not None
    try:
        for line in child.stdout:
            if line.startswith("A "):
                acknowledged = int(line.split()[1])
            if acknowledged >= 1500 and 0 < wait_for_rows(url, 1, timeout=0.01) < 6000:
                break
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    written_at_kill = wait_for_rows(url, 6000, timeout=0.01)
    assert 0 < written_at_kill < 6000  # killed mid-drain
    open_started(url, spool).close(timeout=60)
    stored = stored_keys(url)
    wanted = Counter((request_id(i), row) for i in range(acknowledged + 1) for row in range(2))
    assert wanted - stored == Counter()  # everything acknowledged is there
    assert max(stored.values()) == 1  # and nothing twice
