"""What the benchmark asks a running skship: rows it served, and whether its log is drained.

Both come from skship's own endpoints, so the comparison with the store does not depend on
the load generator (wrk does not count the requests still in flight when it stops; the
server answered, and logged, them all the same).
"""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

# Counter of predicted instances, by model version and class: every row of every 200.
PREDICTIONS = "skship_predictions"


def rows_served(client: httpx.Client, url: str) -> int:
    """Instances answered since the process started, summed from ``GET /metrics``."""
    response = client.get(f"{url}/metrics")
    response.raise_for_status()
    total = 0.0
    for family in text_string_to_metric_families(response.text):
        if family.name == PREDICTIONS:
            total += sum(s.value for s in family.samples if s.name == f"{PREDICTIONS}_total")
    return int(total)


def has_unwritten(client: httpx.Client, url: str) -> bool:
    """True while ``GET /ready`` reports a spooled record not yet in the store."""
    log = client.get(f"{url}/ready").json().get("log") or {}
    return log.get("oldest_unwritten_age_s") is not None


def log_store(client: httpx.Client, url: str) -> str | None:
    """The store ``GET /ready`` names: 'postgresql', 'sqlite' or 'disabled'."""
    log = client.get(f"{url}/ready").json().get("log") or {}
    store = log.get("store")
    return str(store) if store is not None else None
