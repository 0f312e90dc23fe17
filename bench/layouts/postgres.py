"""PostgreSQL side: ingest, replay and query cost of each layout, in backend CPU time.

CPU is read from ``/proc/<pid>/stat`` (utime + stime) of the session's own backend
(``pg_backend_pid()``) before and after, so other work on the machine does not distort it
much; the cluster's other processes (WAL writer, checkpointer, autovacuum; exited
children through the postmaster's cutime/cstime) are reported apart. WAL volume is
``pg_current_wal_lsn()`` before and after.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg

from bench.layouts import binary, schemas
from bench.layouts.encoders import encoder_for
from bench.layouts.workloads import Model, Request, chunks_of_rows, requests
from serving.predlog import sql

_TICK = os.sysconf("SC_CLK_TCK")


def run_ns(pid: int) -> int:
    """Nanoseconds ``pid`` has run on a CPU (/proc/<pid>/schedstat): a finer cross-check
    of utime + stime, whose resolution is a clock tick (10 ms)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _TICK


def cluster_cpu(postmaster: int | None, exclude: int) -> float:
    """CPU of the postmaster (with reaped children) and its live children but ``exclude``."""
    if postmaster is None:
        return 0.0
    total = cpu_seconds(postmaster, children=True)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            pid = int(stat.parent.name)
            if int(fields[1]) == postmaster and pid != exclude:
                total += (int(fields[11]) + int(fields[12])) / _TICK
        except (OSError, ValueError, IndexError):
            continue
    return total


@dataclass
class Meter:
    """CPU, WAL and wall time of what runs between ``start`` and ``stop``."""

    conn: psycopg.Connection[Any]
    postmaster: int | None
    backend: int = 0
    values: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        row = self.conn.execute("SELECT pg_backend_pid()").fetchone()
        self.backend = int(row[0]) if row else 0

    def _read(self) -> dict[str, float]:
        row = self.conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        lsn = str(row[0]) if row else "0/0"
        high, low = lsn.split("/")
        return {
            "backend": cpu_seconds(self.backend),
            "backend_run": run_ns(self.backend) / 1e9,
            "others": cluster_cpu(self.postmaster, self.backend),
            "client": time.thread_time(),
            "wal": float(int(high, 16) << 32 | int(low, 16)),
            "wall": time.perf_counter(),
        }

    def start(self) -> None:
        self.values = self._read()

    def stop(self) -> dict[str, float]:
        after = self._read()
        return {k: after[k] - self.values[k] for k in after}


@dataclass(frozen=True)
class Ingest:
    rows: int
    backend_us: float
    backend_run_us: float
    others_us: float
    client_us: float
    wal_bytes: float
    wall_s: float


def _per_row(delta: dict[str, float], rows: int) -> Ingest:
    return Ingest(
        rows,
        delta["backend"] / rows * 1e6,
        delta["backend_run"] / rows * 1e6,
        delta["others"] / rows * 1e6,
        delta["client"] / rows * 1e6,
        delta["wal"] / rows,
        delta["wall"],
    )


def _copy(conn: psycopg.Connection[Any], statement: str, payload: bytes, is_binary: bool) -> None:
    with conn.cursor() as cur, cur.copy(statement) as copy:
        if is_binary:
            copy.write(binary.SIGNATURE)
            copy.write(payload)
            copy.write(binary.TRAILER)
        else:
            copy.write(payload)


@dataclass
class Case:
    """One layout and workload in its own database."""

    layout: schemas.Layout
    model: Model
    rows_per_request: int
    conn: psycopg.Connection[Any]
    postmaster: int | None
    batch_rows: int = 5000

    def __post_init__(self) -> None:
        self.encoder = encoder_for(self.layout.name, self.model)
        table = self.layout.tables[0] if self.layout.name != "A" else "predictions"
        options = " (FORMAT binary)" if self.layout.binary else ""
        self.copy = f"COPY {table} ({self.encoder.columns}) FROM STDIN{options}"
        self.staging_copy = f"COPY staging ({self.encoder.columns}) FROM STDIN{options}"

    def setup(self) -> None:
        with self.conn.transaction():
            self.conn.execute(self.layout.ddl)
            if self.layout.name not in ("A", "E"):
                params = schemas.model_params(self.model, positional=self.layout.positional)
                self.conn.execute(schemas.INSERT_MODEL, params)
        self.conn.execute("CHECKPOINT")

    def batches(self, rows: int, start: float, seed: int) -> tuple[list[bytes], list[Request]]:
        made = requests(
            self.model, rows // self.rows_per_request, self.rows_per_request,
            start=start, seed=seed, spacing=60.0 / (rows // self.rows_per_request),
        )  # fmt: skip
        chunks = list(chunks_of_rows(made, self.batch_rows))
        self.first_ids = [c[0].request_id for c in chunks]
        return [self.encoder.encode(c) for c in chunks], made

    def ingest(self, payloads: Sequence[bytes], rows: int) -> Ingest:
        meter = Meter(self.conn, self.postmaster)
        meter.start()
        for payload in payloads:
            with self.conn.transaction():
                _copy(self.conn, self.copy, payload, self.layout.binary)
        return _per_row(meter.stop(), rows)

    def replay(self, payloads: Sequence[bytes], rows: int) -> tuple[Ingest, int]:
        """Staging + INSERT ... ON CONFLICT DO NOTHING; returns the cost and rows added."""
        meter = Meter(self.conn, self.postmaster)
        meter.start()
        added = 0
        for payload in payloads:
            with self.conn.transaction():
                self.conn.execute(self.layout.staging)
                _copy(self.conn, self.staging_copy, payload, self.layout.binary)
                added += self.conn.execute(self.layout.move).rowcount
        return _per_row(meter.stop(), rows), added

    def replay_probe(self, payloads: Sequence[bytes], rows: int) -> tuple[Ingest, int]:
        """Replay without staging: a frame is committed whole or not at all, so one index
        probe for its first request tells whether to COPY it straight in or skip it."""
        probe = (
            "SELECT 1 FROM prediction_requests WHERE request_id = %s"
            if self.layout.name.startswith("D")
            else f"SELECT 1 FROM {self.layout.tables[0]} WHERE request_id = %s AND row_index = 0"
        )
        meter = Meter(self.conn, self.postmaster)
        meter.start()
        added = 0
        for first, payload in zip(self.first_ids, payloads, strict=True):
            with self.conn.transaction():
                if self.conn.execute(probe, [first]).fetchone() is None:
                    _copy(self.conn, self.copy, payload, self.layout.binary)
                    added += 1
        return _per_row(meter.stop(), rows), added

    def sizes(self, rows: int) -> dict[str, float]:
        table = self.layout.tables[0]
        row = self.conn.execute(
            "SELECT pg_table_size(%(t)s), pg_indexes_size(%(t)s), pg_total_relation_size(%(t)s)",
            {"t": table},
        ).fetchone()
        assert row is not None
        heap, indexes, total = (float(v) for v in row)
        return {"table_b": heap / rows, "index_b": indexes / rows, "total_b": total / rows}

    def check(self, sample: Request) -> None:
        """The view gives back what was logged: names, values, classes (a wrong layout is
        not measured)."""
        got = self.conn.execute(
            "SELECT row_index, features::text, prediction, probabilities::text, latency_ms,"
            " client_request_id, model_version FROM predictions WHERE request_id = %s"
            " ORDER BY row_index",
            [sample.request_id],
        ).fetchall()
        if len(got) != sample.size:
            raise AssertionError(f"{self.layout.name}: {len(got)} rows, {sample.size} logged")
        for i, (index, features, prediction, probabilities, latency, crid, version) in enumerate(
            got
        ):
            expected = (
                dict(zip(self.model.feature_names, sample.rows[i], strict=True))
                if (sample.rows)
                else dict(zip(self.model.feature_names, sample.numbers[i].tolist(), strict=True))
            )
            probs = dict(zip(self.model.classes, sample.probabilities[i].tolist(), strict=True))
            if (
                index != i
                or orjson.loads(features) != expected
                or list(orjson.loads(features)) != list(self.model.feature_names)
                or prediction != sample.predictions[i]
                or orjson.loads(probabilities) != probs
                or latency != sample.latency_ms
                or crid != sample.client_request_id
                or version != self.model.version
            ):
                raise AssertionError(f"{self.layout.name}: row {i} differs: {features}")


@dataclass(frozen=True)
class Timing:
    wall_ms: float
    cpu_ms: float


def time_query(
    conn: psycopg.Connection[Any], query: str, params: dict[str, Any], repeats: int = 5
) -> Timing:
    """Median wall and backend CPU (schedstat: ns, where stat counts 10 ms ticks) of
    ``repeats`` runs after one warm-up."""
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    backend = int(row[0]) if row else 0
    conn.execute(query, params).fetchall()
    walls, cpus = [], []
    for _ in range(repeats):
        cpu = run_ns(backend)
        started = time.perf_counter()
        conn.execute(query, params).fetchall()
        walls.append(time.perf_counter() - started)
        cpus.append((run_ns(backend) - cpu) / 1e9)
    return Timing(statistics.median(walls) * 1000, statistics.median(cpus) * 1000)


def queries(case: Case, newest: Request) -> dict[str, Timing]:
    model = case.model
    feature = model.feature_names[model.numeric[0]]
    position = model.numeric[0] + 1
    at: datetime = case.conn.execute(
        "SELECT created_at FROM predictions WHERE request_id = %s LIMIT 1", [newest.request_id]
    ).fetchone()[0]  # type: ignore[index]
    cursor = {"at": at, "id": newest.request_id, "row": newest.size // 2}
    params = {"feature": feature, "position": position, "key": model.key}
    newest_hour = datetime.now(UTC) - timedelta(hours=1)
    return {
        "feature": time_query(case.conn, schemas.FEATURE_QUERY, {"feature": feature}),
        "feature_values": time_query(case.conn, case.layout.fast_feature, params),
        "feature_base": time_query(case.conn, case.layout.base_feature, params),
        "page": time_query(case.conn, schemas.PAGE_QUERY, {}),
        "next_page": time_query(case.conn, schemas.NEXT_PAGE_QUERY, cursor),
        "count": time_query(case.conn, schemas.COUNT_QUERY, {}),
        "stats": time_query(
            case.conn, sql.PG_STATS, {"since": newest_hour, "until": None, "model_version": None}
        ),
        "version_page": time_query(
            case.conn, schemas.VERSION_PAGE_QUERY, {"version": model.version}
        ),
    }


@dataclass
class CaseResult:
    layout: str
    workload: str
    rows_per_request: int
    ingest: list[Ingest]
    replay_new: Ingest | None = None
    replay_duplicates: Ingest | None = None
    probe_new: Ingest | None = None
    probe_duplicates: Ingest | None = None
    sizes: dict[str, float] = field(default_factory=dict)
    queries: dict[str, Timing] = field(default_factory=dict)

    def median(self, pick: Callable[[Ingest], float]) -> float:
        return statistics.median(pick(i) for i in self.ingest)


def run_case(
    case: Case,
    workload: str,
    *,
    reps: int,
    rows: int,
    replay: bool,
    query: bool,
    log: Callable[[str], None],
) -> CaseResult:
    case.setup()
    result = CaseResult(case.layout.name, workload, case.rows_per_request, [])
    now = time.time()
    newest: Request | None = None
    for rep in range(reps):
        # Older repetitions lie hours back; the last one in the last ten minutes, so the
        # one-hour queries read exactly its rows.
        start = now - 600 - (reps - 1 - rep) * 3 * 3600
        payloads, made = case.batches(rows, start, seed=rep)
        ingest = case.ingest(payloads, rows)
        result.ingest.append(ingest)
        newest = made[-1]
        if rep == 0:
            case.check(made[len(made) // 2])
        log(
            f"  {case.layout.name} {workload}x{case.rows_per_request} rep {rep}: "
            f"backend {ingest.backend_us:.2f} µs/row, others {ingest.others_us:.2f}, "
            f"client {ingest.client_us:.2f}, WAL {ingest.wal_bytes:.0f} B/row"
        )
    assert newest is not None
    case.conn.execute("VACUUM ANALYZE")
    result.sizes = case.sizes(reps * rows)
    if query:
        result.queries = queries(case, newest)
    if replay:
        payloads, _ = case.batches(rows, now - 5 * 86400, seed=1000)
        result.replay_new, added = case.replay(payloads, rows)
        per_request = case.layout.name.startswith("D")
        if added != (rows // case.rows_per_request if per_request else rows):
            raise AssertionError(f"replay added {added}")
        result.replay_duplicates, added = case.replay(payloads, rows)
        if added:
            raise AssertionError(f"a replay of committed rows added {added}")
        payloads, _ = case.batches(rows, now - 6 * 86400, seed=2000)
        result.probe_new, added = case.replay_probe(payloads, rows)
        if added != len(payloads):
            raise AssertionError(f"a probed replay added {added} of {len(payloads)} batches")
        result.probe_duplicates, added = case.replay_probe(payloads, rows)
        if added:
            raise AssertionError(f"a probed replay of committed rows added {added} batches")
    return result
