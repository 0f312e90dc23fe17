"""The spool's format: PostgreSQL COPY BINARY tuples of ``prediction_requests``, in frames.

The log stores one row per *request* (docs/log-layout.md): its instances as 2-d arrays, the
names of a model version once, in ``prediction_models``. The appender encodes a whole
micro-batch at once: every request of one model and one size shares the fixed-width head of
its tuple, so a numpy structured array holds them all, filled column by column and written
with one ``tobytes`` (hand-written because no library encodes COPY BINARY from numpy, and
the per-row Python of a general encoder is the cost this format exists to remove). Only
variable-width fields (client ids, a typed model's category texts) are added per request.

A frame is ``HEADER`` (magic, payload length, instances, CRC-32 of the payload) and its
payload. ``MODEL_MAGIC`` frames hold a model version's names (JSON), ``REQUESTS_MAGIC``
frames COPY tuples: the writer streams their payloads into COPY as they are.
"""

from __future__ import annotations

import hashlib
import struct
import uuid
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import orjson

from serving.predlog.records import ModelSchema, PredictionRecord

SEGMENT_HEADER = b"#skship-spool 4\n"
"""First bytes of every segment: the format (4: frames of COPY BINARY tuples)."""
HEADER = struct.Struct("<4sIII")
MODEL_MAGIC = b"SKM1"
REQUESTS_MAGIC = b"SKR1"
_MAGICS = frozenset((MODEL_MAGIC, REQUESTS_MAGIC))
MAX_PAYLOAD = 1 << 30
"""A length beyond this is corruption, not a frame."""

COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
"""COPY BINARY's file header: signature, flags, header extension length."""
COPY_TRAILER = b"\xff\xff"
FIELDS = 12
"""A tuple's fields: the columns of ``sql.REQUEST_COLUMNS``, in that order."""

EPOCH_2000 = 946_684_800.0
_FLOAT8, _INT2, _TEXT = 701, 21, 25
_NULL = b"\xff\xff\xff\xff"
_I16 = struct.Struct(">h")
I32 = struct.Struct(">i")
I64 = struct.Struct(">q")
F64 = struct.Struct(">d")
ELEM_F8 = np.dtype([("n", ">i4"), ("v", ">f8")])
ELEM_I2 = np.dtype([("n", ">i4"), ("v", ">i2")])
_TIME_OFFSET = 2 + 4 + 16 + 4
"""Where created_at starts in a tuple (after the field count and request_id)."""
_ROWS_OFFSET = _TIME_OFFSET + 8 + 4 + 8 + 4
"""Where row_count starts in a tuple."""
TEXTUAL = frozenset(("category", "boolean"))
ONE_BY_ONE = 3
"""Up to this many requests of a kind are encoded one by one: a group's numpy calls cost
more than they save below 4 (measured on 30 features)."""
_NULL_TAIL = _NULL * 3
"""feature_texts, client_id and client_request_id, all NULL."""
_HYPHENS = (8, 13, 18, 23)
"""Where a canonical UUID's hyphens are."""
SEPARATOR = "\x1f"
"""Joins a row's category texts: JSON text never holds it unescaped."""


def model_key(name: str, version: str) -> int:
    """A model version's 64-bit key: the first 8 bytes of sha256(name U+001F version), as a
    signed integer (migration 0004 computes the same in SQL)."""
    digest = hashlib.sha256(f"{name}{SEPARATOR}{version}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(frozen=True, slots=True)
class ModelRow:
    """A ``prediction_models`` row: how the view turns a model's arrays back into JSON."""

    key: int
    name: str
    version: str
    feature_names: tuple[str, ...]
    feature_kinds: tuple[str, ...]
    classes: tuple[str, ...] | None
    features_format: str
    probabilities_format: str | None

    @classmethod
    def of(cls, schema: ModelSchema) -> ModelRow:
        kinds = schema.feature_kinds or ("number",) * len(schema.feature_names)
        if len(kinds) != len(schema.feature_names):
            raise ValueError(f"model {schema.name}: kinds and feature names differ")
        textual = [i for i, kind in enumerate(kinds) if kind in TEXTUAL]
        slots = [
            len(kinds) + textual.index(i) + 1 if kind in TEXTUAL else i + 1
            for i, kind in enumerate(kinds)
        ]
        parts = [
            f"{_format_key(n)}:%{s}$s" for n, s in zip(schema.feature_names, slots, strict=True)
        ]
        probabilities = None
        if schema.classes is not None:
            probabilities = "{" + ",".join(f"{_format_key(c)}:%s" for c in schema.classes) + "}"
        return cls(
            model_key(schema.name, schema.version), schema.name, schema.version,
            tuple(schema.feature_names), tuple(kinds), schema.classes,
            "{" + ",".join(parts) + "}", probabilities,
        )  # fmt: skip

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "key": self.key, "name": self.name, "version": self.version,
                "feature_names": self.feature_names, "feature_kinds": self.feature_kinds,
                "classes": self.classes, "features_format": self.features_format,
                "probabilities_format": self.probabilities_format,
            }
        )  # fmt: skip

    @classmethod
    def from_json(cls, data: bytes) -> ModelRow:
        value = orjson.loads(data)
        classes = value["classes"]
        return cls(
            int(value["key"]), str(value["name"]), str(value["version"]),
            tuple(value["feature_names"]), tuple(value["feature_kinds"]),
            None if classes is None else tuple(classes),
            str(value["features_format"]), value["probabilities_format"],
        )  # fmt: skip

    def params(self) -> tuple[Any, ...]:
        """The row as INSERT parameters, in the table's column order."""
        return (
            self.key, self.name, self.version, list(self.feature_names),
            list(self.feature_kinds), None if self.classes is None else list(self.classes),
            self.features_format, self.probabilities_format,
        )  # fmt: skip


def _format_key(name: str) -> str:
    """A JSON key for a format() template (``%`` doubled)."""
    return orjson.dumps(name).decode().replace("%", "%%")


@dataclass(frozen=True, slots=True)
class _Head:
    """The fixed-width part of one kind of tuple: its dtype, its bytes with every constant
    set, and which of its arrays have elements."""

    dtype: np.dtype
    data: bytes
    filled: tuple[str, ...]
    rid: int
    ts: int
    la: int
    """Offsets of the request id, created_at and latency_ms values."""


def frame(magic: bytes, payload: bytes, instances: int) -> bytes:
    return HEADER.pack(magic, len(payload), instances, zlib.crc32(payload)) + payload


class RequestEncoder:
    """Encodes the records of one model version as COPY tuples; built once per version."""

    def __init__(self, schema: ModelSchema) -> None:
        self.model = ModelRow.of(schema)
        self.model_frame = frame(MODEL_MAGIC, self.model.to_json(), 0)
        kinds = self.model.feature_kinds
        self._width = len(kinds)
        self._numeric = [i for i, kind in enumerate(kinds) if kind not in TEXTUAL]
        self._textual = [i for i, kind in enumerate(kinds) if kind in TEXTUAL]
        classes = schema.classes
        self._classes = None if classes is None else {c: i for i, c in enumerate(classes)}
        # A numeric model's tuples end in three NULLs (feature_texts, and the client ids of
        # a request that has none): the template holds them, and a request with a client
        # id has them cut off and its own tail added.
        self._baked = 0 if self._textual else len(_NULL_TAIL)
        self._heads: dict[tuple[int, bool], _Head] = {}
        self._texts: dict[tuple[Any, ...], bytes] = {}

    def encode(self, records: Sequence[PredictionRecord]) -> bytes:
        """The records' tuples, in order of ``records`` within each (rows, kind) group."""
        if len(records) == 1 and not self._textual:  # a lone request: the usual light load
            record = records[0]
            rows = len(record.predictions)
            if rows and len(record.features) == rows:
                return self._encode_one(rows, record.probabilities is not None, record)
        groups: dict[tuple[int, bool], list[PredictionRecord]] = {}
        for record in records:
            size = len(record.predictions)
            if len(record.features) != size:
                raise ValueError(f"request {record.request_id}: rows and predictions differ")
            key = (size, record.probabilities is not None)
            found = groups.get(key)
            if found is None:
                groups[key] = [record]
            else:
                found.append(record)
        return b"".join(
            self._encode_group(size, proba, group) for (size, proba), group in groups.items()
        )

    def _head(self, rows: int, proba: bool) -> _Head:
        """The dtype of a tuple's fixed-width part and its bytes with every constant set
        (copying bytes is 15 times cheaper than copying a structured numpy scalar)."""
        found = self._heads.get((rows, proba))
        if found is not None:
            return found
        classifier = self._classes is not None
        k, c = self._width, len(self._classes or ())
        fields: list[Any] = [("nf", ">i2")]
        fields += [("rid_n", ">i4"), ("rid", "V16"), ("ts_n", ">i4"), ("ts", ">i8")]
        fields += [("mk_n", ">i4"), ("mk", ">i8"), ("rc_n", ">i4"), ("rc", ">i4")]
        fields += _array_fields("f", ELEM_F8, (rows, k))
        if classifier:
            fields += [*_array_fields("l", ELEM_I2, (rows,)), ("v_n", ">i4")]
        else:
            fields += [("l_n", ">i4"), *_array_fields("v", ELEM_F8, (rows,))]
        fields += _array_fields("p", ELEM_F8, (rows, c)) if proba else [("p_n", ">i4")]
        fields += [("la_n", ">i4"), ("la", ">f8")]
        if self._baked:
            fields += [("tail", f"V{self._baked}")]
        dtype = np.dtype(fields)
        names = frozenset(dtype.names or ())
        head = np.zeros((), dtype=dtype)
        head["nf"] = FIELDS
        head["rid_n"], head["ts_n"], head["mk_n"], head["rc_n"], head["la_n"] = 16, 8, 8, 4, 8
        head["mk"], head["rc"] = self.model.key, rows
        head["f_n"], head["f_h"] = _array_head(ELEM_F8, _FLOAT8, (rows, k))
        if classifier:
            head["l_n"], head["l_h"] = _array_head(ELEM_I2, _INT2, (rows,))
            head["v_n"] = -1
        else:
            head["v_n"], head["v_h"] = _array_head(ELEM_F8, _FLOAT8, (rows,))
            head["l_n"] = -1
        if proba:
            head["p_n"], head["p_h"] = _array_head(ELEM_F8, _FLOAT8, (rows, c))
        else:
            head["p_n"] = -1
        for field, size in (("f", 8), ("l", 2), ("v", 8), ("p", 8)):
            if field in names:  # an array with no elements has no element lengths to set
                head[field]["n"] = size
        if self._baked:
            head["tail"] = np.void(_NULL_TAIL)
        filled = tuple(f for f in ("f", "l", "v", "p") if f in names)
        offsets: Mapping[str, Any] = dtype.fields or {}
        found = _Head(
            dtype, head.tobytes(), filled, offsets["rid"][1], offsets["ts"][1], offsets["la"][1]
        )
        self._heads[(rows, proba)] = found
        return found

    def _encode_group(self, rows: int, proba: bool, group: list[PredictionRecord]) -> bytes:
        if len(group) <= ONE_BY_ONE and rows and not self._textual:
            return b"".join([self._encode_one(rows, proba, record) for record in group])
        head = self._head(rows, proba)
        n = len(group)
        tuples = np.ndarray((n,), head.dtype, buffer=bytearray(head.data * n))
        tuples["rid"] = np.frombuffer(_uuids([r.request_id for r in group]), "V16")
        tuples["ts"] = [round((r.created_at - EPOCH_2000) * 1e6) for r in group]
        tuples["la"] = [r.latency_ms for r in group]
        texts: list[bytes] | None = None
        if rows:
            if self._textual:
                features, texts = self._typed(rows, group)
            else:
                features = np.concatenate([r.features for r in group], dtype=np.float64)
            if "f" in head.filled:
                tuples["f"]["v"] = features.reshape(n, rows, self._width)
            if self._classes is not None:
                index = self._classes
                try:
                    labels = [index[p] for r in group for p in r.predictions]  # type: ignore[index]
                except (KeyError, TypeError) as exc:
                    raise ValueError(
                        f"a prediction is not one of the model's classes: {exc}"
                    ) from None
                tuples["l"]["v"] = np.array(labels, dtype=np.int16).reshape(n, rows)
            else:
                values = np.concatenate([r.predictions for r in group], dtype=np.float64)
                tuples["v"]["v"] = values.reshape(n, rows)
            if "p" in head.filled:
                p = np.concatenate([r.probabilities for r in group], dtype=np.float64)  # type: ignore[misc]
                tuples["p"]["v"] = p.reshape(n, rows, -1)
        elif self._textual:
            texts = [_empty_text_array()] * n
        if texts is None and all(
            r.client_id is None and r.client_request_id is None for r in group
        ):
            return tuples.tobytes()  # every tail is the template's
        tails = [
            (_NULL if texts is None else texts[j])
            + _text(record.client_id)
            + _text(record.client_request_id)
            for j, record in enumerate(group)
        ]
        return _join(tuples, tails, self._baked)

    def _encode_one(self, rows: int, proba: bool, record: PredictionRecord) -> bytes:
        """One numeric request (the usual micro-batch under light load): the same tuple as
        ``_encode_group`` with a third of its numpy calls."""
        head = self._head(rows, proba)
        buffer = bytearray(head.data)
        # Scalars straight into the bytes: a numpy field assignment costs ten times more.
        rid = record.request_id
        if len(rid) == 36 and rid[8] == rid[13] == rid[18] == rid[23] == "-":
            buffer[head.rid : head.rid + 16] = bytes.fromhex(rid.replace("-", ""))
        else:
            buffer[head.rid : head.rid + 16] = uuid.UUID(rid).bytes
        I64.pack_into(buffer, head.ts, round((record.created_at - EPOCH_2000) * 1e6))
        F64.pack_into(buffer, head.la, record.latency_ms)
        one = np.ndarray((), head.dtype, buffer=buffer)
        if "f" in head.filled:
            one["f"]["v"] = record.features
        if self._classes is not None:
            try:
                one["l"]["v"] = [self._classes[p] for p in record.predictions]  # type: ignore[index]
            except (KeyError, TypeError) as exc:
                raise ValueError(f"a prediction is not one of the model's classes: {exc}") from None
        else:
            one["v"]["v"] = record.predictions
        if "p" in head.filled:
            one["p"]["v"] = record.probabilities
        if record.client_id is None and record.client_request_id is None:
            return bytes(buffer)
        tail = _NULL + _text(record.client_id) + _text(record.client_request_id)
        return bytes(buffer[: -self._baked]) + tail

    def _typed(self, rows: int, group: list[PredictionRecord]) -> tuple[np.ndarray, list[bytes]]:
        """The float matrix (NaN for null and for category or boolean features) and each
        request's ``feature_texts`` field: one element per row, the JSON texts of its
        category and boolean values joined by U+001F."""
        numeric, textual = self._numeric, self._textual
        all_rows = [row for r in group for row in r.features]
        matrix = np.full((len(all_rows), self._width), np.nan)
        numbers = [[row[i] for i in numeric] for row in all_rows]
        if numeric:
            matrix[:, numeric] = np.array(numbers, dtype=np.float64)  # None -> nan
        head = struct.pack(">iiiii", 1, 0, _TEXT, rows, 1)
        fields = []
        for j in range(len(group)):
            elements = b"".join(
                self._text_element(tuple(row[i] for i in textual))
                for row in all_rows[j * rows : (j + 1) * rows]
            )
            fields.append(I32.pack(len(head) + len(elements)) + head + elements)
        return matrix, fields

    def _text_element(self, values: tuple[Any, ...]) -> bytes:
        found = self._texts.get(values)
        if found is None:
            data = b"\x1f".join(orjson.dumps(v) for v in values)
            found = I32.pack(len(data)) + data
            if len(self._texts) < 4096:  # categories repeat; free text must not grow this
                self._texts[values] = found
        return found


def _array_fields(name: str, elem: np.dtype, dims: tuple[int, ...]) -> list[Any]:
    """A binary array field: its length, header (ndim, flags, element oid, then size and
    lower bound per dimension) and elements (length and value each)."""
    if not all(dims):
        return [(f"{name}_n", ">i4"), (f"{name}_h", ">i4", (3,))]
    return [(f"{name}_n", ">i4"), (f"{name}_h", ">i4", (3 + 2 * len(dims),)), (name, elem, dims)]


def _array_head(elem: np.dtype, oid: int, dims: tuple[int, ...]) -> tuple[int, list[int]]:
    if not all(dims):  # PostgreSQL's empty array has no dimensions
        return 12, [0, 0, oid]
    size = 12 + 8 * len(dims) + int(np.prod(dims)) * elem.itemsize
    head = [len(dims), 0, oid]
    for d in dims:
        head += [d, 1]
    return size, head


def _empty_text_array() -> bytes:
    return I32.pack(12) + struct.pack(">iii", 0, 0, _TEXT)


def _uuids(ids: list[str]) -> bytes:
    """The 16 bytes of each UUID, in order; canonical ids (the server's own) in one call."""
    joined = "".join(ids)
    n = len(ids)
    if len(joined) == 36 * n and all(joined[i::36] == "-" * n for i in _HYPHENS):
        try:
            return bytes.fromhex(joined.replace("-", ""))
        except ValueError:
            pass  # not hex: uuid.UUID says what is wrong
    return b"".join([uuid.UUID(i).bytes for i in ids])


def _text(value: str | None) -> bytes:
    if value is None:
        return _NULL
    data = value.encode()
    return I32.pack(len(data)) + data


def _join(fixed: np.ndarray, tails: list[bytes], baked: int) -> bytes:
    """Each fixed-width tuple head, less the ``baked`` tail bytes of its template, followed
    by its own variable-width tail."""
    width = fixed.dtype.itemsize
    keep = width - baked
    heads: list[bytes] = fixed.view(f"V{width}").tolist()
    parts: list[bytes] = [b""] * (2 * len(heads))
    parts[0::2] = [h[:keep] for h in heads] if baked else heads
    parts[1::2] = tails
    return b"".join(parts)


# Reading frames back ---------------------------------------------------------------------


class Frame(NamedTuple):
    """One frame read back (a named tuple: a frozen dataclass cost the drain of one-row
    requests a third of its reading time to build)."""

    magic: bytes
    payload: bytes
    instances: int
    end: int
    """Offset just past this frame in what was scanned."""


class CorruptFrameError(ValueError):
    """A frame header with the wrong magic or a payload that fails its CRC."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


def scan(data: bytes, start: int = 0) -> Iterator[Frame]:
    """The complete frames of ``data`` from ``start``; stops before an incomplete one.

    Raises CorruptFrameError (with its offset) at a frame that is not one."""
    pos, end = start, len(data)
    unpack, size, crc32 = HEADER.unpack_from, HEADER.size, zlib.crc32  # locals: once per frame
    while end - pos >= size:
        magic, length, instances, crc = unpack(data, pos)
        if magic not in _MAGICS or length > MAX_PAYLOAD:
            raise CorruptFrameError("not a frame header", pos)
        stop = pos + size + length
        if stop > end:
            return
        payload = data[pos + size : stop]
        if crc32(payload) != crc:
            raise CorruptFrameError("a frame's payload fails its CRC", pos)
        yield Frame(magic, payload, instances, stop)
        pos = stop


def first_time(payload: bytes) -> float:
    """created_at (Unix seconds) of a requests payload's first tuple."""
    micros: int = I64.unpack_from(payload, _TIME_OFFSET)[0]
    return EPOCH_2000 + micros / 1e6


def split_tuples(payload: bytes) -> list[tuple[bytes, int]]:
    """A requests payload's tuples, each with its instance count (to isolate a bad one)."""
    out = []
    pos, end = 0, len(payload)
    while pos < end:
        start = pos
        (count,) = _I16.unpack_from(payload, pos)
        if count != FIELDS:
            raise ValueError(f"a tuple with {count} fields, not {FIELDS}")
        (rows,) = I32.unpack_from(payload, pos + _ROWS_OFFSET)
        pos += 2
        for _ in range(count):
            (n,) = I32.unpack_from(payload, pos)
            pos += 4 + max(n, 0)
        if pos > end:
            raise ValueError("a tuple runs past its frame")
        out.append((payload[start:pos], rows))
    return out
