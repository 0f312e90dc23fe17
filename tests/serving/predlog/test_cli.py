"""`migrate` and `log recent|stats|export` through the subcommands `register` adds."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from serving.predlog import cli
from serving.predlog.records import PredictionRecord
from serving.settings import Settings
from tests.serving.predlog.helpers import SCHEMA, expected_keys, make_record, open_started, query

INJECTION = "x'; DROP TABLE predictions; --"


def run(settings: Settings, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args, settings))


@pytest.fixture
def logged(store_url: str, tmp_path: Path) -> list[PredictionRecord]:
    records = [make_record(rows=2, seed=i) for i in range(10)]
    odd = dataclasses.replace(SCHEMA, version=INJECTION)
    records.append(make_record(schema=odd, seed=50))
    log = open_started(store_url, tmp_path / "spool")
    log.append(records)
    log.close(timeout=10)
    return records


def test_migrate_applies_then_reports_current(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(Settings(), "migrate", "--database-url", store_url) == 0
    assert "applied 0001_predictions" in capsys.readouterr().out
    assert run(Settings(database_url=store_url), "migrate") == 0
    assert "current" in capsys.readouterr().out
    assert query(store_url, "SELECT count(*) FROM predictions") == [(0,)]


def test_recent_shows_the_newest_rows_up_to_the_limit(
    store_url: str, logged: list[PredictionRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(Settings(), "log", "recent", "--limit", "3", "--database-url", store_url) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["created_at", "(UTC)", "request_id", "row"]
    assert len(lines) == 4
    newest = logged[-1]
    assert newest.request_id in lines[1]


def test_recent_reads_the_read_url_before_the_database_url(
    store_url: str, logged: list[PredictionRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(database_url="sqlite:///nowhere/at/all.db", database_read_url=store_url)
    assert run(settings, "log", "recent") == 0
    assert logged[0].request_id in capsys.readouterr().out


def test_stats_prints_each_version(
    store_url: str, logged: list[PredictionRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(Settings(database_url=store_url), "log", "stats", "--since", "1h") == 0
    out = capsys.readouterr().out
    assert f"{SCHEMA.name} {SCHEMA.version}: 20 rows in 10 requests" in out
    assert "mean top probability" in out
    assert "latency ms: p50" in out
    assert INJECTION in out


def test_stats_filter_is_bound_as_data(
    store_url: str, logged: list[PredictionRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(database_url=store_url)
    assert run(settings, "log", "stats", "--model-version", INJECTION) == 0
    out = capsys.readouterr().out
    assert f"{INJECTION}: 1 rows in 1 requests" in out
    assert SCHEMA.version not in out
    assert query(store_url, "SELECT count(*) FROM predictions") == [(21,)]


def test_export_csv_to_a_file(
    store_url: str, logged: list[PredictionRecord], tmp_path: Path
) -> None:
    out = tmp_path / "export.csv"
    settings = Settings(database_url=store_url)
    assert run(settings, "log", "export", "--format", "csv", "--output", str(out)) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert {(r["request_id"], int(r["row_index"])) for r in rows} == set(expected_keys(logged))


def test_export_jsonl_to_stdout_with_filters(
    store_url: str, logged: list[PredictionRecord], capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    settings = Settings(database_url=store_url)
    code = run(
        settings, "log", "export", "--format", "jsonl", "--since", "10m",
        "--model-version", SCHEMA.version,
    )  # fmt: skip
    assert code == 0
    items = [json.loads(line) for line in capfdbinary.readouterr().out.splitlines()]
    assert {(i["request_id"], i["row_index"]) for i in items} == set(expected_keys(logged[:-1]))


def test_an_unreachable_database_is_one_line_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"
    assert run(Settings(), "log", "recent", "--database-url", url) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "Traceback" not in err


def test_a_missing_sqlite_log_is_reported_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'none.db'}"
    assert run(Settings(), "log", "stats", "--database-url", url) == 1
    assert "no prediction log" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()


def test_since_accepts_durations_and_iso_times() -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert cli.parse_time("90s", now) == now - timedelta(seconds=90)
    assert cli.parse_time("15m", now) == now - timedelta(minutes=15)
    assert cli.parse_time("1h", now) == now - timedelta(hours=1)
    assert cli.parse_time("2d", now) == now - timedelta(days=2)
    assert cli.parse_time("1w", now) == now - timedelta(weeks=1)
    assert cli.parse_time("2024-04-30T08:00") == datetime(2024, 4, 30, 8, tzinfo=UTC)
    assert cli.parse_time("2024-04-30T08:00+02:00") == datetime(2024, 4, 30, 6, tzinfo=UTC)


def test_since_refuses_anything_else(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        run(Settings(), "log", "stats", "--since", "yesterday'; --")
    assert exited.value.code == 2
    assert "neither a duration" in capsys.readouterr().err
