"""COPY text encoders: a micro-batch of requests to the lines the spool would hold.

Layout A is today's row (features and probabilities as JSON objects keyed by name); C
keeps the features as a positional JSON array and the class as its index; B-text writes
the numbers as a ``float8[]`` literal. A per-row Python loop is what A does today
(serving/predlog/lines.py); B-text and C assemble every line of the batch from columns of
byte strings with list slice assignment and one ``bytes.join``, so the Python work is a
few C calls per column, not per row.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from bench.layouts.workloads import Model, Request
from serving.predlog.lines import TimeText, escape

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_INDEX = [b"%d" % i for i in range(100_000)]


def _per_request(values: Sequence[bytes], requests: Sequence[Request]) -> list[bytes]:
    """One value per request, repeated for each of its rows."""
    return list(
        itertools.chain.from_iterable(
            itertools.repeat(v, r.size) for v, r in zip(values, requests, strict=True)
        )
    )


def _matrix_rows(matrix: np.ndarray) -> list[bytes]:
    """orjson's text of each row of a 2-d array, without brackets (NaN prints null)."""
    if matrix.shape[0] == 0:
        return []
    text = orjson.dumps(matrix, option=_NUMPY)
    rows = text[2:-2].split(b"],[")
    if len(rows) != matrix.shape[0]:
        raise ValueError("a row did not split")
    return rows


def _interleave(columns: Sequence[Sequence[bytes]], rows: int) -> bytes:
    parts: list[bytes] = [b""] * (rows * len(columns))
    width = len(columns)
    for j, column in enumerate(columns):
        parts[j::width] = column
    return b"".join(parts)


def _text_or_null(value: str | None) -> bytes:
    return b"\\N" if value is None else escape(value)


class JsonTexts:
    """JSON text of category values, COPY-escaped, cached (categories repeat)."""

    def __init__(self) -> None:
        self._cache: dict[str | None, bytes] = {None: b"null"}

    def __call__(self, value: str | None) -> bytes:
        found = self._cache.get(value)
        if found is None:
            found = self._cache[value] = orjson.dumps(value).replace(b"\\", b"\\\\")
        return found


def _feature_columns(
    requests: Sequence[Request], model: Model, texts: JsonTexts
) -> list[list[bytes]]:
    """Each feature's JSON value texts for all rows of the batch, in feature order."""
    numbers = np.concatenate([r.numbers for r in requests])
    columns: list[list[bytes]] = [[] for _ in model.kinds]
    for j, position in enumerate(model.numeric):
        column = np.ascontiguousarray(numbers[:, j])
        if model.kinds[position] == "integer" and not np.isnan(column).any():
            column = column.astype(np.int64)
        text = orjson.dumps(column, option=_NUMPY)[1:-1]
        columns[position] = text.split(b",") if len(column) else []
    for j, position in enumerate(model.textual):
        columns[position] = [texts(v) for r in requests for v in r.texts[j]]
    return columns


class LayoutA:
    """Today's line: JSON objects keyed by name, per-row formatting (lines.RowEncoder)."""

    columns = (
        "request_id, row_index, created_at, model_name, model_version, features, prediction,"
        " probabilities, latency_ms, client_id, client_request_id"
    )

    def __init__(self, model: Model) -> None:
        self.model = model
        self._time = TimeText()
        self._head = escape(model.name) + b"\t" + escape(model.version)
        keys = [
            orjson.dumps(n).replace(b"\\", b"\\\\").replace(b"%", b"%%")
            for n in model.feature_names
        ]
        self._features = b"{" + b",".join(k + b":%b" for k in keys) + b"}"
        classes = [orjson.dumps(c).replace(b"%", b"%%") for c in model.classes]
        self._classes = b"{" + b",".join(k + b":%b" for k in classes) + b"}"
        self._labels = [escape(c) for c in model.classes]
        self._texts = JsonTexts()

    def encode(self, requests: Sequence[Request]) -> bytes:
        out = []
        typed = bool(self.model.textual)
        columns = _feature_columns(requests, self.model, self._texts) if typed else None
        offset = 0
        for r in requests:
            head = r.id_text.encode() + b"\t"
            middle = b"\t%b\t%b\t" % (self._time(r.created_at), self._head)
            tail = b"\t%r\t%b\t%b\n" % (
                r.latency_ms,
                _text_or_null(r.client_id),
                _text_or_null(r.client_request_id),
            )
            if columns is None:
                features = [tuple(row.split(b",")) for row in _matrix_rows(r.numbers)]
            else:
                features = list(zip(*(c[offset : offset + r.size] for c in columns), strict=True))
            offset += r.size
            probabilities = _matrix_rows(r.probabilities)
            for i, label in enumerate(r.labels.tolist()):
                out.append(
                    b"%b%d%b%b\t%b\t%b%b"
                    % (
                        head, i, middle, self._features % features[i], self._labels[label],
                        self._classes % tuple(probabilities[i].split(b",")), tail,
                    )
                )  # fmt: skip
        return b"".join(out)


class Columnar:
    """B-text and C: every line of the batch built column by column."""

    def __init__(self, model: Model, *, arrays: bool) -> None:
        if arrays and model.textual:
            raise ValueError("B-text is measured on numeric models only")
        self.model = model
        self.arrays = arrays
        """True: float8[] literals ``{...}`` (B-text); False: JSON arrays ``[...]`` (C)."""
        self.columns = (
            "request_id, row_index, created_at, model_key, features, label, probabilities,"
            " latency_ms, client_id, client_request_id"
        )
        self._time = TimeText()
        self._model = b"\t%d\t" % model.key
        self._labels = np.array([b"\t%d\t" % i for i in range(len(model.classes))], dtype=object)
        self._texts = JsonTexts()
        self._open, self._close = (b"{", b"}") if arrays else (b"[", b"]")

    def encode(self, requests: Sequence[Request]) -> bytes:
        if not requests:
            return b""
        rows = sum(r.size for r in requests)
        ids = []
        middles = []
        tails = []
        for r in requests:
            ids.append(r.id_text.encode() + b"\t")
            middles.append(b"\t" + self._time(r.created_at) + self._model + self._open)
            tails.append(
                b"%b\t%r\t%b\t%b\n"
                % (self._close, r.latency_ms, _text_or_null(r.client_id),
                   _text_or_null(r.client_request_id))
            )  # fmt: skip
        index = list(itertools.chain.from_iterable(_INDEX[: r.size] for r in requests))
        labels: list[Any] = self._labels[np.concatenate([r.labels for r in requests])].tolist()
        probabilities = _matrix_rows(np.concatenate([r.probabilities for r in requests]))
        if self.model.textual:
            features = _feature_columns(requests, self.model, self._texts)
            commas = [b","] * rows
            feature_parts: list[list[bytes]] = []
            for j, column in enumerate(features):
                if j:
                    feature_parts.append(commas)
                feature_parts.append(column)
        else:
            numbers = np.concatenate([r.numbers for r in requests])
            feature_parts = [_matrix_rows(numbers)]
        return _interleave(
            [
                _per_request(ids, requests), index, _per_request(middles, requests),
                *feature_parts, [self._close] * rows, labels, [self._open] * rows,
                probabilities, _per_request(tails, requests),
            ],
            rows,
        )  # fmt: skip
