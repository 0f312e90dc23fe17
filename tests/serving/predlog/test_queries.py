"""Queries on both stores: keyset pages, filters, statistics, exports; inputs are only data."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from serving.predlog.cli import open_queries
from serving.predlog.queries import Filters
from serving.predlog.records import InvalidCursorError, ModelSchema, PredictionRecord
from tests.serving.predlog.helpers import (
    FEATURES,
    SCHEMA,
    expected_keys,
    make_record,
    open_started,
    query,
)

INJECTION = "x'; DROP TABLE predictions; --"
NOW = time.time()


def _at(record: PredictionRecord, seconds_ago: float) -> PredictionRecord:
    return dataclasses.replace(record, created_at=NOW - seconds_ago)


def _version(name: str) -> ModelSchema:
    return dataclasses.replace(SCHEMA, version=name)


@pytest.fixture
def logged(store_url: str, tmp_path: Path) -> tuple[str, list[PredictionRecord]]:
    """v1 two to three hours ago, v2 in the last hour, one injection-shaped version."""
    records = [
        _at(make_record(rows=2, schema=_version("v1"), seed=i), 7200 + 60 * i) for i in range(20)
    ]
    records += [
        _at(make_record(rows=1, schema=_version("v2"), seed=100 + i), 60 * i) for i in range(30)
    ]
    records.append(_at(make_record(rows=1, schema=_version(INJECTION), seed=999), 30))
    log = open_started(store_url, tmp_path / "spool")
    log.append(records)
    log.close(timeout=30)
    return store_url, records


def _walk(url: str, filters: Filters, limit: int) -> list[tuple[str, int, datetime]]:
    reader = open_queries(url)
    seen, cursor = [], None
    while True:
        page = reader.page(filters, limit, cursor)
        seen += [(i.request_id, i.row_index, i.created_at) for i in page.items]
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor


def test_pages_hand_out_every_row_once_newest_first(
    logged: tuple[str, list[PredictionRecord]],
) -> None:
    url, records = logged
    seen = _walk(url, Filters(), limit=7)
    assert len(seen) == len({(rid, row) for rid, row, _ in seen})
    assert {(rid, row) for rid, row, _ in seen} == set(expected_keys(records))
    times = [t for _, _, t in seen]
    assert times == sorted(times, reverse=True)


def test_pages_filter_by_time_range(logged: tuple[str, list[PredictionRecord]]) -> None:
    url, records = logged
    since = datetime.fromtimestamp(NOW - 3600, UTC)
    until = datetime.fromtimestamp(NOW - 600, UTC)
    seen = _walk(url, Filters(since=since, until=until), limit=4)
    wanted = [r for r in records if NOW - 3600 <= r.created_at < NOW - 600]
    assert {(rid, row) for rid, row, _ in seen} == set(expected_keys(wanted))
    assert wanted


def test_pages_filter_by_model_version(logged: tuple[str, list[PredictionRecord]]) -> None:
    url, records = logged
    seen = _walk(url, Filters(model_version="v1"), limit=9)
    wanted = [r for r in records if r.model.version == "v1"]
    assert {(rid, row) for rid, row, _ in seen} == set(expected_keys(wanted))


def test_injection_shaped_model_version_is_only_data(
    logged: tuple[str, list[PredictionRecord]],
) -> None:
    url, records = logged
    page = open_queries(url).page(Filters(model_version=INJECTION), 10, None)
    assert [item.model_version for item in page.items] == [INJECTION]
    assert query(url, "SELECT count(*) FROM predictions")[0][0] == sum(
        len(r.features) for r in records
    )


@pytest.mark.parametrize("cursor", ["garbage", "", "eyJhIjoxfQ", "WyJ4IiwieSIsMV0"])
def test_a_cursor_the_log_did_not_issue_is_refused(
    logged: tuple[str, list[PredictionRecord]], cursor: str
) -> None:
    url, _ = logged
    with pytest.raises(InvalidCursorError):
        open_queries(url).page(Filters(), 5, cursor or "%%%")


def test_stats_per_version(logged: tuple[str, list[PredictionRecord]]) -> None:
    url, records = logged
    stats = {s.model_version: s for s in open_queries(url).stats(Filters())}
    assert set(stats) == {"v1", "v2", INJECTION}
    v1 = [r for r in records if r.model.version == "v1"]
    s = stats["v1"]
    assert (s.rows, s.requests) == (40, 20)
    labels = [p for r in v1 for p in r.predictions]
    assert s.classes == {label: labels.count(label) for label in set(labels)}
    tops = [max(row) for r in v1 for row in r.probabilities.tolist()]  # type: ignore[union-attr]
    assert s.mean_top_probability == pytest.approx(float(np.mean(tops)))
    latencies = [r.latency_ms for r in v1]
    assert s.latency_ms == pytest.approx(tuple(np.percentile(latencies, [50, 95, 99])))


def test_stats_honour_the_filters(logged: tuple[str, list[PredictionRecord]]) -> None:
    url, _ = logged
    since = datetime.fromtimestamp(NOW - 3600, UTC)
    found = open_queries(url).stats(Filters(since=since, model_version="v2"))
    assert [(s.model_version, s.rows) for s in found] == [("v2", 30)]


def _export(url: str, fmt: str, filters: Filters) -> bytes:
    out = io.BytesIO()
    open_queries(url).export(filters, fmt, out)  # type: ignore[arg-type]
    return out.getvalue()


def test_csv_export_has_a_header_and_every_row(
    logged: tuple[str, list[PredictionRecord]],
) -> None:
    url, records = logged
    rows = list(csv.DictReader(io.StringIO(_export(url, "csv", Filters()).decode())))
    assert {(r["request_id"], int(r["row_index"])) for r in rows} == set(expected_keys(records))
    first = records[0]
    row = next(r for r in rows if r["request_id"] == first.request_id and r["row_index"] == "0")
    assert isinstance(first.features, np.ndarray)
    assert json.loads(row["features"]) == dict(
        zip(FEATURES, first.features[0].tolist(), strict=True)
    )
    assert first.probabilities is not None
    assert json.loads(row["probabilities"]) == dict(
        zip(("malignant", "benign"), first.probabilities[0].tolist(), strict=True)
    )
    assert row["model_version"] == "v1"


def test_jsonl_export_is_one_object_per_row_oldest_first(
    logged: tuple[str, list[PredictionRecord]],
) -> None:
    url, records = logged
    lines = _export(url, "jsonl", Filters()).decode().splitlines()
    items = [json.loads(line) for line in lines]
    assert {(i["request_id"], i["row_index"]) for i in items} == set(expected_keys(records))
    times = [datetime.fromisoformat(i["created_at"].replace("Z", "+00:00")) for i in items]
    assert times == sorted(times)
    injected = next(i for i in items if i["model_version"] == INJECTION)
    assert set(injected["features"]) == set(FEATURES)


def test_exports_honour_the_filters(logged: tuple[str, list[PredictionRecord]]) -> None:
    url, records = logged
    until = datetime.fromtimestamp(NOW - 3600, UTC)
    for fmt in ("csv", "jsonl"):
        data = _export(url, fmt, Filters(until=until, model_version="v1")).decode()
        wanted = [r for r in records if r.model.version == "v1"]
        assert data.count(wanted[0].request_id) == 2
        assert INJECTION not in data
        assert sum(1 for line in data.splitlines() if "v2" in line) == 0


def test_export_of_an_empty_range_is_just_the_header(
    logged: tuple[str, list[PredictionRecord]],
) -> None:
    url, _ = logged
    future = datetime.now(UTC) + timedelta(days=1)
    assert _export(url, "csv", Filters(since=future)).decode().splitlines() == [
        "request_id,row_index,created_at,model_name,model_version,features,prediction,"
        "probabilities,latency_ms,client_id,client_request_id"
    ]
    assert _export(url, "jsonl", Filters(since=future)) == b""


def test_a_page_needs_a_positive_limit(logged: tuple[str, list[PredictionRecord]]) -> None:
    url, _ = logged
    with pytest.raises(ValueError, match="limit"):
        open_queries(url).page(Filters(), 0, None)


def test_naive_times_are_utc(logged: tuple[str, list[PredictionRecord]]) -> None:
    url, records = logged
    since = datetime.fromtimestamp(NOW - 3600, UTC)
    aware = _walk(url, Filters(since=since), limit=50)
    naive = _walk(url, Filters(since=since.replace(tzinfo=None)), limit=50)
    assert aware == naive
    assert len(aware) == sum(len(r.features) for r in records if r.created_at >= NOW - 3600)
