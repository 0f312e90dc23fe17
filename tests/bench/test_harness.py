"""The benchmark's own pieces, run for real against the ceiling app for about a second each.

wrk is a system package: without it these tests skip loudly, or fail with the install hint
when ``BENCH_REQUIRE_WRK=1``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench import procs, render, report, wrk
from bench.check import check
from bench.models import BenchModel, body, sample_rows
from bench.runner import ANY_MODEL, Config, Measurement, Results, progress_line
from bench.servers import APPS, App, Server, ServerError, start

CEILING = next(app for app in APPS if app.name == "ceiling")


@pytest.fixture(scope="module")
def ceiling(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("ceiling")
    server = start(
        CEILING, None, models_dir=workdir, workdir=workdir, database_url="sqlite:///x", cpus=None
    )
    yield server
    server.stop()


@pytest.fixture
def wrk_present() -> None:
    if shutil.which("wrk") is not None:
        return
    if os.environ.get("BENCH_REQUIRE_WRK") == "1":
        pytest.fail(f"BENCH_REQUIRE_WRK=1: {wrk.INSTALL_HINT}")
    pytest.skip(f"SKIPPING BENCH LOAD TESTS: {wrk.INSTALL_HINT}")


def _bodies(tmp_path: Path, rows: int = 1) -> Path:
    return wrk.write_bodies(tmp_path / "bodies.jsonl", [body(X) for X in sample_rows(rows, 4)])


def test_ceiling_becomes_ready_and_answers_checked_requests(ceiling: Server) -> None:
    with httpx.Client() as client:
        served = check(client, ceiling.url, CEILING, None, sample_rows(3, 2))
    assert ceiling.ready_s > 0
    assert served == 6


def test_memory_reads_the_server_rss_and_peak(ceiling: Server) -> None:
    memory = procs.memory(ceiling.pid)
    assert 10 < memory.rss_mib <= memory.peak_mib


@pytest.mark.usefixtures("wrk_present")
def test_wrk_measures_the_ceiling_without_errors(ceiling: Server, tmp_path: Path) -> None:
    result = wrk.run(
        f"{ceiling.url}/predict", _bodies(tmp_path), connections=4, duration_s=1, cpu=None
    )
    assert result.requests > 50
    assert result.errors == 0
    assert 0 < result.p50_ms <= result.p99_ms <= result.max_ms


@pytest.mark.usefixtures("wrk_present")
def test_wrk_counts_rejected_requests_as_non_2xx(ceiling: Server, tmp_path: Path) -> None:
    bodies = wrk.write_bodies(tmp_path / "bad.jsonl", [b"not json"])
    result = wrk.run(f"{ceiling.url}/predict", bodies, connections=2, duration_s=1, cpu=None)
    assert result.requests > 0
    assert result.non_2xx == result.requests
    line = progress_line("ceiling any", 1, 2, result, cpu=0.5)
    assert f", {result.errors} ERRORS (non-2xx {result.requests}" in line  # kinds named


@pytest.mark.usefixtures("wrk_present")
def test_report_puts_the_ceiling_at_one_times_itself(ceiling: Server, tmp_path: Path) -> None:
    result = wrk.run(
        f"{ceiling.url}/predict", _bodies(tmp_path), connections=2, duration_s=1, cpu=None
    )
    config = Config([CEILING], ["logreg"], [1], [2], 1, 0, 1, None, None)
    results = Results(config, [Measurement(1, "ceiling", ANY_MODEL, 1, 2, result, 1.0)])
    (row,) = report.table(results)
    assert row.x_ceiling == pytest.approx(1.0)
    assert row.rps == pytest.approx(result.rps)


def test_missing_wrk_fails_with_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(wrk.WrkError, match="apt-get install -y wrk"):
        wrk.find_wrk()


@pytest.mark.usefixtures("wrk_present")
def test_cpu_seconds_counts_the_server_work_under_load(ceiling: Server, tmp_path: Path) -> None:
    before = procs.cpu_seconds(ceiling.pid)
    result = wrk.run(
        f"{ceiling.url}/predict", _bodies(tmp_path), connections=4, duration_s=1, cpu=None
    )
    spent = procs.cpu_seconds(ceiling.pid) - before
    assert 0.05 < spent <= result.duration_s * len(procs.usable_cpus()) + 0.1


def test_a_server_that_exited_is_not_measured(tmp_path: Path) -> None:
    server = start(
        CEILING, None, models_dir=tmp_path, workdir=tmp_path, database_url="sqlite:///x", cpus=None
    )
    server.stop()
    with pytest.raises(ServerError, match="exited with code"):
        server.require_alive("1 row(s) x 32 connections")


def _result(requests: int) -> wrk.WrkResult:
    return wrk.WrkResult(requests, 10.0, 1.0, 2.0, 3.0, 4.0, 0, {})


def test_scaling_sets_two_workers_beside_one_process() -> None:
    config = Config([], ["logreg"], [1], [32], 10, 0, 2, 0, 1)
    measured = [
        Measurement(round_, app, "logreg", 1, 32, _result(requests), cpu)
        for round_ in (1, 2)
        for app, requests, cpu in (("skship-pg", 10_000, 10.0), ("skship-pg-w2", 15_000, 20.0))
    ]
    (row,) = report.scaling(Results(config, measured))
    assert row.rps == (1000.0, 1500.0)
    assert row.per_cpu == (1000.0, 750.0)
    assert row.cpu_share == (1.0, 2.0)
    assert row.x_rps == pytest.approx(1.5)
    assert row.x_per_cpu == pytest.approx(0.75)
    assert "| logreg | 1 | 32 | 1,000 | 1,500 | 1.50x | 1,000 | 750 | 0.75x | 100% / 200% |" in (
        render.scaling([row])
    )


def test_a_second_worker_runs_on_a_spare_cpu_when_there_is_one() -> None:
    one, two = (next(a for a in APPS if a.name == n) for n in ("skship-pg", "skship-pg-w2"))
    assert Config([], [], [], [], 1, 0, 1, 0, 1).cpus_for(two) == [0]
    assert Config([], [], [], [], 1, 0, 1, 0, 1, (2, 3)).cpus_for(two) == [0, 2]
    assert Config([], [], [], [], 1, 0, 1, 0, 1, (2, 3)).cpus_for(one) == [0]


def test_a_server_with_workers_is_measured_with_every_worker(
    models_dir: Path, tmp_path: Path
) -> None:
    app = App("skship-sqlite-w2", "skship", "sqlite", workers=2)
    model = BenchModel("logreg", "breast_cancer", models_dir, None, models_dir)
    server = start(
        app, model, models_dir=models_dir, workdir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'p.db'}", cpus=None,
    )  # fmt: skip
    try:
        workers = procs.tree(server.pid)[1:]
        before = procs.cpu_seconds(server.pid), procs.cpu_seconds(*workers)
        payload = body(sample_rows(5, 1)[0])
        headers = {"content-type": "application/json"}
        with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0)) as client:
            for _ in range(200):
                client.post(f"{server.url}/predict", content=payload, headers=headers)
        time.sleep(0.5)  # the writers settle: the two readings below are not simultaneous
        tree_cpu = procs.cpu_seconds(server.pid) - before[0]
        workers_cpu = procs.cpu_seconds(*workers) - before[1]
        memory = procs.memory(server.pid)
    finally:
        assert server.stop() == 0
    assert len(workers) == 2
    # Each process's count is whole ticks, read at a slightly different moment per reading.
    slack = 2 * (len(workers) + 1) / procs.CLOCK_TICKS
    assert tree_cpu >= workers_cpu - slack  # the workers are counted (the supervisor idles)
    assert workers_cpu > 0.1
    assert memory.rss_mib > 2 * 100  # a supervisor and two workers with a model each
