"""No client input can keep an answered prediction out of the log (issue 10, attack 2):
100 concurrent requests sharing one X-Request-ID are 100 answers and 100 logged rows."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.live import live_server
from tests.serving.predlog.helpers import query

SHARED = "same-id-for-everyone"


async def _flood(base_url: str, rows: list[list[float]], count: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        return await asyncio.gather(
            *(
                client.post(
                    "/predict",
                    json={"instances": [rows[i % len(rows)]]},
                    headers={"X-Request-ID": SHARED},
                )
                for i in range(count)
            )
        )


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_a_shared_client_request_id_never_hides_an_answer(
    store: str,
    models_dir: Path,
    tmp_path: Path,
    rows: list[list[float]],
    request: pytest.FixtureRequest,
) -> None:
    url = request.getfixturevalue("pg_url") if store == "postgresql" else None
    with live_server(models_dir, tmp_path, database_url=url) as server:
        concurrent = asyncio.run(_flood(server.base_url, rows, 100))
        sequential = [
            httpx.post(
                f"{server.base_url}/predict",
                json={"instances": [rows[i]]},
                headers={"X-Request-ID": SHARED},
            )
            for i in range(2)
        ]
        answers = [*concurrent, *sequential]
        assert all(r.status_code == 200 for r in answers)
        assert all(r.headers["x-request-id"] == SHARED for r in answers)
        ids = {r.json()["request_id"] for r in answers}
        assert len(ids) == 102
        store_url = url or f"sqlite:///{tmp_path / 'predictions.db'}"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and _count(store_url) < 102:
            time.sleep(0.1)
    logged = query(store_url, "SELECT request_id, client_request_id FROM predictions")
    assert sorted(str(rid) for rid, _ in logged) == sorted(ids)
    assert {cid for _, cid in logged} == {SHARED}


def _count(url: str) -> int:
    return int(query(url, "SELECT count(*) FROM predictions")[0][0])
