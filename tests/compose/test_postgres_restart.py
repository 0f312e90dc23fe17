"""Guarantee 1 and 2 through compose: the postgres container restarts under load, and every
instance of every 200 response is in the log exactly once after the spool drained."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable

import httpx
import pytest

from tests.compose.stack import ComposeStack, instances

pytestmark = pytest.mark.compose

CLIENTS = 4
OUTAGE_SECONDS = 8


class Load:
    """Clients posting 1-3 instance batches with their own request ids until stopped."""

    def __init__(self, stack: ComposeStack) -> None:
        self.url = f"{stack.base_url}/predict"
        self.stop = threading.Event()
        self.answered: dict[str, int] = {}
        """request id -> instances, for every 200."""
        self.answered_at: list[float] = []
        self.refused: list[str] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, args=(i,)) for i in range(CLIENTS)]

    def _client(self, seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(timeout=15) as client:
            while not self.stop.is_set():
                request_id, count = str(uuid.uuid4()), rng.randint(1, 3)
                try:
                    answer = client.post(
                        self.url,
                        json={"instances": instances(count)},
                        headers={"X-Request-ID": request_id},  # a correlation id only
                    )
                    outcome = answer.status_code
                except httpx.HTTPError as exc:
                    outcome = repr(exc)  # type: ignore[assignment]
                with self._lock:
                    if outcome == 200:
                        # The log's key is the id the server made (answer's request_id).
                        self.answered[answer.json()["request_id"]] = count
                        self.answered_at.append(time.monotonic())
                    else:
                        self.refused.append(f"{request_id}: {outcome}")

    def during(self, action: Callable[[], None]) -> None:
        for thread in self._threads:
            thread.start()
        try:
            time.sleep(2)
            action()
            time.sleep(3)
        finally:
            self.stop.set()
            for thread in self._threads:
                thread.join(timeout=30)


def logged_rows(stack: ComposeStack, request_ids: set[str]) -> dict[str, tuple[int, int, int]]:
    """request id -> (rows, distinct row_index, max row_index + 1), for ``request_ids``."""
    rows = stack.psql(
        "SELECT request_id, count(*), count(DISTINCT row_index), max(row_index) + 1 "
        "FROM predictions GROUP BY request_id"
    )
    return {
        rid: (int(n), int(distinct), int(top))
        for rid, n, distinct, top in rows
        if rid in request_ids
    }


def test_postgres_restart_under_load_loses_and_duplicates_nothing(stack: ComposeStack) -> None:
    load = Load(stack)
    outage: list[float] = []

    def restart_postgres() -> None:
        stack.run("stop", "postgres")
        outage.append(time.monotonic())
        time.sleep(OUTAGE_SECONDS)
        outage.append(time.monotonic())
        stack.run("start", "postgres")
        stack.wait_healthy("postgres")

    load.during(restart_postgres)
    stack.wait_spool_drained()
    logged = logged_rows(stack, set(load.answered))
    during = sum(outage[0] < t < outage[1] for t in load.answered_at)
    print(f"\n{len(load.answered)} requests answered, {during} while postgres was down")

    assert load.refused == [], stack.run("ps", "-a").stdout + stack.logs("serve")[-4000:]
    assert during > 20
    assert logged == {rid: (n, n, n) for rid, n in load.answered.items()}
