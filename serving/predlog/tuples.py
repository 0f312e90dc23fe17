"""Spooled COPY BINARY tuples back in Python, for the SQLite store (it has no arrays and
stores a row per instance); PostgreSQL never needs this: it reads the tuples itself."""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson

from serving.predlog.frames import (
    ELEM_F8,
    ELEM_I2,
    FIELDS,
    I32,
    I64,
    SEPARATOR,
    TEXTUAL,
    ModelRow,
    split_tuples,
)

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_F64 = struct.Struct(">d")


@dataclass(frozen=True, slots=True)
class DecodedRequest:
    """One tuple back in Python: for SQLite, which stores a row per instance."""

    request_id: str
    created_at: datetime
    model_key: int
    features: list[list[Any]]
    """Per instance, the values as sent: numbers, category texts, booleans, None."""
    predictions: list[str] | list[float]
    probabilities: np.ndarray | None
    latency_ms: float
    client_id: str | None
    client_request_id: str | None


def decode(payload: bytes, models: dict[int, ModelRow]) -> Iterator[DecodedRequest]:
    """A requests payload's tuples, one request each (off the request path: SQLite)."""
    for raw, _ in split_tuples(payload):
        fields: list[bytes | None] = []
        pos = 2
        for _ in range(FIELDS):
            (n,) = I32.unpack_from(raw, pos)
            pos += 4
            fields.append(None if n < 0 else raw[pos : pos + n])
            pos += max(n, 0)
        rid, ts, mk, rc, feats, labels, values, proba, la, texts, cid, crid = fields
        if rid is None or ts is None or mk is None or rc is None or la is None or feats is None:
            raise ValueError("a tuple misses a required field")
        key = I64.unpack(mk)[0]
        model = models.get(key)
        if model is None:
            raise ValueError(f"no model row for key {key}")
        rows = I32.unpack(rc)[0]
        matrix = _array(feats, ELEM_F8).reshape(rows, len(model.feature_names))
        features = _json_values(matrix)
        if texts is not None:
            textual = [i for i, kind in enumerate(model.feature_kinds) if kind in TEXTUAL]
            for row, text in zip(features, _text_array(texts), strict=True):
                for i, value in zip(textual, text.split(SEPARATOR), strict=True):
                    row[i] = orjson.loads(value)
        predictions: list[str] | list[float]
        if labels is not None and model.classes is not None:
            classes = model.classes
            predictions = [classes[i] for i in _array(labels, ELEM_I2).tolist()]
        elif values is not None:
            predictions = _array(values, ELEM_F8).tolist()
        else:
            predictions = []
        probabilities = None
        if proba is not None:
            probabilities = _array(proba, ELEM_F8).reshape(rows, -1)
        yield DecodedRequest(
            str(uuid.UUID(bytes=rid)),
            _EPOCH + timedelta(microseconds=I64.unpack(ts)[0]),
            key, features, predictions, probabilities, _F64.unpack(la)[0],
            None if cid is None else cid.decode(), None if crid is None else crid.decode(),
        )  # fmt: skip


def _json_values(matrix: np.ndarray) -> list[list[Any]]:
    """The numbers as PostgreSQL's view prints them: integral ones as integers (``181``, not
    ``181.0``), NaN as None (null)."""
    values = matrix.astype(object)
    integral = (matrix == np.round(matrix)) & (np.abs(matrix) < 2.0**53)
    values[integral] = matrix[integral].astype(np.int64)
    values[np.isnan(matrix)] = None
    rows: list[list[Any]] = values.tolist()
    return rows


def _array(field: bytes, elem: np.dtype) -> np.ndarray:
    ndim = I32.unpack_from(field, 0)[0]
    if ndim == 0:
        return np.empty(0, dtype=np.float64)
    count = int(np.prod([I32.unpack_from(field, 12 + 8 * d)[0] for d in range(ndim)]))
    return np.frombuffer(field, dtype=elem, count=count, offset=12 + 8 * ndim)["v"].astype(
        np.float64 if elem is ELEM_F8 else np.int64
    )


def _text_array(field: bytes) -> list[str]:
    ndim = I32.unpack_from(field, 0)[0]
    if ndim == 0:
        return []
    (count,) = I32.unpack_from(field, 12)
    pos, out = 12 + 8 * ndim, []
    for _ in range(count):
        (n,) = I32.unpack_from(field, pos)
        pos += 4
        out.append(field[pos : pos + n].decode())
        pos += n
    return out
