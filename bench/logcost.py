"""What logging a row costs, end to end: CPU per logged row by process and thread.

Runs skship without logging and with PostgreSQL on the same workload (server and database
pinned to one core, wrk on another, as ``make bench``), reads ``/proc`` for every thread of
the server and every PostgreSQL process before and after the load *and* after the log has
caught up (so work the spool deferred is counted), and prints the cost of logging per row:
the event loop's extra CPU per request beyond the run without logging, the writer threads,
and PostgreSQL. Then it times the one-feature query over what was logged, through the view
(JSON and ``feature_values``), on the base table, and on a copy of the rows in the layout
before migration 0004 (a table of JSON rows) built in the same database:

    python -m bench.logcost                      # logreg, 100-row requests, 15 s
    python -m bench.logcost --rows 1 --duration 15
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg

from bench import procs, servers, skship, stores, wrk
from bench.models import BenchModel, body, sample_inputs, train_models

CLOCK_TICKS = procs.CLOCK_TICKS
FEATURE = "mean radius"
QUERIES = {
    "JSON through the view": (
        "SELECT avg((features->>'mean radius')::float8) FROM predictions"
        " WHERE created_at > now() - interval '1 hour'"
    ),
    "feature_values through the view": (
        "SELECT avg(feature_values[1][array_position(feature_names, 'mean radius')])"
        " FROM predictions WHERE created_at > now() - interval '1 hour'"
    ),
    "base table": (
        "SELECT avg(v) FROM prediction_requests q JOIN prediction_models m USING (model_key),"
        " unnest(q.features[:][array_position(m.feature_names, 'mean radius'):"
        "array_position(m.feature_names, 'mean radius')]) v"
        " WHERE q.created_at > now() - interval '1 hour'"
    ),
    "JSON rows (the layout before 0004)": (
        "SELECT avg((features->>'mean radius')::float8) FROM json_rows"
        " WHERE created_at > now() - interval '1 hour'"
    ),
}
JSON_ROWS = """
CREATE TABLE json_rows AS
SELECT request_id, row_index, created_at, model_name, model_version, features, prediction,
       probabilities, latency_ms, client_id, client_request_id
FROM predictions;
CREATE INDEX ON json_rows (created_at);
CREATE UNIQUE INDEX ON json_rows (request_id, row_index);
"""


def thread_ticks(pid: int) -> dict[int, int]:
    """utime + stime of every thread of ``pid``, by thread id."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(task.name)] = int(fields[11]) + int(fields[12])
    return out


def process_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total


@dataclass
class Run:
    requests: int
    rows: int
    seconds: float
    loop_s: float
    """The event loop (the server's main thread)."""
    other_threads_s: float
    """Every other server thread: the log's writers, mostly."""
    postgres_s: float
    drain_s: float


def measure(
    app: servers.App, models_dir: Path, model: BenchModel, bodies: Path, workdir: Path,
    database_url: str, postmaster: int | None, duration: int, rows: int,
) -> Run:  # fmt: skip
    server = servers.start(
        app, model, models_dir=models_dir, workdir=workdir, database_url=database_url, cpus=[0],
        # Room for everything the load brings: no request is refused at the spool's cap,
        # so every request the loop handled is a logged one.
        settings={"SPOOL_MAX_BYTES": str(8 << 30)},
    )  # fmt: skip
    try:
        url = f"{server.url}/predict"
        wrk.run(url, bodies, connections=32, duration_s=3, cpu=1)  # warm-up
        with httpx.Client(timeout=30) as client:
            stores.wait_drained(
                lambda: stores.count_rows(database_url) if postmaster else 0,
                lambda: skship.has_unwritten(client, server.url),
            )
            before_served = skship.predict_200s(client, server.url)
            pg = procs.tree(postmaster) if postmaster else []
            threads0, pg0 = thread_ticks(server.pid), process_ticks(pg)
            started = time.monotonic()
            wrk.run(url, bodies, connections=32, duration_s=duration, cpu=1)
            seconds = time.monotonic() - started
            drain_s = 0.0
            if postmaster:
                _, drain_s = stores.wait_drained(
                    lambda: stores.count_rows(database_url),
                    lambda: skship.has_unwritten(client, server.url),
                )
            threads1, pg1 = thread_ticks(server.pid), process_ticks(pg)
            served = skship.settled_predict_200s(client, server.url) - before_served
    finally:
        server.stop()
    loop = (threads1.get(server.pid, 0) - threads0.get(server.pid, 0)) / CLOCK_TICKS
    others = sum(t - threads0.get(tid, 0) for tid, t in threads1.items() if tid != server.pid)
    return Run(
        served, served * rows, seconds, loop, others / CLOCK_TICKS,
        (pg1 - pg0) / CLOCK_TICKS, drain_s,
    )  # fmt: skip


def query_times(url: str) -> dict[str, float]:
    """Median wall milliseconds of 5 runs of each query (after one warm-up run)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(JSON_ROWS)
        conn.execute("VACUUM ANALYZE json_rows")
        conn.execute("VACUUM ANALYZE prediction_requests")
        out = {}
        for name, sql in QUERIES.items():
            conn.execute(sql)
            times = []
            for _ in range(5):
                started = time.perf_counter()
                conn.execute(sql).fetchone()
                times.append((time.perf_counter() - started) * 1000)
            out[name] = statistics.median(times)
        [(count,)] = conn.execute("SELECT count(*) FROM json_rows").fetchall()
        out["rows"] = float(count)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.logcost", description=__doc__)
    parser.add_argument("--rows", type=int, default=100, help="rows per request (100)")
    parser.add_argument("--duration", type=int, default=15, help="seconds of load (15)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="skship-logcost-"))
    models = train_models(work / "models", ["logreg"])
    model = models["logreg"]
    bodies = wrk.write_bodies(
        work / "bodies.jsonl",
        [body(X) for X in sample_inputs(model.dataset, args.rows, 200)],
    )
    postgres = stores.PinnedPostgres(0)
    try:
        runs = {}
        for name in ("skship-nolog", "skship-pg"):
            app = next(a for a in servers.APPS if a.name == name)
            url = postgres.new_database()
            runs[name] = measure(
                app, work / "models", model, bodies, work / name, url,
                postgres.cluster.postmaster_pid() if app.store == "postgresql" else None,
                args.duration, args.rows,
            )  # fmt: skip
        times = query_times(url)
    finally:
        postgres.close()
    base, logged = runs["skship-nolog"], runs["skship-pg"]
    per_request_loop = base.loop_s / base.requests
    extra_loop = logged.loop_s - per_request_loop * logged.requests
    extra_threads = logged.other_threads_s - base.other_threads_s / base.requests * logged.requests

    def us(seconds: float) -> str:
        return f"{seconds / logged.rows * 1e6:.2f}"

    print(f"logreg, {args.rows}-row requests, 32 connections, {args.duration} s of load")
    print(
        f"no log: {base.requests / base.seconds:,.0f} req/s, event loop"
        f" {per_request_loop * 1e6:.0f} µs per request"
    )
    wall = logged.seconds + logged.drain_s
    print(
        f"PostgreSQL: {logged.requests / logged.seconds:,.0f} req/s during the load,"
        f" {logged.rows:,} rows logged, caught up {logged.drain_s:.1f} s after it:"
        f" {logged.rows / wall:,.0f} rows/s sustained"
    )
    print("\n| µs per logged row | |\n|---|---|")
    print(f"| event loop, beyond the run without logging | {us(extra_loop)} |")
    print(f"| other server threads (the log's writers) | {us(extra_threads)} |")
    print(f"| PostgreSQL, every process | {us(logged.postgres_s)} |")
    print(f"| total | {us(extra_loop + extra_threads + logged.postgres_s)} |")
    print(f"\none-feature query, wall ms (median of 5), {times.pop('rows'):,.0f} rows:")
    for name, ms in times.items():
        print(f"  {name:<40} {ms:8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
