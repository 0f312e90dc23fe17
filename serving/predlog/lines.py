"""The spool's line format before format 4: one PostgreSQL COPY text row per instance.

Servers before migration 0004 wrote segments of these rows (``*.tsv``); ``legacy.py``
parses them to convert such segments. ``RowEncoder`` stays for that conversion's tests and
for ``bench.layouts``, which measures it against today's ``frames.py``.

A segment is a header line, then rows exactly as ``COPY predictions (COLUMNS) FROM STDIN``
reads them: eleven tab-separated fields, backslash escapes, ``\\N`` for NULL. The appender
pays for encoding once, on the request path, where the arrays are at hand; the writer
then streams segment bytes into COPY without parsing or re-printing a single number
(the SQLite store parses them, off the request path).

The features of a row are a JSON object keyed by feature name, built by splicing the
numbers orjson printed for the whole matrix into a per-model template.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from serving.predlog.records import ModelSchema, PredictionRecord

HEADER = b"#skship-spool 3\n"
"""First line of every segment: the format version (never a row: rows start with a UUID)."""
HEADER_V2 = b"#skship-spool 2\n"
"""Format 2 (before client_request_id): ten fields; ``upgrade`` adds the eleventh."""
FIELDS = 11
"""request_id, row_index, created_at, model_name, model_version, features, prediction,
probabilities, latency_ms, client_id, client_request_id: the order of ``sql.COLUMNS``."""
NULL = b"\\N"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f+00"
"""created_at as written in a row (UTC); fixed width, parsed back by ``row_time``."""

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NUMPY = orjson.OPT_SERIALIZE_NUMPY


def escape(text: str) -> bytes:
    """``text`` as a COPY text field."""
    return text.translate(_ESCAPES).encode()


class TimeText:
    """Formats Unix seconds as ``TIME_FORMAT`` bytes; caches the whole-second part, since
    strftime is the slow part and consecutive requests mostly share their second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = b""

    def __call__(self, unix: float) -> bytes:
        second = int(unix // 1)
        micro = round((unix - second) * 1e6)
        if micro >= 1_000_000:
            second, micro = second + 1, micro - 1_000_000
        if second != self._second:
            moment = datetime.fromtimestamp(second, UTC)
            self._second, self._prefix = second, moment.strftime("%Y-%m-%d %H:%M:%S").encode()
        return b"%b.%06d+00" % (self._prefix, micro)


def row_time(row: bytes) -> float:
    """created_at (Unix seconds) of one spooled row."""
    text = row.split(b"\t", 3)[2].decode()
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC).timestamp()


class RowEncoder:
    """Encodes the records of one model version; built once per version, reused."""

    def __init__(self, schema: ModelSchema) -> None:
        self.schema = schema
        self._model = escape(schema.name) + b"\t" + escape(schema.version)
        self._features = _template(schema.feature_names)
        self._names = schema.feature_names
        self._classes = None if schema.classes is None else _template(schema.classes)
        self._labels = {label: escape(label) for label in schema.classes or ()}

    def encode(self, record: PredictionRecord, time_text: TimeText) -> bytes:
        """The record's rows, each ending in a newline."""
        head = b"%b\t" % record.request_id.encode()
        middle = b"\t%b\t%b\t" % (time_text(record.created_at), self._model)
        tail = b"\t%r\t%b\t%b\n" % (
            float(record.latency_ms),
            NULL if record.client_id is None else escape(record.client_id),
            NULL if record.client_request_id is None else escape(record.client_request_id),
        )
        numeric = isinstance(record.features, np.ndarray)
        if isinstance(record.features, np.ndarray):
            features = _rows(record.features)
        else:
            features = [_typed(self._names, row) for row in record.features]
        if len(features) != len(record.predictions):
            raise ValueError(f"request {record.request_id}: rows and predictions differ")
        probabilities: list[bytes] | None = None
        if record.probabilities is not None and self._classes is not None:
            probabilities = _rows(record.probabilities)
        out = []
        for i, prediction in enumerate(record.predictions):
            label = (
                self._labels.get(prediction) or escape(prediction)
                if isinstance(prediction, str)
                else orjson.dumps(prediction, option=_NUMPY)
            )
            proba = NULL if probabilities is None else _fill(self._classes, probabilities[i])
            row = _fill(self._features, features[i]) if numeric else features[i]
            out.append(b"%b%d%b%b\t%b\t%b%b" % (head, i, middle, row, label, proba, tail))
        return b"".join(out)


def _template(names: tuple[str, ...]) -> bytes:
    """``{"a":%b,"b":%b}``, escaped for COPY text (JSON escapes need their '\\' doubled)."""
    keys = (orjson.dumps(name).replace(b"\\", b"\\\\").replace(b"%", b"%%") for name in names)
    return b"{" + b",".join(key + b":%b" for key in keys) + b"}"


def _rows(matrix: np.ndarray) -> list[bytes]:
    """A 2-d array as the JSON text of each row's numbers: ``[b"1.0,2.0", b"3.0,4.0"]``.

    orjson prints the whole matrix at C speed (it needs C order: some pipelines return
    probabilities in Fortran order); numbers hold no brackets, so splitting its text on
    ``],[`` is exact.
    """
    text = orjson.dumps(np.ascontiguousarray(matrix), option=_NUMPY)
    return text[2:-2].split(b"],[") if text != b"[]" else []


def _typed(names: tuple[str, ...], row: list[Any]) -> bytes:
    """One typed row as a COPY field: a JSON object by feature name, values as sent."""
    text = orjson.dumps(dict(zip(names, row, strict=True)))
    return text.replace(b"\\", b"\\\\") if b"\\" in text else text


def _fill(template: bytes | None, numbers: bytes) -> bytes:
    if template is None:
        raise ValueError("no template for these values")
    try:
        return template % tuple(numbers.split(b","))
    except TypeError:  # more or fewer numbers than names
        raise ValueError("a row does not match its model's names") from None


_UNESCAPES = {b"\\": b"\\", b"t": b"\t", b"n": b"\n", b"r": b"\r"}


def upgrade(segment: bytes) -> bytes | None:
    """A format-2 segment's bytes as format 3 (each row gains a NULL client_request_id);
    None when ``segment`` is not format 2. A torn last line stays torn."""
    if not segment.startswith(HEADER_V2):
        return None
    body = segment[len(HEADER_V2) :]
    complete, _, torn = body.rpartition(b"\n")
    rows = complete.replace(b"\n", b"\t" + NULL + b"\n") + b"\t" + NULL + b"\n" if complete else b""
    return HEADER + rows + torn


def parse(line: bytes) -> list[str | None]:
    """A spooled row's fields as text (None for NULL), escapes undone."""
    fields = line.rstrip(b"\n").split(b"\t")
    if len(fields) != FIELDS:
        raise ValueError(f"a row has {len(fields)} fields, not {FIELDS}")
    return [None if f == NULL else _unescape(f).decode() for f in fields]


def _unescape(field: bytes) -> bytes:
    if b"\\" not in field:
        return field
    out, i = bytearray(), 0
    while i < len(field):
        char = field[i : i + 1]
        if char == b"\\" and i + 1 < len(field):
            out += _UNESCAPES.get(field[i + 1 : i + 2], field[i + 1 : i + 2])
            i += 2
        else:
            out += char
            i += 1
    return bytes(out)
