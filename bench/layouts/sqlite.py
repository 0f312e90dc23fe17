"""SQLite: today's writer against two writers that read the proposed binary spool frames.

- ``today``: the real ``SqliteStore`` parsing today's COPY text lines (lines.RowEncoder).
- ``A-from-frames``: the same table (JSON objects keyed by name), rows decoded from layout
  B's frames with numpy and the objects printed in the writer thread.
- ``B-sqlite``: B's SQLite analogue: positional JSON arrays, names once per version in
  ``prediction_models``, a ``predictions`` view rebuilding the objects.

CPU is the writer thread's (decode + ``executemany`` + commit; SQLite runs in-process),
per row, over 100,000 rows in 5,000-row transactions (WAL, synchronous=NORMAL).
"""

from __future__ import annotations

import sqlite3
import statistics
import struct
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench.layouts import binary
from bench.layouts.encoders import TodayEncoder
from bench.layouts.workloads import W1, Model, chunks_of_rows, requests
from serving.predlog.reader import Rows
from serving.predlog.sqlite import SqliteStore

_I32 = struct.Struct(">i")
_EPOCH_2000_US = np.datetime64("2000-01-01T00:00:00", "us")

TABLE_B = """
CREATE TABLE prediction_models (
    model_key INTEGER PRIMARY KEY, model_name TEXT NOT NULL, model_version TEXT NOT NULL,
    feature_names TEXT NOT NULL, classes TEXT
);
CREATE TABLE prediction_rows (
    request_id TEXT NOT NULL, row_index INTEGER NOT NULL, created_at TEXT NOT NULL,
    model_key INTEGER NOT NULL, features TEXT NOT NULL, label INTEGER, value REAL,
    probabilities TEXT, latency_ms REAL NOT NULL, client_id TEXT, client_request_id TEXT,
    UNIQUE (request_id, row_index)
);
CREATE INDEX prediction_rows_created_at_idx ON prediction_rows (created_at, request_id, row_index);
CREATE INDEX prediction_rows_model_idx ON prediction_rows (model_key, created_at);
CREATE VIEW predictions AS
SELECT r.request_id, r.row_index, r.created_at, m.model_name, m.model_version,
       (SELECT json_group_object(n.value, f.value)
        FROM json_each(m.feature_names) n JOIN json_each(r.features) f ON f.key = n.key)
           AS features,
       coalesce(json_extract(m.classes, '$[' || r.label || ']'), r.value) AS prediction,
       (SELECT json_group_object(n.value, f.value)
        FROM json_each(m.classes) n JOIN json_each(r.probabilities) f ON f.key = n.key)
           AS probabilities,
       r.latency_ms, r.client_id, r.client_request_id, m.feature_names,
       r.features AS feature_values
FROM prediction_rows r LEFT JOIN prediction_models m USING (model_key);
"""
INSERT_B = "INSERT OR IGNORE INTO prediction_rows VALUES (?,?,?,?,?,?,?,?,?,?,?)"
INSERT_A = """
INSERT OR IGNORE INTO predictions (request_id, row_index, created_at, model_name,
    model_version, features, prediction, probabilities, latency_ms, client_id)
VALUES (?,?,?,?,?,?,?,?,?,?)"""


def decode(payload: bytes, encoder: binary.RowsBinary) -> tuple[np.ndarray, list[list[Any]]]:
    """B's tuples back to a structured array (fixed part) and each row's text fields."""
    width = encoder.dtype.itemsize
    texts = 3 if encoder.typed else 2
    fixed: list[bytes] = []
    tails: list[list[Any]] = []
    pos, end = 0, len(payload)
    while pos < end:
        fixed.append(payload[pos : pos + width])
        pos += width
        tail: list[Any] = []
        for _ in range(texts):
            (n,) = _I32.unpack_from(payload, pos)
            pos += 4
            if n < 0:
                tail.append(None)
            else:
                tail.append(payload[pos : pos + n].decode())
                pos += n
        tails.append(tail)
    return np.frombuffer(b"".join(fixed), dtype=encoder.dtype), tails


def _common(rows: np.ndarray, model: Model) -> dict[str, list[Any]]:
    ids: dict[bytes, str] = {}
    request_ids = []
    for raw in rows["rid"].tolist():
        text = ids.get(raw)
        if text is None:
            text = ids[raw] = str(uuid.UUID(bytes=raw))
        request_ids.append(text)
    times = _EPOCH_2000_US + rows["ts"].astype(np.int64).astype("timedelta64[us]")
    created = np.char.add(np.datetime_as_string(times, unit="us"), "Z").tolist()
    return {
        "request_id": request_ids,
        "row_index": rows["ri"].astype(np.int64).tolist(),
        "created_at": created,
        "latency_ms": rows["la"].astype(np.float64).tolist(),
    }


def _rows_text(matrix: np.ndarray) -> list[str]:
    text = orjson.dumps(
        np.ascontiguousarray(matrix, dtype=np.float64), option=orjson.OPT_SERIALIZE_NUMPY
    )
    return ["[" + row + "]" for row in text.decode()[2:-2].split("],[")]


def params_b(payload: bytes, encoder: binary.RowsBinary) -> list[tuple[Any, ...]]:
    rows, tails = decode(payload, encoder)
    common = _common(rows, encoder.model)
    features = _rows_text(rows["f"]["v"])
    probabilities = _rows_text(rows["p"]["v"])
    labels = rows["lb"].astype(np.int64).tolist()
    key = encoder.model.key
    return [
        (rid, ri, at, key, f, lb, None, p, la, tail[-2], tail[-1])
        for rid, ri, at, f, lb, p, la, tail in zip(
            common["request_id"], common["row_index"], common["created_at"], features,
            labels, probabilities, common["latency_ms"], tails, strict=True,
        )
    ]  # fmt: skip


def params_a(payload: bytes, encoder: binary.RowsBinary) -> list[tuple[Any, ...]]:
    rows, tails = decode(payload, encoder)
    common = _common(rows, encoder.model)
    model = encoder.model
    keys = [orjson.dumps(n).decode().replace("%", "%%") for n in model.feature_names]
    template = "{" + ",".join(k + ":%s" for k in keys) + "}"
    proba = "{" + ",".join(orjson.dumps(c).decode() + ":%s" for c in model.classes) + "}"
    numbers = orjson.dumps(
        np.ascontiguousarray(rows["f"]["v"], dtype=np.float64), option=orjson.OPT_SERIALIZE_NUMPY
    )
    features = [template % tuple(r.split(",")) for r in numbers.decode()[2:-2].split("],[")]
    probs_text = orjson.dumps(
        np.ascontiguousarray(rows["p"]["v"], dtype=np.float64), option=orjson.OPT_SERIALIZE_NUMPY
    )
    probabilities = [proba % tuple(r.split(",")) for r in probs_text.decode()[2:-2].split("],[")]
    classes = np.array(model.classes, dtype=object)[rows["lb"].astype(np.int64)].tolist()
    return [
        (rid, ri, at, model.name, model.version, f, c, p, la, tail[-2])
        for rid, ri, at, f, c, p, la, tail in zip(
            common["request_id"], common["row_index"], common["created_at"], features,
            classes, probabilities, common["latency_ms"], tails, strict=True,
        )
    ]  # fmt: skip


def decode_requests(payload: bytes, model: Model) -> dict[str, Any]:
    """D's tuples (one per request) back to columns: a walk over each tuple's fields,
    numpy views for its arrays."""
    k, c = len(model.kinds), len(model.classes)
    ids: list[bytes] = []
    times: list[int] = []
    latencies: list[float] = []
    sizes: list[int] = []
    client_ids: list[str | None] = []
    features: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    probabilities: list[np.ndarray] = []
    pos, end = 0, len(payload)
    texts = 1 if model.textual else 0
    while pos < end:
        pos += 2 + 4
        ids.append(payload[pos : pos + 16])
        pos += 16 + 4
        (micros,) = struct.unpack_from(">q", payload, pos)
        times.append(micros)
        pos += 8 + 4 + 8 + 4
        (rows,) = _I32.unpack_from(payload, pos)
        sizes.append(rows)
        pos += 4
        arrays: tuple[tuple[np.dtype | None, int, list[np.ndarray] | None], ...] = (
            (binary.ELEM_F8, k, features),
            (binary.ELEM_I2, 1, labels),
            (None, 0, None),  # values: NULL for a classifier
            (binary.ELEM_F8, c, probabilities),
        )
        for elem, width, into in arrays:
            (n,) = _I32.unpack_from(payload, pos)
            pos += 4
            if n < 0 or elem is None or into is None:
                continue
            (ndim,) = _I32.unpack_from(payload, pos)
            head = 12 + 8 * ndim
            count = rows * width
            into.append(np.frombuffer(payload, dtype=elem, count=count, offset=pos + head)["v"])
            pos += n
        pos += 4
        (latency,) = struct.unpack_from(">d", payload, pos)
        latencies.append(latency)
        pos += 8
        tail: list[str | None] = []
        for _ in range(texts + 2):
            (n,) = _I32.unpack_from(payload, pos)
            pos += 4
            tail.append(None if n < 0 else payload[pos : pos + n].decode())
            pos += max(n, 0)
        client_ids.append(tail[-2])
    return {
        "ids": ids, "times": times, "latency": latencies, "sizes": sizes,
        "client_ids": client_ids, "features": np.concatenate(features).reshape(-1, k),
        "labels": np.concatenate(labels).astype(np.int64),
        "probabilities": np.concatenate(probabilities).reshape(-1, c),
    }  # fmt: skip


def params_a_from_requests(payload: bytes, model: Model) -> list[tuple[Any, ...]]:
    """Today's SQLite rows (JSON objects by name) from D's frames."""
    d = decode_requests(payload, model)
    sizes = np.array(d["sizes"])
    n = int(sizes.sum())
    ids = [str(uuid.UUID(bytes=raw)) for raw in d["ids"]]
    moments = _EPOCH_2000_US + np.array(d["times"], dtype=np.int64).astype("timedelta64[us]")
    created = np.char.add(np.datetime_as_string(moments, unit="us"), "Z").tolist()
    starts = np.cumsum(sizes) - sizes
    row_index = (np.arange(n) - np.repeat(starts, sizes)).tolist()
    keys = [orjson.dumps(name).decode().replace("%", "%%") for name in model.feature_names]
    template = "{" + ",".join(key + ":%s" for key in keys) + "}"
    proba = "{" + ",".join(orjson.dumps(c).decode() + ":%s" for c in model.classes) + "}"
    numbers = orjson.dumps(d["features"], option=orjson.OPT_SERIALIZE_NUMPY).decode()
    features = [template % tuple(r.split(",")) for r in numbers[2:-2].split("],[")]
    probs_text = orjson.dumps(d["probabilities"], option=orjson.OPT_SERIALIZE_NUMPY).decode()
    probabilities = [proba % tuple(r.split(",")) for r in probs_text[2:-2].split("],[")]
    classes = np.array(model.classes, dtype=object)[d["labels"]].tolist()
    per_request = list(zip(ids, created, d["latency"], d["client_ids"], strict=True))
    repeated = [v for v, size in zip(per_request, d["sizes"], strict=True) for _ in range(size)]
    return [
        (rid, ri, at, model.name, model.version, f, label, p, la, cid)
        for (rid, at, la, cid), ri, f, label, p in zip(
            repeated, row_index, features, classes, probabilities, strict=True
        )
    ]


def _write(conn: sqlite3.Connection, statement: str, params: Sequence[tuple[Any, ...]]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(statement, params)
    conn.execute("COMMIT")


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _time_query(conn: sqlite3.Connection, query: str, repeats: int = 5) -> float:
    conn.execute(query).fetchall()
    times = []
    for _ in range(repeats):
        started = time.thread_time()
        conn.execute(query).fetchall()
        times.append(time.thread_time() - started)
    return statistics.median(times) * 1000


def run(log: Callable[[str], None], rows: int = 100_000, batch_rows: int = 5000) -> dict[str, Any]:
    model = W1
    made = requests(model, rows // 100, 100, start=time.time() - 600, spacing=0.05, seed=3)
    chunks = list(chunks_of_rows(made, batch_rows))
    today = TodayEncoder(model)
    lines = [today.encode_records(today.records(c)) for c in chunks]
    encoder = binary.RowsBinary(model, wide=False)
    frames = [encoder.encode(c) for c in chunks]
    out: dict[str, Any] = {}
    feature = "SELECT avg(json_extract(features, '$.\"mean radius\"')) FROM predictions" + (
        " WHERE created_at > strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 hour')"
    )
    page = (
        "SELECT * FROM predictions ORDER BY created_at DESC, request_id DESC, row_index DESC"
        " LIMIT 100"
    )
    with tempfile.TemporaryDirectory(prefix="skship-layouts-") as folder:
        # today: the real store
        store = SqliteStore(f"sqlite:///{folder}/today.db")
        store.open()
        store.prepare()
        started = time.thread_time()
        for chunk in lines:
            store.write(store.encode(Rows([chunk], chunk.count(b"\n"))))
        spent = time.thread_time() - started
        store.close()
        conn = _connect(Path(folder) / "today.db")
        out["today"] = {
            "us_per_row": spent / rows * 1e6,
            "feature_ms": _time_query(conn, feature),
            "page_ms": _time_query(conn, page),
            "bytes_per_row": (Path(folder) / "today.db").stat().st_size / rows,
        }
        conn.close()
        # A-from-frames: the same table, fed from binary frames
        store = SqliteStore(f"sqlite:///{folder}/a.db")
        store.open()
        store.prepare()
        store.close()
        conn = _connect(Path(folder) / "a.db")
        started = time.thread_time()
        for frame in frames:
            _write(conn, INSERT_A, params_a(frame, encoder))
        spent = time.thread_time() - started
        out["A-from-B-frames"] = {
            "us_per_row": spent / rows * 1e6,
            "feature_ms": _time_query(conn, feature),
            "page_ms": _time_query(conn, page),
            "bytes_per_row": (Path(folder) / "a.db").stat().st_size / rows,
        }
        conn.close()
        # the same table from D's frames (one tuple per request)
        store = SqliteStore(f"sqlite:///{folder}/ad.db")
        store.open()
        store.prepare()
        store.close()
        conn = _connect(Path(folder) / "ad.db")
        request_frames = [binary.RequestsBinary(model).encode(c) for c in chunks]
        started = time.thread_time()
        for frame in request_frames:
            _write(conn, INSERT_A, params_a_from_requests(frame, model))
        spent = time.thread_time() - started
        out["A-from-D-frames"] = {
            "us_per_row": spent / rows * 1e6,
            "feature_ms": _time_query(conn, feature),
            "page_ms": _time_query(conn, page),
            "bytes_per_row": (Path(folder) / "ad.db").stat().st_size / rows,
        }
        check = conn.execute(
            "SELECT features, prediction, created_at FROM predictions"
            " WHERE request_id = ? AND row_index = 3",
            [str(made[7].request_id)],
        ).fetchone()
        expected = dict(zip(model.feature_names, made[7].numbers[3].tolist(), strict=True))
        if orjson.loads(check[0]) != expected or check[1] != made[7].predictions[3]:
            raise AssertionError(f"A-from-D-frames differs: {check}")
        conn.close()
        # B-sqlite
        conn = _connect(Path(folder) / "b.db")
        conn.executescript(TABLE_B)
        conn.execute(
            "INSERT INTO prediction_models VALUES (?,?,?,?,?)",
            (model.key, model.name, model.version, orjson.dumps(model.feature_names).decode(),
             orjson.dumps(model.classes).decode()),
        )  # fmt: skip
        started = time.thread_time()
        for frame in frames:
            _write(conn, INSERT_B, params_b(frame, encoder))
        spent = time.thread_time() - started
        fast = (
            "SELECT avg(json_extract(features, '$[0]')) FROM prediction_rows"
            " WHERE created_at > strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 hour')"
        )
        out["B-sqlite"] = {
            "us_per_row": spent / rows * 1e6,
            "feature_ms": _time_query(conn, feature),
            "feature_fast_ms": _time_query(conn, fast),
            "page_ms": _time_query(conn, page),
            "bytes_per_row": (Path(folder) / "b.db").stat().st_size / rows,
        }
        check = conn.execute(
            "SELECT features, prediction, probabilities FROM predictions"
            " WHERE request_id = ? AND row_index = 3",
            [str(made[7].request_id)],
        ).fetchone()
        expected = dict(zip(model.feature_names, made[7].numbers[3].tolist(), strict=True))
        if orjson.loads(check[0]) != expected or check[1] != made[7].predictions[3]:
            raise AssertionError(f"B-sqlite view differs: {check}")
        conn.close()
    for name, figures in out.items():
        log(f"sqlite {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in figures.items()))
    return out
