"""The benchmark's own pieces, run for real against the ceiling app for about a second each.

wrk is a system package: without it these tests skip loudly, or fail with the install hint
when ``BENCH_REQUIRE_WRK=1``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench import procs, report, wrk
from bench.check import check
from bench.models import body, sample_rows
from bench.runner import ANY_MODEL, Config, Measurement, Results, progress_line
from bench.servers import APPS, Server, ServerError, start

CEILING = next(app for app in APPS if app.name == "ceiling")


@pytest.fixture(scope="module")
def ceiling(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("ceiling")
    server = start(
        CEILING, None, models_dir=workdir, workdir=workdir, database_url="sqlite:///x", cpu=None
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
        CEILING, None, models_dir=tmp_path, workdir=tmp_path, database_url="sqlite:///x", cpu=None
    )
    server.stop()
    with pytest.raises(ServerError, match="exited with code"):
        server.require_alive("1 row(s) x 32 connections")
