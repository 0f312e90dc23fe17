"""Drain benchmark: how fast does a full spool replay into PostgreSQL?

Fills a spool with N rows (the 30 breast-cancer features, two class probabilities) in
requests of ``--request-rows`` rows, appended one request at a time through the real
``append`` path, then replays it with the real writer into a throwaway PostgreSQL cluster
(fsync on) and reports rows/s per insert method (serving/predlog/postgres.py):

    python -m bench.drain                      # 300,000 one-row requests, COPY (the log's)
    python -m bench.drain --request-rows 100   # 300,000 rows in 100-row requests
    python -m bench.drain --method all         # vs always staging (a replay's path)
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import psycopg
from prometheus_client import CollectorRegistry
from sklearn.datasets import load_breast_cancer

from serving.predlog import metrics
from serving.predlog.postgres import Method, PostgresStore
from serving.predlog.records import ModelSchema, PredictionRecord
from serving.predlog.spool import SUFFIX, Spool
from serving.predlog.writer import Writer
from tests.pgcluster import PgCluster


@dataclass(frozen=True)
class Result:
    method: str
    rows: int
    append_us_per_record: float
    spool_mib: float
    drain_seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.drain_seconds


def fill_spool(directory: Path, records: int, request_rows: int = 1, seed: int = 0) -> float:
    """Append ``records`` rows in requests of ``request_rows``; returns the mean append cost
    per request in microseconds."""
    data = load_breast_cancer()
    schema = ModelSchema(
        "breast_cancer", "bench", tuple(data.feature_names), ("malignant", "benign")
    )
    rng = np.random.default_rng(seed)
    rows = data.data[rng.integers(0, len(data.data), size=records)]
    p = rng.random(records)
    spool = Spool(directory, max_bytes=1 << 40, segment_bytes=64 << 20)
    spool.open()
    spent = 0.0
    starts = range(0, records, request_rows)
    try:
        for i in starts:
            j = min(i + request_rows, records)
            record = PredictionRecord(
                str(uuid.uuid4()),
                time.time(),
                schema,
                rows[i:j],
                ["malignant" if x > 0.5 else "benign" for x in p[i:j]],
                np.column_stack([p[i:j], 1 - p[i:j]]),
                1.5,
            )
            started = time.perf_counter()
            spool.append([record])
            spent += time.perf_counter() - started
    finally:
        spool.close()
    return spent / len(starts) * 1e6


def drain(url: str, spool_dir: Path, method: Method, batch_rows: int, threads: int) -> float:
    """Replay ``spool_dir`` into ``url`` with the log's writer; returns seconds taken."""
    store = PostgresStore(url, method=method, connections=threads)
    store.open()
    store.prepare()
    spool = Spool(spool_dir, max_bytes=1 << 40, segment_bytes=64 << 20)
    spool.open()
    log_metrics = metrics.create(
        CollectorRegistry(),
        queued=lambda: 0,
        spooled_bytes=lambda: 0,
        oldest_age=lambda: 0,
        reachable=lambda: 1,
    )
    writer = Writer(
        spool,
        store,
        log_metrics,
        batch_rows=batch_rows,
        flush_interval=0.05,
        retry_max=1.0,
        threads=threads,
    )
    writer.schema_ready = True
    started = time.perf_counter()
    writer.start()
    if not writer.stop(timeout=3600):
        raise RuntimeError("the spool did not drain")
    elapsed = time.perf_counter() - started
    spool.close()
    store.close()
    return elapsed


def run(
    records: int, methods: list[Method], batch_rows: int, threads: int, request_rows: int = 1
) -> list[Result]:
    results = []
    cluster = PgCluster(fsync=True)
    work = Path(tempfile.mkdtemp(prefix="skship-drain-"))
    try:
        cluster.start()
        template = work / "template"
        append_us = fill_spool(template, records, request_rows)
        spool_mib = sum(f.stat().st_size for f in template.glob(f"*{SUFFIX}")) / 2**20
        for method in methods:
            dbname = f"drain_{method}"
            with psycopg.connect(cluster.url, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {dbname}")
            url = cluster.url_for(dbname)
            spool_dir = work / method
            shutil.copytree(template, spool_dir)
            (spool_dir / ".lock").unlink(missing_ok=True)
            seconds = drain(url, spool_dir, method, batch_rows, threads)
            with psycopg.connect(url) as conn:
                row = conn.execute("SELECT count(*) FROM predictions").fetchone()
            stored = int(row[0]) if row else 0
            if stored != records:
                raise RuntimeError(f"{method}: {stored} rows stored, {records} expected")
            results.append(Result(method, stored, append_us, spool_mib, seconds))
    finally:
        cluster.destroy()
        shutil.rmtree(work, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.drain", description=__doc__)
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--method", choices=["copy", "staging", "all"], default="copy")
    parser.add_argument("--request-rows", type=int, default=1, help="rows per request (1)")
    parser.add_argument("--batch-rows", type=int, default=5000, help="LOG_BATCH_ROWS (5000)")
    parser.add_argument("--connections", type=int, default=2, help="LOG_WRITER_CONNECTIONS (2)")
    args = parser.parse_args(argv)
    every = ["copy", "staging"]
    methods = cast(list[Method], every if args.method == "all" else [args.method])
    results = run(args.records, methods, args.batch_rows, args.connections, args.request_rows)
    header = ("method", "rows", "spool MiB", "append µs", "drain s", "rows/s")
    print("{:<12} {:>9} {:>10} {:>10} {:>8} {:>9}".format(*header))
    for r in results:
        print(
            f"{r.method:<12} {r.rows:>9} {r.spool_mib:>10.1f} {r.append_us_per_record:>10.1f}"
            f" {r.drain_seconds:>8.2f} {r.rows_per_second:>9.0f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
