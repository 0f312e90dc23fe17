"""``serve --workers N`` for real: worker processes on one socket, their spool slots, signals,
one /metrics, and the prediction log's guarantees when a worker or the database fails.

Like the fault tests (test_log_faults.py), the PostgreSQL ones run against a database of a
throwaway cluster that they may stop, and compare the store with the 200 responses.
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from serving import artifact
from serving.predlog.spool import SUFFIX, instances
from serving.settings import MAX_WORKERS, WORKERS_PER_CPU
from serving.supervisor import EXIT_MARGIN_SECONDS
from tests.live import LiveServer
from tests.pgcluster import PgCluster, free_port
from tests.serving.test_log_faults import Load, stored, wait_until_stored
from training.data import load_builtin
from training.train import fit, save

CLIENTS = 6


@pytest.fixture
def url(cluster: PgCluster) -> str:
    dbname = f"workers_{secrets.token_hex(4)}"
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    return cluster.url_for(dbname)


def server(
    models_dir: Path, workdir: Path, url: str | None = None, workers: int = 2, **env: str
) -> LiveServer:
    return LiveServer(
        models_dir,
        workdir,
        database_url=url,
        env={"WORKERS": str(workers), "LOG_RETRY_MAX_SECONDS": "1", **env},
    )


def metric(base_url: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples with ``labels`` in one scrape of /metrics."""
    text = httpx.get(base_url + "/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def spooled_rows(folder: Path) -> int:
    return sum(instances(p.read_bytes()) for p in folder.glob(f"*{SUFFIX}"))


def gaps(times: list[float]) -> float:
    """The longest time between two consecutive answers."""
    return max((b - a for a, b in itertools.pairwise(sorted(times))), default=0.0)


@pytest.mark.parametrize(
    "value",
    ["0", str(min(MAX_WORKERS, WORKERS_PER_CPU * len(os.sched_getaffinity(0))) + 1), "65"],
)
def test_workers_out_of_range_is_one_line_and_exit_2(
    models_dir: Path, tmp_path: Path, value: str
) -> None:
    live = LiveServer(models_dir, tmp_path)
    for argv, env in (
        (["--workers", value], live.env),
        ([], {**live.env, "WORKERS": value}),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "serving", "serve", *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1
        assert "WORKERS" in result.stderr
        assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("database", ["up", "down"])
def test_a_worker_killed_under_load_is_replaced_in_its_slot_and_loses_nothing(
    cluster: PgCluster,
    url: str,
    models_dir: Path,
    rows: list[list[float]],
    tmp_path: Path,
    database: str,
) -> None:
    live = server(models_dir, tmp_path, url).start()
    try:
        workers = live.wait_workers(2)
        with Load(live.base_url, rows, CLIENTS, fresh_connections=True) as load:
            load.wait_for(200)
            busy_before = cpu_seconds(workers[1])
            if database == "down":
                cluster.stop()
                time.sleep(1.5)  # both slots spool what they answer
            load.wait_for(sum(o.status == 200 for o in load.outcomes) + 300)
            busy = cpu_seconds(workers[1]) - busy_before
            spooled = spooled_rows(tmp_path / "spool" / "slot-1")
            killed_at = time.monotonic()
            os.kill(workers[1], signal.SIGKILL)
            replacement = live.wait_workers(2)
            replaced_at = time.monotonic()
            load.wait_for(sum(o.status == 200 for o in load.outcomes) + 200)
            if database == "down":
                cluster.start()
        wait_until_stored(url, load.answered())
    finally:
        live.stop()
    logged = stored(url)
    meanwhile = [o.at for o in load.outcomes if o.status == 200 and killed_at < o.at < replaced_at]

    assert busy > 0.05  # the killed worker was serving its share
    assert replacement[0] == workers[0]
    assert replacement[1] != workers[1]
    assert f"worker 1 (pid {workers[1]}) was killed by SIGKILL" in live.log()
    assert "restarting it in slot 1" in live.log()
    # The other worker kept answering while the replacement started; only requests the
    # killed worker had in hand failed (each client had at most one).
    assert {o.status for o in load.outcomes} <= {200, None}
    assert len([o for o in load.outcomes if o.status is None]) <= CLIENTS
    assert len(meanwhile) > 20
    assert gaps([killed_at, *meanwhile, replaced_at]) < 2.0
    # Every answered instance is in the store exactly once.
    assert load.answered() - logged == Counter()
    assert max(logged.values()) == 1
    if database == "down":  # the replacement replayed what the killed worker had spooled
        assert spooled > 0
        assert "[worker 1]: replaying" in live.log()


@pytest.mark.postgres
@pytest.mark.slow
def test_sigterm_while_the_database_is_down_stops_every_worker_in_time_and_loses_nothing(
    cluster: PgCluster, url: str, models_dir: Path, rows: list[list[float]], tmp_path: Path
) -> None:
    drain = 3.0
    live = server(models_dir, tmp_path, url, DRAIN_SECONDS=str(drain)).start()
    workers = live.wait_workers(2)
    with Load(live.base_url, rows, CLIENTS, fresh_connections=True) as load:
        load.wait_for(100)
        cluster.stop()
        try:
            time.sleep(1.5)
            signalled = time.monotonic()
            live.signal(signal.SIGTERM)
            code = live.wait_exit(timeout=30)
            elapsed = time.monotonic() - signalled
        except BaseException:
            cluster.start()
            raise
    left = {k: spooled_rows(tmp_path / "spool" / f"slot-{k}") for k in workers}
    cluster.start()
    restarted = server(models_dir, tmp_path, url).start()
    try:
        wait_until_stored(url, load.answered())
    finally:
        restarted.stop()
    logged = stored(url)

    assert code == 0
    # Workers that have not exited DRAIN_SECONDS + EXIT_MARGIN_SECONDS after the signal are
    # killed (their spools keep the records); then the supervisor's own interpreter exits.
    assert elapsed < drain + EXIT_MARGIN_SECONDS + 2.0
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers.values())
    assert all(rows > 0 for rows in left.values())  # each worker kept its records
    assert load.answered() - logged == Counter()
    assert max(logged.values()) == 1


@pytest.mark.postgres
@pytest.mark.slow
def test_workers_of_a_killed_supervisor_drain_and_exit_and_lose_nothing(
    url: str, models_dir: Path, rows: list[list[float]], tmp_path: Path
) -> None:
    drain = 3.0
    live = server(models_dir, tmp_path, url, DRAIN_SECONDS=str(drain)).start()
    workers = live.wait_workers(2)
    with Load(live.base_url, rows, CLIENTS, fresh_connections=True) as load:
        load.wait_for(200)
        killed_at = time.monotonic()
        live.signal(signal.SIGKILL)
        live.wait_exit()
        while any(Path(f"/proc/{pid}").exists() for pid in workers.values()):
            assert time.monotonic() - killed_at < 1.0 + drain + 5.0, "orphaned workers live on"
            time.sleep(0.05)
        gone_after = time.monotonic() - killed_at
    restarted = server(models_dir, tmp_path, url).start()
    try:
        wait_until_stored(url, load.answered())
    finally:
        restarted.stop()
    logged = stored(url)

    assert "the supervising process is gone: draining" in live.log()
    assert gone_after < 1.0 + drain + 2.0
    assert load.answered() - logged == Counter()
    assert max(logged.values()) == 1


@pytest.mark.postgres
@pytest.mark.slow
def test_spools_left_by_another_number_of_workers_are_drained(
    url: str, models_dir: Path, rows: list[list[float]], tmp_path: Path
) -> None:
    """3 workers spool (database unreachable) -> 1 worker adopts their slots and spools
    more -> 2 workers adopt the unslotted spool and, with the database, write everything."""
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    spool = tmp_path / "spool"
    answered: Counter[tuple[str, int]] = Counter()

    def predict(base_url: str) -> None:
        response = httpx.post(base_url + "/predict", json={"instances": rows[:2]}, timeout=10)
        assert response.status_code == 200
        answered.update((response.json()["request_id"], i) for i in range(2))

    three = server(models_dir, tmp_path, nowhere, workers=3, DRAIN_SECONDS="1").start()
    try:
        three.wait_workers(3)
        for _ in range(300):  # a new connection each: until every worker spooled some
            predict(three.base_url)
            if all(spooled_rows(spool / f"slot-{k}") for k in range(3)):
                break
    finally:
        three.stop()
    assert all(spooled_rows(spool / f"slot-{k}") for k in range(3))

    one = server(models_dir, tmp_path, nowhere, workers=1, DRAIN_SECONDS="1").start()
    try:
        for _ in range(5):
            predict(one.base_url)
    finally:
        one.stop()
    assert sorted(p.name for p in spool.iterdir() if p.is_dir()) == []
    assert spooled_rows(spool) == sum(answered.values())

    two = server(models_dir, tmp_path, url, workers=2).start()
    try:
        two.wait_workers(2)
        wait_until_stored(url, answered)
    finally:
        two.stop()
    assert stored(url) == answered
    assert sorted(p.name for p in spool.iterdir() if p.is_dir()) == ["slot-0", "slot-1"]
    assert spooled_rows(spool) == 0
    assert "adopted" in two.log()


@pytest.mark.slow
def test_sighup_reloads_every_worker(models_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "models"
    shutil.copytree(models_dir, root)
    data = load_builtin("breast_cancer")
    v2 = save(fit(data, params={"C": 0.05}, cv_folds=0), data, root, name="breast_cancer").name
    live = server(root, tmp_path).start()
    try:
        workers = live.wait_workers(2)
        artifact.write_current(root, "breast_cancer", v2)
        live.signal(signal.SIGHUP)
        seen: dict[int, str] = {}
        deadline = time.monotonic() + 60
        while len([v for v in seen.values() if v == v2]) < 2:
            assert time.monotonic() < deadline, f"workers report {seen}:\n{live.log()}"
            body = httpx.get(live.base_url + "/ready", timeout=10).json()  # a new connection
            seen[body["worker"]] = body["model"]["version"]
            time.sleep(0.05)
        still = live.workers()
    finally:
        live.stop()
    assert still == workers  # reloaded in place, not restarted


@pytest.mark.slow
def test_one_metrics_reports_every_worker(
    models_dir: Path, tmp_path: Path, rows: list[list[float]]
) -> None:
    live = server(models_dir, tmp_path, MONITORING_INTERVAL_SECONDS="1").start()
    try:
        workers = live.wait_workers(2)
        route = {"route": "/ready", "method": "GET", "status": "200"}
        before = metric(live.base_url, "skship_http_requests_total", **route)
        answered_by: Counter[int] = Counter()
        while min(answered_by[k] for k in workers) < 5:  # each on a new connection
            answered_by[httpx.get(live.base_url + "/ready", timeout=10).json()["worker"]] += 1
            assert answered_by.total() < 500, "one worker takes every connection"
        for _ in range(20):
            httpx.post(live.base_url + "/predict", json={"instances": rows[:3]}, timeout=10)
        time.sleep(1.5)  # every worker samples its gauges each second
        counted = metric(live.base_url, "skship_http_requests_total", **route) - before
        written = metric(live.base_url, "skship_log_rows_written_total")
        reachable = metric(live.base_url, "skship_log_store_reachable")
        queued = metric(live.base_url, "skship_log_rows_queued")
        scrape = httpx.get(live.base_url + "/metrics", timeout=10).text

        os.kill(workers[1], signal.SIGKILL)
        live.wait_workers(2)
        after_kill = metric(live.base_url, "skship_http_requests_total", **route) - before
    finally:
        live.stop()
    assert counted == answered_by.total()  # summed over the workers that answered
    assert written == 60
    assert reachable == 1  # every live worker reaches the store
    assert queued == 0
    assert scrape.count("skship_model_info{") == 1  # one series, no per-process label
    assert scrape.count("skship_monitoring_refreshed_timestamp_seconds{") == 1  # slot 0's
    assert 'pid="' not in scrape
    assert after_kill >= counted  # a dead worker's counts stay in the sums
