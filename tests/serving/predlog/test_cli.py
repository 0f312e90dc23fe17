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
from serving.predlog.records import ModelSchema, PredictionRecord
from serving.settings import Settings
from tests.serving.predlog.helpers import (
    SCHEMA,
    expected_keys,
    insert_rows,
    make_record,
    open_started,
    query,
    row,
)

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
    assert {f"feature.{name}" for name in SCHEMA.feature_names} <= set(rows[0])
    assert {"proba.malignant", "proba.benign"} <= set(rows[0])


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


def test_recent_shows_the_model_and_the_clients_request_id(
    store_url: str, logged: list[PredictionRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    insert_rows(
        store_url, [row(client_request_id="order-17", created_at="2999-01-01T00:00:00.000000Z")]
    )
    assert run(Settings(database_url=store_url), "log", "recent", "--limit", "2") == 0
    header, newest, older = capsys.readouterr().out.splitlines()
    assert header.split()[-1] == "client_request_id"
    assert newest.split()[4:6] == ["penguins", "v1"]
    assert newest.endswith("order-17")
    assert older.split()[4] == SCHEMA.name


def test_log_commands_filter_by_model(
    store_url: str, logged: list[PredictionRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    insert_rows(store_url, [row(model_name="penguins")])
    settings = Settings(database_url=store_url)
    assert run(settings, "log", "recent", "--model", "penguins") == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert run(settings, "log", "stats", "--model", SCHEMA.name) == 0
    out = capsys.readouterr().out
    assert "penguins" not in out
    assert f"{SCHEMA.name} {SCHEMA.version}: 20 rows" in out
    assert run(settings, "log", "export", "--format", "jsonl", "--model", "penguins") == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_stats_of_a_regressor_is_one_short_line_of_quantiles(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schema = ModelSchema("diabetes", "r1", SCHEMA.feature_names[:10], None)
    log = open_started(store_url, tmp_path / "spool")
    log.append([make_record(rows=2, schema=schema, seed=i) for i in range(26)])
    log.close(timeout=10)
    assert run(Settings(database_url=store_url), "log", "stats") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("diabetes r1: 52 rows in 26 requests")
    assert lines[1].startswith("  predicted values: mean ")
    for name in ("min", "p5", "p25", "p50", "p75", "p95", "max"):
        assert f" {name} " in lines[1]
    assert max(len(line) for line in lines) < 160
    assert not any("predictions:" in line for line in lines)


@pytest.mark.parametrize(
    "argv",
    [
        ("--since", "0001-01-01T00:00:00+14:00"),
        ("--until", "9999-12-31T23:59:59-14:00"),
    ],
)
def test_times_utc_cannot_hold_are_bad_input(
    argv: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        run(Settings(), "log", "stats", *argv)
    assert exited.value.code == 2
    assert "between years 1 and 9999" in capsys.readouterr().err


def test_a_control_character_in_a_filter_is_bad_input(
    store_url: str, logged: list[PredictionRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(database_url=store_url)
    assert run(settings, "log", "export", "--model-version", "a\x1bb") == 2
    assert "control characters" in capsys.readouterr().err
