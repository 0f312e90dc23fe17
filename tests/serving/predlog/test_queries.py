"""Queries on both stores: keyset pages, filters, statistics, exports; inputs are only data."""

from __future__ import annotations

import base64
import csv
import dataclasses
import io
import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psycopg
import pytest
from psycopg.rows import dict_row

from serving.predlog import sql
from serving.predlog.cli import open_queries
from serving.predlog.queries import MAX_ROW_INDEX, Filters, InvalidFilterError, decode_cursor
from serving.predlog.records import InvalidCursorError, ModelSchema, PredictionRecord
from tests.serving.predlog.helpers import (
    FEATURES,
    PENGUIN,
    SCHEMA,
    expected_keys,
    insert_rows,
    make_record,
    migrate,
    open_started,
    query,
    row,
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


def test_csv_export_has_a_column_per_feature_and_class(
    logged: tuple[str, list[PredictionRecord]],
) -> None:
    url, records = logged
    rows = list(csv.DictReader(io.StringIO(_export(url, "csv", Filters()).decode())))
    assert {(r["request_id"], int(r["row_index"])) for r in rows} == set(expected_keys(records))
    first = records[0]
    row = next(r for r in rows if r["request_id"] == first.request_id and r["row_index"] == "0")
    assert isinstance(first.features, np.ndarray)
    assert {name: float(row[f"feature.{name}"]) for name in FEATURES} == dict(
        zip(FEATURES, first.features[0].tolist(), strict=True)
    )
    assert first.probabilities is not None
    assert [float(row["proba.malignant"]), float(row["proba.benign"])] == (
        first.probabilities[0].tolist()
    )
    assert row["model_version"] == "v1"
    assert "features" not in row
    assert "probabilities" not in row


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
        "request_id,row_index,created_at,model_name,model_version,prediction,"
        "latency_ms,client_id,client_request_id"
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


def test_pages_filter_by_model_name(logged: tuple[str, list[PredictionRecord]]) -> None:
    url, records = logged
    insert_rows(url, [row(model_name="penguins")])
    assert _walk(url, Filters(model_name="nope"), limit=5) == []
    assert len(_walk(url, Filters(model_name="penguins"), limit=5)) == 1
    everything = sum(len(r.features) for r in records)
    assert len(_walk(url, Filters(model_name=SCHEMA.name), limit=50)) == everything


@pytest.mark.parametrize("value", ["a\x00b", "\x1b[31m", "tab\there"])
@pytest.mark.parametrize("name", ["model_name", "model_version"])
def test_filters_refuse_control_characters(name: str, value: str) -> None:
    given: dict[str, Any] = {name: value}
    with pytest.raises(InvalidFilterError) as refused:
        Filters(**given)
    assert refused.value.parameter == name


@pytest.mark.parametrize(
    ("name", "moment"),
    [
        ("since", datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))),
        ("until", datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-14)))),
    ],
)
def test_filters_refuse_times_that_utc_cannot_hold(name: str, moment: datetime) -> None:
    given: dict[str, Any] = {name: moment}
    with pytest.raises(InvalidFilterError) as refused:
        Filters(**given)
    assert refused.value.parameter == name


def test_filters_keep_times_in_utc() -> None:
    moment = datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert Filters(since=moment).since == datetime(2026, 1, 1, 10, tzinfo=UTC)
    assert Filters(until=datetime(2026, 1, 1)).until == datetime(2026, 1, 1, tzinfo=UTC)


def _encoded(position: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


RID = "0190a6f0-0000-7000-8000-000000000000"


@pytest.mark.parametrize(
    "position",
    [
        [1, RID, 0],
        ["2026-01-01T00:00:00+00:00", 5, 0],
        ["2026-01-01T00:00:00+00:00", RID, "0"],
        ["2026-01-01T00:00:00+00:00", RID, False],
        ["2026-01-01T00:00:00+00:00", RID, 2**31],
        ["2026-01-01T00:00:00+00:00", RID, 2**64 - 1],
        ["2026-01-01T00:00:00+00:00", RID, -1],
        ["0001-01-01T00:00:00+14:00", RID, 0],
        ["2026-01-01T00:00:00", RID, 0],
        ["2026-01-01T00:00:00+00:00", "not-a-uuid", 0],
        ["2026-01-01T00:00:00+00:00", RID],
        {"created_at": "2026-01-01T00:00:00+00:00"},
    ],
)
def test_decode_cursor_refuses_anything_but_a_position(position: object) -> None:
    with pytest.raises(InvalidCursorError):
        decode_cursor(_encoded(position))


def test_decode_cursor_reads_a_position_in_utc() -> None:
    cursor = _encoded(["2026-01-01T02:00:00+02:00", RID.upper(), MAX_ROW_INDEX])
    assert decode_cursor(cursor) == (datetime(2026, 1, 1, tzinfo=UTC), RID, MAX_ROW_INDEX)


def test_stats_of_a_regressor_are_a_distribution_of_its_values(
    store_url: str, tmp_path: Path
) -> None:
    schema = ModelSchema("diabetes", "r1", FEATURES[:10], None)
    records = [make_record(rows=3, schema=schema, seed=i) for i in range(20)]
    log = open_started(store_url, tmp_path / "spool")
    log.append(records)
    log.close(timeout=30)
    [found] = open_queries(store_url).stats(Filters())
    values = np.array([float(p) for r in records for p in r.predictions])
    assert found.classes == {}
    assert (found.other_classes, found.other_rows) == (0, 0)
    assert found.mean_top_probability is None
    assert found.values is not None
    v = found.values
    assert v.count == 60
    assert v.mean == pytest.approx(values.mean())
    assert v.min == pytest.approx(values.min())
    assert v.max == pytest.approx(values.max())
    assert [v.p5, v.p25, v.p50, v.p75, v.p95] == pytest.approx(
        np.percentile(values, [5, 25, 50, 75, 95]).tolist()
    )
    latencies = [r.latency_ms for r in records]
    assert found.latency_ms == pytest.approx(tuple(np.percentile(latencies, [50, 95, 99])))


def test_stats_list_the_top_classes_and_sum_up_the_rest(store_url: str) -> None:
    migrate(store_url)
    # class cNN is predicted NN + 1 times: c24 most often; 25 classes, 325 rows.
    classes = [f"c{k:02d}" for k in range(25)]
    rows = [
        row(
            request_id=str(uuid.uuid4()),
            prediction=classes[k],
            probabilities={c: float(c == classes[k]) for c in classes},
        )
        for k in range(25)
        for _ in range(k + 1)
    ]
    insert_rows(store_url, rows)
    [found] = open_queries(store_url).stats(Filters())
    assert list(found.classes) == [f"c{k:02d}" for k in range(24, 4, -1)]
    assert found.classes["c24"] == 25
    assert (found.other_classes, found.other_rows) == (5, 1 + 2 + 3 + 4 + 5)
    assert found.values is None


def test_stats_keep_text_labels_as_classes_without_probabilities(store_url: str) -> None:
    migrate(store_url)
    insert_rows(store_url, [row(prediction=label) for label in ("yes", "no", "yes", "12")])
    [found] = open_queries(store_url).stats(Filters())
    assert found.classes == {"yes": 2, "12": 1, "no": 1}
    assert found.values is None


def test_typed_features_come_back_as_sent(store_url: str) -> None:
    migrate(store_url)
    insert_rows(store_url, [row()])
    [item] = open_queries(store_url).page(Filters(), 10, None).items
    assert item.features == PENGUIN
    [line] = _export(store_url, "jsonl", Filters()).splitlines()
    assert json.loads(line)["features"] == PENGUIN
    [cells] = list(csv.DictReader(io.StringIO(_export(store_url, "csv", Filters()).decode())))
    assert {k: v for k, v in cells.items() if k.startswith("feature.")} == {
        "feature.island": "Biscoe",
        "feature.bill_length_mm": "",
        "feature.flipper_length_mm": "181",  # an integral number is logged as an integer
        "feature.sex": "female",
        "feature.tagged": "true",
    }


def test_csv_of_mixed_versions_has_the_union_of_their_columns(store_url: str) -> None:
    migrate(store_url)
    insert_rows(
        store_url,
        [
            row(created_at="2026-01-01T00:00:00.000001Z", features={"a": 1, "b": 2}),
            row(
                created_at="2026-01-01T00:00:01.000000Z",
                model_name="other",
                features={"c": "x", "a": 3},
                prediction="no",
                probabilities={"yes": 0.25, "no": 0.75},
            ),
        ],
    )
    text = _export(store_url, "csv", Filters()).decode()
    header, first, second = text.splitlines()
    assert header.split(",") == [
        "request_id", "row_index", "created_at", "model_name", "model_version",
        "feature.a", "feature.b", "feature.c", "prediction", "proba.yes", "proba.no",
        "latency_ms", "client_id", "client_request_id",
    ]  # fmt: skip
    assert first.split(",")[5:] == ["1", "2", "", "Adelie", "", "", "1.25", "", ""]
    assert second.split(",")[5:] == ["3", "", "x", "no", "0.25", "0.75", "1.25", "", ""]


def test_exports_are_byte_for_byte_the_same_from_both_stores(pg_url: str, tmp_path: Path) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'db' / 'predictions.db'}"
    records = [
        make_record(rows=1 + i % 3, seed=i, client_id="ann" if i % 2 else None) for i in range(30)
    ]
    records.append(make_record(rows=2, schema=ModelSchema("diabetes", "r1", FEATURES[:10], None)))
    rid = str(uuid.uuid4())
    typed = [
        row(request_id=rid, row_index=i, client_request_id="order-7", latency_ms=0.1)
        for i in range(3)
    ]
    for url in (sqlite_url, pg_url):
        log = open_started(url, tmp_path / f"spool-{url[:6]}")
        log.append(records)
        log.close(timeout=30)
        insert_rows(url, typed)
    for fmt in ("csv", "jsonl"):
        exported = {url: _export(url, fmt, Filters()) for url in (sqlite_url, pg_url)}
        assert exported[sqlite_url] == exported[pg_url], fmt
        assert exported[pg_url].count(b"\n") == 3 + sum(len(r.features) for r in records) + (
            fmt == "csv"
        )
    jsonl = _export(pg_url, "jsonl", Filters()).decode().splitlines()
    assert jsonl[-1] == orjson.dumps(json.loads(jsonl[-1])).decode()  # compact, as orjson
    created = [json.loads(line)["created_at"] for line in jsonl]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", c) for c in created)


# log stats before it read the base tables: the same figures, through the view.
STATS_THROUGH_THE_VIEW = """
SELECT model_name, model_version,
       count(*) AS rows,
       count(*) FILTER (WHERE row_index = 0) AS requests,
       count(probabilities) AS with_probabilities,
       avg((SELECT max(value::double precision) FROM json_each_text(probabilities)))
           AS mean_top_probability,
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms)
           FILTER (WHERE row_index = 0) AS latency_percentiles,
       min(created_at) AS first_at,
       max(created_at) AS last_at
FROM predictions
WHERE (%(since)s::timestamptz IS NULL OR created_at >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR created_at < %(until)s)
  AND (%(model_name)s::text IS NULL OR model_name = %(model_name)s)
  AND (%(model_version)s::text IS NULL OR model_version = %(model_version)s)
GROUP BY model_name, model_version
ORDER BY max(created_at) DESC, model_name, model_version"""


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"since": datetime.fromtimestamp(NOW - 3000, UTC)},
        {"model_name": "diabetes"},
        {"model_version": "v2", "until": datetime.fromtimestamp(NOW - 600, UTC)},
    ],
)
def test_stats_from_the_base_tables_agree_with_the_view(
    pg_url: str, tmp_path: Path, filters: dict[str, Any]
) -> None:
    """Classifiers with and without probabilities (in one version), several rows per
    request, a regressor and a typed model: the base-table statistics are those the view
    gives, filter by filter."""
    records = [
        _at(make_record(rows=1 + i % 4, schema=_version(f"v{1 + i % 2}"), seed=i), 60 * i)
        for i in range(60)
    ]
    records += [
        _at(dataclasses.replace(make_record(rows=2, seed=i), probabilities=None), 90 * i)
        for i in range(200, 210)
    ]
    regressor = ModelSchema("diabetes", "r1", FEATURES[:10], None)
    records += [_at(make_record(rows=3, schema=regressor, seed=i), 45 * i) for i in range(20)]
    log = open_started(pg_url, tmp_path / "spool")
    log.append(records)
    log.close(timeout=30)
    insert_rows(pg_url, [row(request_id=str(uuid.uuid4()), row_index=0) for _ in range(5)])
    params = {"since": None, "until": None, "model_name": None, "model_version": None}
    params |= filters
    with psycopg.connect(pg_url, row_factory=dict_row) as conn:
        base = conn.execute(sql.PG_STATS, params).fetchall()
        view = conn.execute(STATS_THROUGH_THE_VIEW, params).fetchall()
    assert base, "the filters leave something to describe"
    assert [(b["model_name"], b["model_version"]) for b in base] == [
        (v["model_name"], v["model_version"]) for v in view
    ]
    for b, v in zip(base, view, strict=True):
        for column in ("rows", "requests", "with_probabilities", "first_at", "last_at"):
            assert b[column] == v[column], column
        assert b["mean_top_probability"] == pytest.approx(v["mean_top_probability"])
        assert b["latency_percentiles"] == pytest.approx(v["latency_percentiles"])
