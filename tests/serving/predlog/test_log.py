"""The prediction log's contract, on both stores: every accepted row lands exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import psycopg
import pytest
from prometheus_client import CollectorRegistry

from serving.predlog import lines
from serving.predlog.queries import Filters
from serving.predlog.records import (
    LogFullError,
    LogUnavailableError,
    ModelSchema,
    PredictionRecord,
)
from serving.predlog.spool import Spool, SpoolLockedError
from tests.serving.predlog.helpers import (
    FEATURES,
    SCHEMA,
    expected_keys,
    make_record,
    metric,
    open_started,
    query,
    stored_keys,
    wait_for_rows,
)

MiB = 1024 * 1024


@contextlib.contextmanager
def store_blocked(url: str) -> Iterator[None]:
    """Another session holds the table, so the log's writes wait (a stand-in for a busy store)."""
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    with psycopg.connect(url) as pg:
        pg.execute("LOCK TABLE predictions IN ACCESS EXCLUSIVE MODE")
        yield
        pg.rollback()


def spool_files(spool_dir: Path) -> list[Path]:
    return sorted(spool_dir.glob("*.skb"))


def test_appended_records_reach_the_store_exactly_once(store_url: str, tmp_path: Path) -> None:
    log = open_started(store_url, tmp_path / "spool")
    records = [make_record(rows=1 + i % 3, seed=i) for i in range(300)]
    for start in range(0, len(records), 7):
        log.append(records[start : start + 7])
    log.close(timeout=30)
    assert stored_keys(store_url) == expected_keys(records)
    assert spool_files(tmp_path / "spool") == []


def test_rows_are_written_while_the_log_runs(store_url: str, tmp_path: Path) -> None:
    log = open_started(store_url, tmp_path / "spool")
    try:
        log.append([make_record(rows=2)])
        assert wait_for_rows(store_url, 2, timeout=10) == 2
    finally:
        log.close(timeout=10)


def test_features_and_probabilities_are_keyed_by_name(store_url: str, tmp_path: Path) -> None:
    record = make_record(rows=2, seed=7)
    log = open_started(store_url, tmp_path / "spool")
    try:
        log.append([record])
        assert wait_for_rows(store_url, 2) == 2
        page = asyncio.run(log.query_page(Filters(), 10, None))
    finally:
        log.close(timeout=10)
    by_row = {item.row_index: item for item in page.items}
    assert record.probabilities is not None
    assert isinstance(record.features, np.ndarray)
    for i in range(2):
        assert by_row[i].features == dict(zip(FEATURES, record.features[i].tolist(), strict=True))
        assert by_row[i].probabilities == {
            "malignant": record.probabilities[i][0],
            "benign": record.probabilities[i][1],
        }
        assert by_row[i].prediction == record.predictions[i]
        assert by_row[i].latency_ms == pytest.approx(record.latency_ms)
        assert by_row[i].model_name == SCHEMA.name
        assert by_row[i].model_version == SCHEMA.version


def test_regressor_rows_hold_the_value_and_no_probabilities(store_url: str, tmp_path: Path) -> None:
    schema = ModelSchema("diabetes", "v1", FEATURES[:10], None)
    record = make_record(rows=2, schema=schema, seed=3)
    log = open_started(store_url, tmp_path / "spool")
    log.append([record])
    log.close(timeout=10)
    rows = query(store_url, "SELECT prediction, probabilities FROM predictions ORDER BY row_index")
    assert [float(prediction) for prediction, _ in rows] == list(record.predictions)
    assert [probabilities for _, probabilities in rows] == [None, None]


def test_client_id_is_stored(store_url: str, tmp_path: Path) -> None:
    log = open_started(store_url, tmp_path / "spool")
    log.append([make_record(client_id="team-a")])
    log.close(timeout=10)
    assert query(store_url, "SELECT client_id FROM predictions") == [("team-a",)]


def test_client_request_id_is_stored_beside_the_servers_id(store_url: str, tmp_path: Path) -> None:
    log = open_started(store_url, tmp_path / "spool")
    record = make_record()
    log.append([replace(record, client_request_id="order-7\ttab")])
    log.close(timeout=10)
    rows = query(store_url, "SELECT request_id, client_request_id FROM predictions")
    assert [(str(rid), cid) for rid, cid in rows] == [(record.request_id, "order-7\ttab")]


def test_a_format_2_spool_left_by_an_older_version_is_upgraded_and_replayed(
    store_url: str, tmp_path: Path
) -> None:
    records = [make_record(rows=2, seed=i) for i in range(5)]
    current = lines.RowEncoder(SCHEMA).encode
    rows = b"".join(current(r, lines.TimeText()) for r in records)
    # Format 2 rows are today's without the last field (client_request_id).
    old = b"".join(line.rsplit(b"\t", 1)[0] + b"\n" for line in rows.splitlines())
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    (spool_dir / f"{1:020d}.tsv").write_bytes(lines.HEADER_V2 + old + b"torn-partial-li")
    log = open_started(store_url, spool_dir)
    assert wait_for_rows(store_url, 10) == 10
    log.close(timeout=10)
    assert stored_keys(store_url) == expected_keys(records)
    assert query(store_url, "SELECT count(*) FROM predictions WHERE client_request_id IS NULL") == [
        (10,)
    ]


def _spooled_by_an_earlier_process(directory: Path, appends: list[list[PredictionRecord]]) -> None:
    """Spool ``appends`` (one micro-batch each) and close, as if the process ended before
    its writer drained anything."""
    earlier = Spool(directory, max_bytes=64 * MiB, segment_bytes=MiB)
    earlier.open()
    for batch in appends:
        earlier.append(batch)
    earlier.close()


def test_full_batches_are_written_back_to_back_without_the_flush_wait(
    store_url: str, tmp_path: Path
) -> None:
    # 3-row frames never end a 250-row batch exactly: each batch stops at 249 rows.
    records = [make_record(rows=3, seed=i) for i in range(300)]
    _spooled_by_an_earlier_process(tmp_path / "spool", [[record] for record in records])
    started = time.monotonic()
    log = open_started(
        store_url, tmp_path / "spool", log_batch_rows=250, log_flush_interval_seconds=5.0
    )
    try:
        assert wait_for_rows(store_url, 900, timeout=4.0) == 900
        assert time.monotonic() - started < 4.0  # four batches, not three flush waits of 5 s
    finally:
        log.close(timeout=10)


def test_spool_left_by_an_earlier_process_is_replayed_at_start(
    store_url: str, tmp_path: Path
) -> None:
    records = [make_record(rows=2, seed=i) for i in range(50)]
    _spooled_by_an_earlier_process(tmp_path / "spool", [records])
    log = open_started(store_url, tmp_path / "spool")
    assert wait_for_rows(store_url, 100) == 100
    log.close(timeout=10)
    assert stored_keys(store_url) == expected_keys(records)


def test_duplicate_request_ids_never_duplicate_rows(store_url: str, tmp_path: Path) -> None:
    registry = CollectorRegistry()
    log = open_started(store_url, tmp_path / "spool", registry)
    record = make_record(rows=3)
    log.append([record, record])
    log.append([record])
    assert wait_for_rows(store_url, 3) == 3
    log.append([make_record(rows=3, request_id=record.request_id)])  # a client's retry
    log.close(timeout=10)
    assert stored_keys(store_url) == expected_keys([record])
    assert metric(registry, "skship_log_rows_written_total") == 3
    assert metric(registry, "skship_log_duplicate_rows_total") == 9


def test_replaying_a_committed_spool_adds_nothing(store_url: str, tmp_path: Path) -> None:
    records = [make_record(rows=2, seed=i) for i in range(20)]
    spool = Spool(tmp_path / "spool", max_bytes=64 * MiB, segment_bytes=MiB)
    spool.open()
    spool.append(records)
    spool.close()
    copies = {path.name: path.read_bytes() for path in spool_files(tmp_path / "spool")}
    open_started(store_url, tmp_path / "spool").close(timeout=10)
    for name, data in copies.items():  # a crash between commit and delete leaves them
        (tmp_path / "spool" / name).write_bytes(data)
    extra = make_record(rows=2, seed=99)  # and the spool gained new records since
    later = Spool(tmp_path / "spool", max_bytes=64 * MiB, segment_bytes=MiB)
    later.open()
    later.append([extra])
    later.close()
    registry = CollectorRegistry()
    open_started(store_url, tmp_path / "spool", registry).close(timeout=10)
    assert stored_keys(store_url) == expected_keys([*records, extra])
    assert metric(registry, "skship_log_duplicate_rows_total") == 40
    assert metric(registry, "skship_log_rows_written_total") == 2
    assert metric(registry, "skship_log_dropped_rows_total", reason="rejected") == 0


def test_spool_cap_refuses_with_retry_after_and_loses_nothing(
    store_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="serving.predlog.spool")
    registry = CollectorRegistry()
    log = open_started(store_url, tmp_path / "spool", registry, spool_max_bytes=MiB)
    accepted: list[PredictionRecord] = []
    with store_blocked(store_url):
        with pytest.raises(LogFullError) as refused:  # noqa: PT012 - append until refused
            for i in range(10_000):
                record = make_record(seed=i)
                log.append([record])
                accepted.append(record)
        assert refused.value.retry_after >= 1
        status = log.status()
        assert not status.accepting
        assert status.reason is not None
        assert "cap" in status.reason
        assert status.spooled_bytes <= MiB
        assert metric(registry, "skship_log_refused_records_total", reason="full") == 1
    assert wait_for_rows(store_url, len(accepted)) == len(accepted)
    deadline = time.monotonic() + 10
    while not log.status().accepting and time.monotonic() < deadline:
        time.sleep(0.05)
    assert log.status().accepting
    log.append([make_record()])  # space again
    transitions = [r.getMessage() for r in caplog.records if "prediction spool" in r.getMessage()]
    assert len(transitions) == 2, transitions  # once each way, not once per refusal
    assert "at its cap" in transitions[0]
    assert "below its cap again" in transitions[1]
    log.close(timeout=10)
    assert len(accepted) > 100
    assert len(stored_keys(store_url)) == len(accepted) + 1
    assert expected_keys(accepted) - stored_keys(store_url) == expected_keys([])


def test_a_spool_flapping_at_its_cap_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="serving.predlog.spool")
    spool = Spool(tmp_path / "spool", max_bytes=MiB, segment_bytes=MiB // 4)
    spool.open()
    for _ in range(3):  # fill to the cap, then drain the oldest segment: full, not, full ...
        with pytest.raises(LogFullError):  # noqa: PT012 - append until refused
            for i in range(10_000):
                spool.append([make_record(seed=i)])
        oldest = spool.segments()[0]
        assert spool.seal_if_drained(oldest, oldest.size)
        spool.remove(oldest)
        assert not spool.full
    spool.close()
    messages = [r.getMessage() for r in caplog.records]
    assert [m.split(":")[0] for m in messages] == [
        "prediction spool at its cap (1048576 bytes)",
        "prediction spool below its cap again",
    ]


def test_torn_last_frame_is_skipped(store_url: str, tmp_path: Path) -> None:
    registry = CollectorRegistry()
    records = [make_record(seed=i) for i in range(3)]
    spool = Spool(tmp_path / "spool", max_bytes=64 * MiB, segment_bytes=MiB)
    spool.open()
    spool.append(records)
    spool.append([make_record(seed=99)])
    spool.close()
    [segment] = spool_files(tmp_path / "spool")
    data = segment.read_bytes()
    segment.write_bytes(data[:-20])  # killed mid-write: the last frame is 600 bytes
    log = open_started(store_url, tmp_path / "spool", registry)
    log.close(timeout=10)
    assert stored_keys(store_url) == expected_keys(records)
    assert metric(registry, "skship_log_spool_torn_lines_total") == 1
    assert metric(registry, "skship_log_dropped_rows_total", reason="corrupt") == 0
    assert spool_files(tmp_path / "spool") == []


def test_a_frame_failing_its_crc_drops_the_rest_of_its_segment_only(
    store_url: str, tmp_path: Path
) -> None:
    registry = CollectorRegistry()
    records = [make_record(seed=i) for i in range(3)]
    spool = Spool(tmp_path / "spool", max_bytes=64 * MiB, segment_bytes=MiB)
    spool.open()
    spool.append(records[:1])
    spool.append(records[1:2])
    spool.close()
    [segment] = spool_files(tmp_path / "spool")
    data = bytearray(segment.read_bytes())
    data[-30] ^= 0xFF  # a power cut left garbage in the second frame
    segment.write_bytes(bytes(data))
    spool.open()
    spool.append(records[2:])  # a new segment
    spool.close()
    log = open_started(store_url, tmp_path / "spool", registry)
    log.close(timeout=10)
    assert stored_keys(store_url) == expected_keys([records[0], records[2]])
    assert metric(registry, "skship_log_dropped_rows_total", reason="corrupt") == 1
    assert spool_files(tmp_path / "spool") == []


def test_garbage_after_the_last_frame_is_counted_as_dropped_and_the_rest_written(
    store_url: str, tmp_path: Path
) -> None:
    registry = CollectorRegistry()
    records = [make_record(seed=i) for i in range(4)]
    spool = Spool(tmp_path / "spool", max_bytes=64 * MiB, segment_bytes=MiB)
    spool.open()
    spool.append(records[:2])
    spool.close()
    [segment] = spool_files(tmp_path / "spool")
    with segment.open("ab") as file:
        file.write(b'{"s":0,"r":"not json\n')
    spool.open()
    spool.append(records[2:])
    spool.close()
    log = open_started(store_url, tmp_path / "spool", registry)
    log.close(timeout=10)
    assert stored_keys(store_url) == expected_keys(records)
    assert metric(registry, "skship_log_dropped_rows_total", reason="corrupt") == 1


def test_close_flushes_everything_spooled(store_url: str, tmp_path: Path) -> None:
    log = open_started(store_url, tmp_path / "spool", log_flush_interval_seconds=5.0)
    records = [make_record(seed=i) for i in range(5000)]
    for start in range(0, len(records), 50):
        log.append(records[start : start + 50])
    log.close(timeout=60)
    assert stored_keys(store_url) == expected_keys(records)
    assert spool_files(tmp_path / "spool") == []


def test_close_returns_by_its_deadline_and_keeps_the_rest_spooled(
    store_url: str, tmp_path: Path
) -> None:
    log = open_started(store_url, tmp_path / "spool")
    records = [make_record(seed=i) for i in range(20)]
    with store_blocked(store_url):
        log.append(records)
        started = time.monotonic()
        log.close(timeout=1.0)
        assert time.monotonic() - started < 6
    assert spool_files(tmp_path / "spool") != []
    open_started(store_url, tmp_path / "spool").close(timeout=10)
    assert stored_keys(store_url) == expected_keys(records)


def test_append_after_close_is_refused(store_url: str, tmp_path: Path) -> None:
    log = open_started(store_url, tmp_path / "spool")
    log.close(timeout=5)
    with pytest.raises(Exception, match="not open"):
        log.append([make_record()])
    assert not log.status().accepting


def test_two_logs_never_share_a_spool_folder(store_url: str, tmp_path: Path) -> None:
    log = open_started(store_url, tmp_path / "spool")
    try:
        with pytest.raises(SpoolLockedError, match="SPOOL_DIR"):
            open_started(store_url, tmp_path / "spool")
    finally:
        log.close(timeout=5)


def test_unwritable_spool_refuses_then_recovers(store_url: str, tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    log = open_started(store_url, spool_dir, spool_segment_bytes=64 * 1024)
    accepted = [make_record()]
    log.append(accepted)
    moved = tmp_path / "moved"
    spool_dir.rename(moved)
    spool_dir.write_text("not a folder")  # every new segment now fails to open
    with pytest.raises(LogUnavailableError, match="spool"):  # noqa: PT012
        for i in range(1000):
            record = make_record(rows=10, seed=i)
            log.append([record])
            accepted.append(record)
    assert not log.status().accepting
    spool_dir.unlink()
    moved.rename(spool_dir)
    deadline = time.monotonic() + 10
    while not log.status().accepting and time.monotonic() < deadline:
        time.sleep(0.05)
    assert log.status().accepting
    log.close(timeout=10)
    assert stored_keys(store_url) == expected_keys(accepted)
