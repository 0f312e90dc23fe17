"""``python -m bench.layouts``: measure the candidate layouts of the prediction log.

    python -m bench.layouts                          # everything (~15 min on 2 cores)
    python -m bench.layouts --only encode            # the Python encoders alone
    python -m bench.layouts --only pg --layouts A,B,D --workloads W1x100
    python -m bench.layouts --only sqlite
    python -m bench.layouts --only migrate --migrate-rows 1000000
    python -m bench.layouts --url postgresql://postgres@127.0.0.1:5432/postgres
    python -m bench.layouts --markdown results.json  # the tables of an earlier --json run

Without ``--url`` it starts a throwaway PostgreSQL cluster (tests/pgcluster.py: default
settings, fsync on, synchronous_commit on). See docs/log-layout.md for the method and the
results.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import psycopg

from bench.layouts import migrate, postgres, report, schemas, sqlite
from bench.layouts.encoders import measure_encoding
from bench.layouts.workloads import MODELS
from tests.pgcluster import PgCluster

WORKLOADS = ("W1x100", "W1x1", "W2x100", "W2x1")
LAYOUTS = {
    "W1x100": ("A", "B-text", "C", "B", "B-req", "D", "D-pglz", "D-lz4", "E"),
    "W1x1": ("A", "C", "B", "D", "E"),
    "W2x100": ("A", "C", "B", "D"),
    "W2x1": ("A", "C", "B", "D"),
}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _layout(name: str, workload: str) -> schemas.Layout:
    fixed = {"A": schemas.A, "B": schemas.B, "B-text": schemas.B_TEXT, "C": schemas.C}
    fixed["B-req"] = schemas.B_REQ
    fixed["D-pglz"], fixed["D-lz4"] = schemas.D_PGLZ, schemas.D_LZ4
    fixed["D"] = schemas.D
    if name == "E":
        return schemas.wide_layout(MODELS[workload[:2]])
    return fixed[name]


def run_encode(workloads: list[str], layouts: set[str] | None) -> list[dict[str, Any]]:
    out = []
    for workload in workloads:
        model, rows = MODELS[workload[:2]], int(workload.split("x")[1])
        names = ["A-today"] if workload.startswith("W1") else []
        for name in [*names, *LAYOUTS[workload]]:
            if (layouts and name not in layouts and name != "A-today") or name.startswith("D-"):
                continue  # D-pglz and D-lz4 encode as D
            result = measure_encoding(name, model, workload[:2], rows)
            _log(
                f"encode {name:<8} {workload:<7} {result.us_per_row:6.2f} µs/row"
                f" (+ frame {result.frame_us_per_row:.2f}), {result.bytes_per_row:.0f} B/row"
            )
            out.append(dataclasses.asdict(result))
    return out


def run_pg(
    url: str | None, workloads: list[str], layouts: set[str] | None, args: argparse.Namespace
) -> dict[str, Any]:
    cluster: PgCluster | None = None
    if url is None:
        cluster = PgCluster(fsync=True)
        cluster.start()
        url = cluster.url
    try:
        with psycopg.connect(url, autocommit=True) as admin:
            settings = {
                name: str(admin.execute(f"SHOW {name}").fetchone()[0])  # type: ignore[index]
                for name in (
                    "server_version", "fsync", "synchronous_commit", "wal_level",
                    "full_page_writes", "shared_buffers", "max_wal_size",
                    "default_toast_compression",
                )
            }  # fmt: skip
        _log(f"PostgreSQL: {settings}")
        results = []
        for workload in workloads:
            for name in LAYOUTS[workload]:
                if layouts and name not in layouts:
                    continue
                results.append(_pg_case(url, cluster, workload, name, args))
        return {"settings": settings, "cases": results}
    finally:
        if cluster is not None:
            cluster.destroy()


def _pg_case(
    url: str, cluster: PgCluster | None, workload: str, name: str, args: argparse.Namespace
) -> dict[str, Any]:
    dbname = f"layouts_{name.replace('-', '_').lower()}_{workload.lower()}"
    base = url.rsplit("/", 1)[0]
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {dbname}")
        admin.execute(f"CREATE DATABASE {dbname}")
    try:
        with psycopg.connect(f"{base}/{dbname}", autocommit=True) as conn:
            case = postgres.Case(
                _layout(name, workload),
                MODELS[workload[:2]],
                int(workload.split("x")[1]),
                conn,
                cluster.postmaster_pid() if cluster else None,
                batch_rows=args.batch_rows,
            )
            result = postgres.run_case(
                case, workload, reps=args.reps, rows=args.rows, replay=True, query=True, log=_log
            )
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {dbname}")
    summary = _summary(result)
    _log(f"{name} {workload}: {summary}")
    return {"summary": summary, "detail": dataclasses.asdict(result)}


def _summary(result: postgres.CaseResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "layout": result.layout,
        "workload": result.workload,
        "backend_us": round(result.median(lambda i: i.backend_us), 2),
        "backend_run_us": round(result.median(lambda i: i.backend_run_us), 2),
        "others_us": round(result.median(lambda i: i.others_us), 2),
        "client_us": round(result.median(lambda i: i.client_us), 2),
        "wal_b": round(result.median(lambda i: i.wal_bytes)),
        "backend_us_all": [round(i.backend_us, 2) for i in result.ingest],
    }
    if result.replay_new and result.replay_duplicates:
        out["replay_new_us"] = round(result.replay_new.backend_us, 2)
        out["replay_dup_us"] = round(result.replay_duplicates.backend_us, 2)
    if result.probe_new and result.probe_duplicates:
        out["probe_new_us"] = round(result.probe_new.backend_us, 2)
        out["probe_dup_us"] = round(result.probe_duplicates.backend_us, 2)
    out.update({k: round(v, 1) for k, v in result.sizes.items()})
    out.update({f"{k}_ms": round(v.wall_ms, 2) for k, v in result.queries.items()})
    out.update({f"{k}_cpu_ms": round(v.cpu_ms, 1) for k, v in result.queries.items()})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.layouts", description=__doc__)
    parser.add_argument("--url", help="an existing PostgreSQL (admin); default: throwaway")
    parser.add_argument("--only", choices=["encode", "pg", "sqlite", "migrate"], action="append")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--layouts", help="comma-separated subset of A,B-text,C,B,D,E")
    parser.add_argument("--reps", type=int, default=5, help="ingest repetitions (5)")
    parser.add_argument("--rows", type=int, default=100_000, help="rows per repetition")
    parser.add_argument("--batch-rows", type=int, default=5000, help="rows per COPY (5000)")
    parser.add_argument("--migrate-rows", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument(
        "--markdown", type=Path, help="print the tables of a --json report and exit"
    )
    args = parser.parse_args(argv)
    if args.markdown:
        print(report.markdown(orjson.loads(args.markdown.read_bytes())))
        return 0
    parts = set(args.only or ["encode", "pg", "sqlite", "migrate"])
    workloads = [w for w in args.workloads.split(",") if w]
    layouts = set(args.layouts.split(",")) if args.layouts else None
    results: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if "encode" in parts:
        results["encode"] = run_encode(workloads, layouts)
    if "pg" in parts:
        results["pg"] = run_pg(args.url, workloads, layouts, args)
    if "sqlite" in parts:
        results["sqlite"] = sqlite.run(_log)
    if "migrate" in parts:
        results["migrate"] = migrate.run(args.url, args.migrate_rows, _log)
    text = orjson.dumps(results, option=orjson.OPT_INDENT_2)
    if args.json:
        args.json.write_bytes(text)
    print(report.markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
