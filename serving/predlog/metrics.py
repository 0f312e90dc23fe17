"""The log pipeline's Prometheus metrics, registered in the app's own registry.

Gauges are set from the log's state by ``sample()``, which the app calls before each
scrape (and, in a worker of ``serve --workers N``, every second: serving/metrics.py), so
the hot path pays for no metric but the refusal counter. With workers, each gauge is the
server's: rows queued and spool bytes summed over live workers, the oldest unwritten age
their maximum, the store reachable only when every live worker reaches it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge

Mode = Literal["livesum", "livemax", "livemin"]


@dataclass(frozen=True, slots=True)
class LogMetrics:
    rows_written: Counter
    duplicate_rows: Counter
    write_retries: Counter
    write_failures: Counter
    dropped: Counter
    torn_lines: Counter
    refused: Counter
    gauges: tuple[tuple[Gauge, Callable[[], float]], ...]

    def sample(self) -> None:
        """Set every gauge from the log's state now."""
        for gauge, read in self.gauges:
            gauge.set(read())


def create(
    registry: CollectorRegistry,
    *,
    queued: Callable[[], float],
    spooled_bytes: Callable[[], float],
    oldest_age: Callable[[], float],
    reachable: Callable[[], float],
) -> LogMetrics:
    """Register every ``skship_log_*`` metric in ``registry``."""
    sources: dict[str, tuple[str, Mode, Callable[[], float]]] = {
        "skship_log_rows_queued": ("Rows spooled and not yet in the store.", "livesum", queued),
        "skship_log_spool_bytes": ("Bytes in the spool folder.", "livesum", spooled_bytes),
        "skship_log_oldest_unwritten_age_seconds": (
            "Age of the oldest record not yet in the store (0 when none).",
            "livemax",
            oldest_age,
        ),
        "skship_log_store_reachable": (
            "1 when the last store operation succeeded.",
            "livemin",
            reachable,
        ),
    }
    gauges = tuple(
        (Gauge(name, documentation, registry=registry, multiprocess_mode=mode), read)
        for name, (documentation, mode, read) in sources.items()
    )
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
        gauges=gauges,
    )
    # Export every series from the start, so "stays 0" is visible, not absent.
    for reason in ("corrupt", "rejected"):
        log_metrics.dropped.labels(reason)
    for reason in ("full", "unavailable"):
        log_metrics.refused.labels(reason)
    for reason in ("StoreUnavailableError", "SchemaError"):
        log_metrics.write_failures.labels(reason)
    return log_metrics
