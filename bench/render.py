"""The table and the targets as Markdown (readable in a terminal, pasteable into
docs/performance.md), and the whole run as JSON under bench/results/."""

from __future__ import annotations

import dataclasses
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

from bench.report import Row, Scaling, Target
from bench.runner import Results

RESULTS_DIR = Path(__file__).with_name("results")
HEADER = (
    "| app | model | rows | conns | runs | req/s | p50 ms | p99 ms | x ceiling | x naive | errors "
    "| server CPU | req/CPU-s | RSS MiB (peak) | ready s | logged/served |"
)
APP_ORDER = (
    "ceiling", "naive", "skship-nolog", "skship-sqlite", "skship-pg", "skship-v2", "skship-pg-w2",
)  # fmt: skip
MODEL_ORDER = ("any", "logreg", "rf", "penguins")


def table(rows: list[Row]) -> str:
    def order(row: Row) -> tuple[int, int, int, int]:
        return (
            MODEL_ORDER.index(row.model) if row.model in MODEL_ORDER else 9,
            row.rows,
            row.connections,
            APP_ORDER.index(row.app) if row.app in APP_ORDER else 9,
        )

    lines = [HEADER, "|" + "---|" * HEADER.count(" | ") + "---|"]
    for row in sorted(rows, key=order):
        memory = (
            f"{row.rss_mib:.0f} ({row.peak_mib:.0f})"
            if row.rss_mib is not None and row.peak_mib is not None
            else ""
        )
        lines.append(
            f"| {row.app} | {row.model} | {row.rows} | {row.connections} | {row.runs} "
            f"| {row.rps:,.0f} "
            f"| {row.p50_ms:.2f} | {row.p99_ms:.2f} | {_ratio(row.x_ceiling)} "
            f"| {_ratio(row.x_naive)} | {row.errors} | {row.cpu_share:.0%} "
            f"| {row.requests_per_cpu_s:,.0f} | {memory} "
            f"| {'' if row.ready_s is None else f'{row.ready_s:.2f}'} | {row.logged} |"
        )
    return "\n".join(lines)


def targets(found: list[Target]) -> str:
    lines = [
        "| target | goal | measured | per CPU-s | result |",
        "|---|---|---|---|---|",
    ]
    for target in found:
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[target.passed]
        if target.note:
            verdict = f"{verdict} ({target.note})"
        lines.append(
            f"| {target.name} | {target.goal} | {target.value} | {target.per_cpu} | {verdict} |"
        )
    return "\n".join(lines)


def scaling(found: list[Scaling]) -> str:
    """skship-pg (1 process) against skship-pg-w2 (2 workers), both logging to PostgreSQL."""
    lines = [
        "| model | rows | conns | req/s 1 proc | req/s 2 workers | x | req/CPU-s 1 proc "
        "| req/CPU-s 2 workers | x | server CPU 1 proc / 2 workers |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in found:
        lines.append(
            f"| {row.model} | {row.rows} | {row.connections} | {row.rps[0]:,.0f} "
            f"| {row.rps[1]:,.0f} | {_ratio(row.x_rps)} | {row.per_cpu[0]:,.0f} "
            f"| {row.per_cpu[1]:,.0f} | {_ratio(row.x_per_cpu)} "
            f"| {row.cpu_share[0]:.0%} / {row.cpu_share[1]:.0%} |"
        )
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    """What the numbers depend on: machine, versions, commit, date."""
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.partition(":")[2].strip()
            break
    versions = {
        name: metadata.version(name)
        for name in ("fastapi", "uvicorn", "uvloop", "httptools", "scikit-learn", "numpy")
    }
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": versions,
        "wrk": _output(["wrk", "--version"]).splitlines()[0:1],
        "git_commit": _output(["git", "rev-parse", "HEAD"]).strip(),
    }


def write_json(
    results: Results, rows: list[Row], found: list[Target], scaled: list[Scaling] | None = None
) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    path = RESULTS_DIR / f"bench-{stamp}.json"
    document = {
        "environment": environment(),
        "config": dataclasses.asdict(results.config),
        "table": [dataclasses.asdict(r) for r in rows],
        "targets": [dataclasses.asdict(t) for t in found],
        "scaling": [dataclasses.asdict(r) for r in scaled or []],
        "measurements": [
            {**dataclasses.asdict(m), "rps": m.result.rps} for m in results.measurements
        ],
        "instances": [dataclasses.asdict(i) for i in results.instances],
    }
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    return path


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def _output(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    except OSError:
        return ""
