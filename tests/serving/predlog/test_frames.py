"""The spool's frames: what the appender encodes decodes back to the records, every path alike."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from serving.predlog import frames, tuples
from serving.predlog.records import ModelSchema, PredictionRecord
from tests.serving.predlog.helpers import FEATURES, SCHEMA, make_record

REGRESSOR = ModelSchema("diabetes", "r1", FEATURES[:10], None)
TYPED = ModelSchema(
    "penguins", "v1", ("island", "bill", "tagged"), ("Adelie", "Gentoo"),
    ("category", "number", "boolean"),
)  # fmt: skip


def _typed(rows: int, seed: int) -> PredictionRecord:
    record = make_record(rows=rows, seed=seed)
    values: list[list[Any]] = [["Biscoe", 39.5, True], ["Dream", None, False], [None, 41.0, None]]
    return replace(
        record,
        model=TYPED,
        features=[values[(seed + i) % 3] for i in range(rows)],
        predictions=["Adelie" if (seed + i) % 2 else "Gentoo" for i in range(rows)],
    )


def _decoded(records: list[PredictionRecord]) -> list[tuples.DecodedRequest]:
    encoder = frames.RequestEncoder(records[0].model)
    payload = encoder.encode(records)
    return list(tuples.decode(payload, {encoder.model.key: encoder.model}))


@pytest.mark.parametrize("rows", [1, 3, 100])
def test_numeric_classifier_requests_decode_to_what_was_sent(rows: int) -> None:
    records = [make_record(rows=rows, seed=i, client_id="ann" if i else None) for i in range(4)]
    records[1] = replace(records[1], client_request_id="order-7")
    decoded = {d.request_id: d for d in _decoded(records)}
    for record in records:
        found = decoded[record.request_id]
        assert np.array_equal(np.array(found.features, dtype=float), record.features)
        assert found.predictions == list(record.predictions)
        assert found.probabilities is not None
        assert record.probabilities is not None
        assert np.array_equal(found.probabilities, record.probabilities)
        assert found.latency_ms == record.latency_ms
        assert (found.client_id, found.client_request_id) == (
            record.client_id, record.client_request_id,
        )  # fmt: skip
        assert abs(found.created_at.timestamp() - record.created_at) < 1e-6


def test_a_lone_request_encodes_exactly_as_in_a_batch() -> None:
    record = make_record(rows=2, seed=5, client_id="ann")
    encoder = frames.RequestEncoder(SCHEMA)
    alone = encoder.encode([record])
    batched = encoder.encode([record, make_record(rows=2, seed=6)])
    assert batched.startswith(alone)


@pytest.mark.parametrize("count", [2, 3, 4, 9])
@pytest.mark.parametrize("schema", [SCHEMA, REGRESSOR], ids=["classifier", "regressor"])
@pytest.mark.parametrize("clients", ["none", "some", "all"])
def test_a_batch_encodes_as_its_requests_do_one_by_one(
    count: int, schema: ModelSchema, clients: str
) -> None:
    """Small batches go one by one, larger ones as numpy groups, and a request without
    client ids keeps the template's NULL tail: every path gives the same bytes."""
    records = []
    for i in range(count):
        client = {"none": None, "some": "ann" if i % 2 else None, "all": f"client {i}"}[clients]
        record = make_record(rows=1 + i % 2, schema=schema, seed=i, client_id=client)
        if clients == "all":
            record = replace(record, client_request_id=f"order-{i}")
        records.append(record)
    encoder = frames.RequestEncoder(schema)
    alone = {r.request_id: encoder.encode([r]) for r in records}
    batched = encoder.encode(records)
    # Grouped by rows per request, in order within each group.
    expected = [alone[r.request_id] for rows in (1, 2) for r in records if len(r.features) == rows]
    assert batched == b"".join(expected)
    decoded = [d.request_id for d in tuples.decode(batched, {encoder.model.key: encoder.model})]
    assert sorted(decoded) == sorted(r.request_id for r in records)


@pytest.mark.parametrize(
    "written",
    [
        "{12345678-1234-5678-1234-567812345678}",
        "urn:uuid:12345678-1234-5678-1234-567812345678",
        "12345678123456781234567812345678",
        "12345678-1234-5678-1234-56781234567Z",
    ],
)
def test_request_ids_in_other_forms_are_read_as_uuids_or_refused(written: str) -> None:
    records = [make_record(seed=i) for i in range(5)]
    records[2] = replace(records[2], request_id=written)
    encoder = frames.RequestEncoder(SCHEMA)
    if written.endswith("Z"):  # 36 characters, hyphens in place, not hex
        for batch in (records, records[2:3]):
            with pytest.raises(ValueError, match=r"hexadecimal|base 16"):
                encoder.encode(batch)
        return
    model = {encoder.model.key: encoder.model}
    for batch in (records, records[2:3]):
        ids = [d.request_id for d in tuples.decode(encoder.encode(batch), model)]
        assert "12345678-1234-5678-1234-567812345678" in ids


def test_regressor_and_typed_requests_decode_too() -> None:
    [regressor] = _decoded([make_record(rows=3, schema=REGRESSOR, seed=1)])
    assert len(regressor.predictions) == 3
    assert all(isinstance(v, float) for v in regressor.predictions)
    assert regressor.probabilities is None
    typed = [_typed(rows=2, seed=i) for i in range(3)]
    decoded = {d.request_id: d for d in _decoded(typed)}
    for record in typed:
        assert decoded[record.request_id].features == [
            [v if not isinstance(v, float) or not v.is_integer() else int(v) for v in row]
            for row in record.features
        ]


def test_a_prediction_outside_the_classes_is_refused() -> None:
    record = replace(make_record(rows=1), predictions=["neither"])
    with pytest.raises(ValueError, match="not one of the model's classes"):
        frames.RequestEncoder(SCHEMA).encode([record])


def test_scan_stops_before_a_torn_frame_and_names_a_corrupt_one() -> None:
    encoder = frames.RequestEncoder(SCHEMA)
    first = frames.frame(frames.REQUESTS_MAGIC, encoder.encode([make_record()]), 1)
    second = frames.frame(frames.REQUESTS_MAGIC, encoder.encode([make_record()]), 1)
    assert [f.end for f in frames.scan(first + second[:-1])] == [len(first)]
    broken = bytearray(first + second)
    broken[len(first) + 20] ^= 1
    with pytest.raises(frames.CorruptFrameError) as caught:
        list(frames.scan(bytes(broken)))
    assert caught.value.offset == len(first)
