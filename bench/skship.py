"""What the benchmark asks a running skship: rows it served, and whether its log is drained.

Both come from skship's own endpoints, so the comparison with the store does not depend on
the load generator (wrk does not count the requests still in flight when it stops; the
server answered, and logged, them all the same).
"""

from __future__ import annotations

import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

REQUESTS = "skship_http_requests"
QUEUED = "skship_log_rows_queued"


def predict_200s(client: httpx.Client, url: str, route: str = "/predict") -> int:
    """Requests to ``route`` answered 200 since the process started (``GET /metrics``).

    The benchmark reads it before and after each workload, whose requests all carry the
    same number of rows, so rows served = the difference x rows per request.
    """
    response = client.get(f"{url}/metrics")
    response.raise_for_status()
    total = 0.0
    for family in text_string_to_metric_families(response.text):
        if family.name == REQUESTS:
            total += sum(
                sample.value
                for sample in family.samples
                if sample.name == f"{REQUESTS}_total"
                and sample.labels.get("route") == route
                and sample.labels.get("status") == "200"
            )
    return int(total)


def settled_predict_200s(
    client: httpx.Client, url: str, route: str = "/predict", *, quiet: float = 0.3
) -> int:
    """``predict_200s`` once it stops moving: wrk exits with requests still in flight,
    and the server answers them after; they belong to the workload that sent them."""
    last = predict_200s(client, url, route)
    while True:
        time.sleep(quiet)
        current = predict_200s(client, url, route)
        if current == last:
            return current
        last = current


def has_unwritten(client: httpx.Client, url: str) -> bool:
    """True while ``GET /metrics`` counts spooled rows not yet in the store.

    Not ``GET /ready``: with workers, /ready answers for the one worker that took the
    connection, while /metrics sums ``skship_log_rows_queued`` over all of them.
    """
    response = client.get(f"{url}/metrics")
    response.raise_for_status()
    return any(
        sample.value > 0
        for family in text_string_to_metric_families(response.text)
        if family.name == QUEUED
        for sample in family.samples
    )


def log_store(client: httpx.Client, url: str) -> str | None:
    """The store ``GET /ready`` names: 'postgresql', 'sqlite' or 'disabled'."""
    log = client.get(f"{url}/ready").json().get("log") or {}
    store = log.get("store")
    return str(store) if store is not None else None
