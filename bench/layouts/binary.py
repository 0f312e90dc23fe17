"""COPY BINARY encoders: a micro-batch of requests to the tuples PostgreSQL reads.

Every tuple of a model has the same fixed-width head (ids, times, the model key, the
feature and probability arrays with their element lengths, the label, the latency), so
the whole batch is one numpy structured array filled column by column and written with
``tobytes``; only variable-width fields (client ids, a typed model's category texts) are
appended per row from cached byte strings. Layouts: B (one tuple per instance, arrays),
E (one tuple per instance, one column per feature, a table per model version) and D (one
tuple per request, 2-d arrays).

Spool framing (the proposal of docs/log-layout.md): a frame is ``FRAME`` (magic, payload
length, rows, CRC-32 of the payload) followed by the payload, written with one
``os.write`` per micro-batch. A frame whose length runs past the end of the segment is a
torn write; a CRC mismatch is a corrupt one.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

import numpy as np
import orjson

from bench.layouts.workloads import Model, Request

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
TRAILER = b"\xff\xff"
FRAME = struct.Struct("<4sIII")
MAGIC = b"SKB1"
EPOCH_2000 = 946_684_800.0
_FLOAT8, _INT2, _TEXT = 701, 21, 25
_NULL = b"\xff\xff\xff\xff"
ELEM_F8 = np.dtype([("n", ">i4"), ("v", ">f8")])
ELEM_I2 = np.dtype([("n", ">i4"), ("v", ">i2")])

Fields = list[tuple[str, str] | tuple[str, object] | tuple[str, object, tuple[int, ...]]]


def frame(payload: bytes, rows: int, *, crc: bool = True) -> bytes:
    """One spool frame: header + payload (COPY BINARY tuples, no signature or trailer)."""
    check = zlib.crc32(payload) if crc else 0
    return FRAME.pack(MAGIC, len(payload), rows, check) + payload


def _value(name: str, dtype: object, shape: tuple[int, ...] = ()) -> Fields:
    if shape:
        return [(f"{name}_n", ">i4"), (name, dtype, shape)]
    return [(f"{name}_n", ">i4"), (name, dtype)]


def _array(name: str, elem: np.dtype, dims: tuple[int, ...]) -> Fields:
    """A binary array field: length, header (ndim, flags, oid, then size and lower bound
    per dimension) and elements (length + value each)."""
    return [
        (f"{name}_n", ">i4"),
        (f"{name}_h", ">i4", (3 + 2 * len(dims),)),
        (name, elem, dims),
    ]


def _array_head(elem: np.dtype, oid: int, dims: tuple[int, ...]) -> tuple[int, list[int]]:
    size = 12 + 8 * len(dims) + int(np.prod(dims)) * elem.itemsize
    head = [len(dims), 0, oid]
    for d in dims:
        head += [d, 1]
    return size, head


def _text_field(value: str | None) -> bytes:
    if value is None:
        return _NULL
    data = value.encode()
    return struct.pack(">i", len(data)) + data


class _TextElements:
    """The binary elements of a typed row's category texts (JSON text of each value)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str | None, ...], bytes] = {}

    def __call__(self, values: tuple[str | None, ...]) -> bytes:
        found = self._cache.get(values)
        if found is None:
            parts = []
            for v in values:
                data = orjson.dumps(v)
                parts.append(struct.pack(">i", len(data)) + data)
            found = self._cache[values] = b"".join(parts)
        return found

    def joined(self, values: tuple[str | None, ...]) -> bytes:
        """One text element: the values' JSON texts joined by U+001F (layout D)."""
        key = (*values, "\x1f")
        found = self._cache.get(key)
        if found is None:
            data = b"\x1f".join(orjson.dumps(v) for v in values)
            found = self._cache[key] = struct.pack(">i", len(data)) + data
        return found


def _request_columns(requests: Sequence[Request]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids = np.frombuffer(b"".join([r.id_bytes for r in requests]), dtype="V16")
    times = np.array([r.created_at for r in requests])
    micros = np.round((times - EPOCH_2000) * 1e6).astype(np.int64)
    latency = np.array([r.latency_ms for r in requests])
    return ids, micros, latency


def _all_features(model: Model, requests: Sequence[Request]) -> np.ndarray:
    """(rows, features): the numbers in their feature positions, NaN elsewhere."""
    numbers = np.concatenate([r.numbers for r in requests])
    if not model.textual:
        return numbers
    full = np.full((len(numbers), len(model.kinds)), np.nan)
    full[:, model.numeric] = numbers
    return full


def _tails(requests: Sequence[Request]) -> list[bytes]:
    return [_text_field(r.client_id) + _text_field(r.client_request_id) for r in requests]


def _join_rows(fixed: np.ndarray, tails: list[bytes]) -> bytes:
    """Each fixed-width row followed by its own variable-width tail."""
    if len(set(tails)) == 1:
        tail = tails[0]
        width = fixed.dtype.itemsize
        out = np.empty(len(fixed), dtype=[("f", f"V{width}"), ("t", f"V{len(tail)}")])
        out["f"] = fixed.view(f"V{width}")
        out["t"] = np.frombuffer(tail, dtype=f"V{len(tail)}")[0]
        return out.tobytes()
    rows: list[bytes] = fixed.view(f"V{fixed.dtype.itemsize}").tolist()
    parts: list[bytes] = [b""] * (2 * len(rows))
    parts[0::2] = rows
    parts[1::2] = tails
    return b"".join(parts)


class RowsBinary:
    """B (arrays) or E (one column per feature): one tuple per instance."""

    def __init__(self, model: Model, *, wide: bool) -> None:
        self.model = model
        self.wide = wide
        c, t = len(model.classes), len(model.textual)
        k = len(model.numeric) if wide else len(model.kinds)
        self.typed = t > 0
        if wide:
            feature_columns = ", ".join(f"f{i + 1}" for i in range(k))
            proba_columns = ", ".join(f"p{i + 1}" for i in range(c))
            self.columns = (
                f"request_id, row_index, created_at, {feature_columns}, label, "
                f"{proba_columns}, latency_ms, client_id, client_request_id"
            )
        else:
            texts = "feature_texts, " if self.typed else ""
            self.columns = (
                "request_id, row_index, created_at, model_key, features, label, value, "
                f"probabilities, latency_ms, {texts}client_id, client_request_id"
            )
        fields: Fields = [("nf", ">i2")]
        fields += _value("rid", "V16") + _value("ri", ">i4") + _value("ts", ">i8")
        if wide:
            fields += [("f", ELEM_F8, (k,)), *_value("lb", ">i2"), ("p", ELEM_F8, (c,))]
        else:
            fields += _value("mk", ">i8") + _array("f", ELEM_F8, (k,)) + _value("lb", ">i2")
            fields += [("va_n", ">i4"), *_array("p", ELEM_F8, (c,))]
        fields += _value("la", ">f8")
        self.dtype = np.dtype(fields)
        template = np.zeros((), dtype=self.dtype)
        count = 3 + (k + 1 + c if wide else 5) + 1 + (1 if self.typed else 0) + 2
        template["nf"] = count
        template["rid_n"], template["ri_n"], template["ts_n"], template["la_n"] = 16, 4, 8, 8
        template["lb_n"] = 2
        template["f"]["n"], template["p"]["n"] = 8, 8
        if not wide:
            template["mk_n"], template["mk"], template["va_n"] = 8, model.key, -1
            template["f_n"], template["f_h"] = _array_head(ELEM_F8, _FLOAT8, (k,))
            template["p_n"], template["p_h"] = _array_head(ELEM_F8, _FLOAT8, (c,))
        self._template = template
        self._texts = _TextElements()
        self._texts_head = struct.pack(">iiiii", 1, 0, _TEXT, t, 1)

    def encode(self, requests: Sequence[Request]) -> bytes:
        if not requests:
            return b""
        sizes = np.array([r.size for r in requests])
        n = int(sizes.sum())
        ids, micros, latency = _request_columns(requests)
        rows = np.empty(n, dtype=self.dtype)
        rows[...] = self._template
        rows["rid"] = np.repeat(ids, sizes)
        starts = np.cumsum(sizes) - sizes
        rows["ri"] = np.arange(n) - np.repeat(starts, sizes)
        rows["ts"] = np.repeat(micros, sizes)
        rows["f"]["v"] = (
            _all_features(self.model, requests)
            if not self.wide
            else (np.concatenate([r.numbers for r in requests]))
        )
        rows["lb"] = np.concatenate([r.labels for r in requests])
        rows["p"]["v"] = np.concatenate([r.probabilities for r in requests])
        rows["la"] = np.repeat(latency, sizes)
        tails = _tails(requests)
        if not self.typed:
            row_tails = [
                tail for tail, r in zip(tails, requests, strict=True) for _ in range(r.size)
            ]
            return _join_rows(rows, row_tails)
        row_tails = []
        for tail, r in zip(tails, requests, strict=True):
            for values in zip(*r.texts, strict=True):
                elements = self._texts(values)
                head = struct.pack(">i", len(self._texts_head) + len(elements))
                row_tails.append(head + self._texts_head + elements + tail)
        return _join_rows(rows, row_tails)


class RequestsBinary:
    """D: one tuple per request, 2-d arrays of its rows."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.typed = bool(model.textual)
        texts = "feature_texts, " if self.typed else ""
        self.columns = (
            'request_id, created_at, model_key, row_count, features, labels, "values", '
            f"probabilities, latency_ms, {texts}client_id, client_request_id"
        )
        self._dtypes: dict[int, tuple[np.dtype, np.ndarray]] = {}
        self._texts = _TextElements()

    def _dtype(self, rows: int) -> tuple[np.dtype, np.ndarray]:
        found = self._dtypes.get(rows)
        if found is not None:
            return found
        k, c = len(self.model.kinds), len(self.model.classes)
        fields: Fields = [("nf", ">i2")]
        fields += _value("rid", "V16") + _value("ts", ">i8") + _value("mk", ">i8")
        fields += _value("rc", ">i4") + _array("f", ELEM_F8, (rows, k))
        fields += [*_array("l", ELEM_I2, (rows,)), ("va_n", ">i4")]
        fields += _array("p", ELEM_F8, (rows, c)) + _value("la", ">f8")
        dtype = np.dtype(fields)
        template = np.zeros((), dtype=dtype)
        template["nf"] = 9 + (1 if self.typed else 0) + 2
        template["rid_n"], template["ts_n"], template["mk_n"], template["rc_n"] = 16, 8, 8, 4
        template["mk"], template["rc"], template["va_n"], template["la_n"] = (
            self.model.key, rows, -1, 8,
        )  # fmt: skip
        template["f_n"], template["f_h"] = _array_head(ELEM_F8, _FLOAT8, (rows, k))
        template["l_n"], template["l_h"] = _array_head(ELEM_I2, _INT2, (rows,))
        template["p_n"], template["p_h"] = _array_head(ELEM_F8, _FLOAT8, (rows, c))
        template["f"]["n"], template["l"]["n"], template["p"]["n"] = 8, 2, 8
        self._dtypes[rows] = (dtype, template)
        return dtype, template

    def encode(self, requests: Sequence[Request]) -> bytes:
        groups: dict[int, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(r.size, []).append(i)
        tails = _tails(requests)
        out = []
        for size, members in groups.items():
            group = [requests[i] for i in members]
            dtype, template = self._dtype(size)
            tuples = np.empty(len(group), dtype=dtype)
            tuples[...] = template
            ids, micros, latency = _request_columns(group)
            tuples["rid"], tuples["ts"], tuples["la"] = ids, micros, latency
            k, c = len(self.model.kinds), len(self.model.classes)
            tuples["f"]["v"] = _all_features(self.model, group).reshape(-1, size, k)
            tuples["l"]["v"] = np.concatenate([r.labels for r in group]).reshape(-1, size)
            tuples["p"]["v"] = np.concatenate([r.probabilities for r in group]).reshape(-1, size, c)
            group_tails = [tails[i] for i in members]
            if self.typed:
                head = struct.pack(">iiiii", 1, 0, _TEXT, size, 1)
                for j, r in enumerate(group):
                    elements = b"".join(self._texts.joined(v) for v in zip(*r.texts, strict=True))
                    field = struct.pack(">i", len(head) + len(elements)) + head + elements
                    group_tails[j] = field + group_tails[j]
            out.append(_join_rows(tuples, group_tails))
        return b"".join(out)
