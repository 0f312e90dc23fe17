"""Labels on both stores: migration 0003, upserts that keep the label received last."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest

from serving.predlog.feedback import FeedbackRecord
from serving.predlog.log import is_postgres
from serving.predlog.postgres import PostgresStore
from serving.predlog.sqlite import SqliteStore
from serving.predlog.store import RowsRejectedError, Store
from tests.serving.predlog.helpers import query

NOW = time.time()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened: Store = PostgresStore(store_url) if is_postgres(store_url) else SqliteStore(store_url)
    opened.open()
    opened.prepare()
    yield opened
    opened.close()


def _label(request_id: str, row: int, label: object, at: float = NOW) -> FeedbackRecord:
    return FeedbackRecord(request_id, row, label, at, client_id="alice")


def _stored(url: str) -> dict[tuple[str, int], object]:
    label = "label::text" if is_postgres(url) else "label"
    rows = query(url, f"SELECT request_id, row_index, {label} FROM feedback")
    return {(str(rid), int(row)): json.loads(text) for rid, row, text in rows}


def test_migration_creates_an_empty_feedback_table(store: Store, store_url: str) -> None:
    assert query(store_url, "SELECT count(*) FROM feedback") == [(0,)]
    versions = [v for (v,) in query(store_url, "SELECT version FROM schema_migrations")]
    assert 3 in versions


def test_labels_keep_their_json_type(store: Store, store_url: str) -> None:
    rid = str(uuid.uuid4())
    labels = ["benign", 12.5, 3, True]
    written = store.write_feedback([_label(rid, i, label) for i, label in enumerate(labels)])
    assert written == 4
    assert _stored(store_url) == {(rid, i): label for i, label in enumerate(labels)}


def test_a_later_label_replaces_the_earlier(store: Store, store_url: str) -> None:
    rid = str(uuid.uuid4())
    store.write_feedback([_label(rid, 0, "malignant", NOW)])
    assert store.write_feedback([_label(rid, 0, "benign", NOW + 1)]) == 1
    assert _stored(store_url) == {(rid, 0): "benign"}


def test_a_replayed_older_label_changes_nothing(store: Store, store_url: str) -> None:
    rid = str(uuid.uuid4())
    older, newer = _label(rid, 0, "malignant", NOW), _label(rid, 0, "benign", NOW + 1)
    store.write_feedback([older, newer])
    assert store.write_feedback([older]) == 0
    assert _stored(store_url) == {(rid, 0): "benign"}


def test_replaying_a_batch_keeps_one_row_per_instance(store: Store, store_url: str) -> None:
    rid = str(uuid.uuid4())
    batch = [_label(rid, i, i * 1.5) for i in range(50)]
    store.write_feedback(batch)
    store.write_feedback(batch)
    assert query(store_url, "SELECT count(*) FROM feedback") == [(50,)]


def test_within_a_batch_the_last_record_for_a_row_wins(store: Store, store_url: str) -> None:
    rid = str(uuid.uuid4())
    store.write_feedback([_label(rid, 0, "a"), _label(rid, 0, "b"), _label(rid, 0, "c", NOW - 5)])
    assert _stored(store_url) == {(rid, 0): "b"}


def test_request_ids_are_stored_canonically(store: Store, store_url: str) -> None:
    rid = uuid.uuid4()
    store.write_feedback([_label(str(rid).upper(), 0, "benign")])
    assert list(_stored(store_url)) == [(str(rid), 0)]


@pytest.mark.parametrize("request_id", ["not-a-uuid", "'; DROP TABLE feedback; --"])
def test_a_malformed_request_id_is_rejected_not_retried(
    store: Store, store_url: str, request_id: str
) -> None:
    with pytest.raises(RowsRejectedError):
        store.write_feedback([_label(str(uuid.uuid4()), 0, "ok"), _label(request_id, 0, "x")])
    assert query(store_url, "SELECT count(*) FROM feedback") == [(0,)]


def test_a_label_that_is_not_json_is_rejected(store: Store) -> None:
    with pytest.raises(RowsRejectedError):
        store.write_feedback([_label(str(uuid.uuid4()), 0, object())])
