"""The log pipeline's Prometheus metrics, registered in the app's own registry.

Gauges read the log's state when scraped, so the hot path pays for no metric but the
refusal counter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge


@dataclass(frozen=True, slots=True)
class LogMetrics:
    rows_written: Counter
    duplicate_rows: Counter
    write_retries: Counter
    write_failures: Counter
    dropped: Counter
    torn_lines: Counter
    refused: Counter


def create(
    registry: CollectorRegistry,
    *,
    queued: Callable[[], float],
    spooled_bytes: Callable[[], float],
    oldest_age: Callable[[], float],
    reachable: Callable[[], float],
) -> LogMetrics:
    """Register every ``skship_log_*`` metric in ``registry``."""
    gauges = {
        "skship_log_rows_queued": ("Rows spooled and not yet in the store.", queued),
        "skship_log_spool_bytes": ("Bytes in the spool folder.", spooled_bytes),
        "skship_log_oldest_unwritten_age_seconds": (
            "Age of the oldest record not yet in the store (0 when none).",
            oldest_age,
        ),
        "skship_log_store_reachable": ("1 when the last store operation succeeded.", reachable),
    }
    for name, (documentation, function) in gauges.items():
        Gauge(name, documentation, registry=registry).set_function(function)
    log_metrics = LogMetrics(
        rows_written=Counter(
            "skship_log_rows_written", "Rows inserted into the store.", registry=registry
        ),
        duplicate_rows=Counter(
            "skship_log_duplicate_rows",
            "Rows skipped because the store already had them (replays, client retries).",
            registry=registry,
        ),
        write_retries=Counter(
            "skship_log_write_retries", "Batch writes retried after a failure.", registry=registry
        ),
        write_failures=Counter(
            "skship_log_write_failures",
            "Failed store operations (each is retried; nothing is dropped for it).",
            ["reason"],
            registry=registry,
        ),
        dropped=Counter(
            "skship_log_dropped_rows",
            "Accepted rows that will never reach the store (should stay 0).",
            ["reason"],
            registry=registry,
        ),
        torn_lines=Counter(
            "skship_log_spool_torn_lines",
            "Torn last lines skipped at replay: writes cut by a kill, never answered.",
            registry=registry,
        ),
        refused=Counter(
            "skship_log_refused_records",
            "Records refused by append (the request got 503).",
            ["reason"],
            registry=registry,
        ),
    )
    # Export every series from the start, so "stays 0" is visible, not absent.
    for reason in ("corrupt", "rejected"):
        log_metrics.dropped.labels(reason)
    for reason in ("full", "unavailable"):
        log_metrics.refused.labels(reason)
    for reason in ("StoreUnavailableError", "SchemaError"):
        log_metrics.write_failures.labels(reason)
    return log_metrics
