"""What the benchmark asks a running skship: rows it served, and whether its log is drained.

Both come from skship's own endpoints, so the comparison with the store is independent of
the load generator (wrk does not count requests still in flight when it stops; the
server answered, and logged, them all the same).
"""

from __future__ import annotations

import httpx


def rows_served(client: httpx.Client, url: str) -> int:
    """Instances answered with 200 since the process started, from ``GET /metrics``."""
    raise NotImplementedError


def has_unwritten(client: httpx.Client, url: str) -> bool:
    """True while ``GET /ready`` reports records spooled but not yet in the store."""
    raise NotImplementedError
