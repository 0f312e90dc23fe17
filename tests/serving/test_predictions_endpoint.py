"""GET /predictions pages through the log on both stores, with filters and API keys."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.schemas import PredictionsPage
from tests.serving.conftest import make_settings
from tests.serving.predlog.helpers import PENGUIN, insert_rows, row


@pytest.fixture(params=["sqlite", "postgresql"])
def logged(
    request: pytest.FixtureRequest, models_dir: Path, tmp_path: Path
) -> Iterator[TestClient]:
    """A client whose log holds 3 requests of 2, 1 and 3 rows."""
    url = (
        f"sqlite:///{tmp_path / 'p.db'}"
        if request.param == "sqlite"
        else str(request.getfixturevalue("pg_url"))
    )
    settings = make_settings(models_dir, tmp_path, database_url=url, api_keys="ann=k1")
    with TestClient(create_app(settings), headers={"Authorization": "Bearer k1"}) as client:
        rows = client.get("/model").json()["features"]
        means = [f["mean"] for f in rows]
        for size in (2, 1, 3):
            response = client.post("/predict", json={"instances": [means] * size})
            assert response.status_code == 200
        _wait_for_rows(client, 6)
        yield client


def _wait_for_rows(client: TestClient, expected: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if len(client.get("/predictions", params={"limit": 1000}).json()["items"]) >= expected:
            return
        time.sleep(0.05)
    raise AssertionError(f"log did not reach {expected} rows")


def _all_pages(client: TestClient, **params: Any) -> list[list[dict[str, Any]]]:
    pages, cursor = [], None
    while True:
        body = client.get("/predictions", params={**params, "cursor": cursor} if cursor else params)
        assert body.status_code == 200, body.text
        pages.append(body.json()["items"])
        cursor = body.json()["next_cursor"]
        if cursor is None:
            return pages


def test_predictions_returns_every_row_newest_first(logged: TestClient) -> None:
    items = logged.get("/predictions").json()["items"]
    assert len(items) == 6
    assert [i["created_at"] for i in items] == sorted(
        (i["created_at"] for i in items), reverse=True
    )
    first = items[0]
    assert uuid.UUID(first["request_id"])
    assert set(first["probabilities"]) == {"benign", "malignant"}
    assert "mean radius" in first["features"]
    assert first["client_id"] == "ann"


def test_predictions_pages_cover_every_row_once(logged: TestClient) -> None:
    pages = _all_pages(logged, limit=4)
    assert [len(p) for p in pages] == [4, 2]
    keys = [(i["request_id"], i["row_index"]) for p in pages for i in p]
    assert len(set(keys)) == 6


def test_predictions_filters_by_model_version_and_time(logged: TestClient) -> None:
    version = logged.get("/model").json()["version"]
    assert len(logged.get("/predictions", params={"model_version": version}).json()["items"]) == 6
    assert logged.get("/predictions", params={"model_version": "nope"}).json()["items"] == []
    future = "2999-01-01T00:00:00Z"
    assert logged.get("/predictions", params={"since": future}).json()["items"] == []
    assert len(logged.get("/predictions", params={"until": future}).json()["items"]) == 6


def test_predictions_treats_injection_shaped_filters_as_data(logged: TestClient) -> None:
    hostile = "x'; DROP TABLE predictions; --"
    assert logged.get("/predictions", params={"model_version": hostile}).json()["items"] == []
    assert len(logged.get("/predictions").json()["items"]) == 6


def test_predictions_rejects_a_forged_cursor(logged: TestClient) -> None:
    response = logged.get("/predictions", params={"cursor": "bm90LWEtY3Vyc29y"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "cursor"]


def test_predictions_needs_the_api_key(logged: TestClient) -> None:
    response = logged.get("/predictions", headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401


def test_predictions_rejects_a_bad_limit(logged: TestClient) -> None:
    assert logged.get("/predictions", params={"limit": 0}).status_code == 422
    assert logged.get("/predictions", params={"limit": 5000}).status_code == 422


def test_predictions_is_503_when_logging_is_disabled(models_dir: Path, tmp_path: Path) -> None:
    settings = make_settings(models_dir, tmp_path, log_predictions=False)
    with TestClient(create_app(settings)) as client:
        response = client.get("/predictions")
    assert response.status_code == 503
    assert "LOG_PREDICTIONS" in response.json()["detail"]


def _cursor(position: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def _a_real_cursor(client: TestClient) -> list[Any]:
    cursor = client.get("/predictions", params={"limit": 1}).json()["next_cursor"]
    decoded: list[Any] = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    return decoded


@pytest.mark.parametrize(
    "position",
    [
        [1, 2, 3],
        ["2026-01-01T00:00:00+00:00", 5, 0],
        ["2026-01-01T00:00:00+00:00", None, 0],
        ["2026-01-01T00:00:00+00:00", ["x"], 0],
        ["2026-01-01T00:00:00+00:00", {"a": 1}, 0],
        ["2026-01-01T00:00:00+00:00", "0190a6f0-0000-7000-8000-000000000000", "0"],
        ["2026-01-01T00:00:00+00:00", "0190a6f0-0000-7000-8000-000000000000", True],
        ["2026-01-01T00:00:00+00:00", "0190a6f0-0000-7000-8000-000000000000", 1.5],
        [True, "0190a6f0-0000-7000-8000-000000000000", 0],
        {"created_at": 1},
        "a string",
        12,
        None,
    ],
)
def test_predictions_rejects_a_cursor_of_the_wrong_json_types(
    logged: TestClient, position: object
) -> None:
    response = logged.get("/predictions", params={"cursor": _cursor(position)})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", "cursor"]


@pytest.mark.parametrize("row_index", [2**31, 2**63 - 1, 2**64 - 1, 2**100, -1, -(2**63)])
def test_predictions_rejects_a_cursor_row_index_out_of_range(
    logged: TestClient, row_index: int
) -> None:
    created_at, request_id, _ = _a_real_cursor(logged)
    response = logged.get(
        "/predictions", params={"cursor": _cursor([created_at, request_id, row_index])}
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", "cursor"]


@pytest.mark.parametrize(
    "created_at", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-01-01T00:00:00"]
)
def test_predictions_rejects_a_cursor_time_outside_utc_or_without_zone(
    logged: TestClient, created_at: str
) -> None:
    _, request_id, row_index = _a_real_cursor(logged)
    response = logged.get(
        "/predictions", params={"cursor": _cursor([created_at, request_id, row_index])}
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", "cursor"]


@pytest.mark.parametrize(
    ("name", "value"),
    [("since", "0001-01-01T00:00:00+14:00"), ("until", "9999-12-31T23:59:59-14:00")],
)
def test_predictions_rejects_times_not_representable_in_utc(
    logged: TestClient, name: str, value: str
) -> None:
    response = logged.get("/predictions", params={name: value})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", name]


def test_predictions_accepts_the_extreme_times_that_are_representable(logged: TestClient) -> None:
    params = {"since": "0001-01-01T00:00:00Z", "until": "9999-12-31T23:59:59.999999Z"}
    assert len(logged.get("/predictions", params=params).json()["items"]) == 6


@pytest.mark.parametrize("parameter", ["model_version", "model"])
@pytest.mark.parametrize("value", ["a\x00b", "a\x1bb", "\x7f", "a\u0085b", "line\nbreak"])
def test_predictions_rejects_control_characters_in_text_filters(
    logged: TestClient, parameter: str, value: str
) -> None:
    response = logged.get("/predictions", params={parameter: value})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", parameter]


def test_predictions_filters_by_model(logged: TestClient) -> None:
    name = logged.get("/model").json()["name"]
    assert len(logged.get("/predictions", params={"model": name}).json()["items"]) == 6
    assert logged.get("/predictions", params={"model": "penguins"}).json()["items"] == []


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_predictions_returns_typed_features_as_logged(
    request: pytest.FixtureRequest, store: str, models_dir: Path, tmp_path: Path
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'p.db'}"
        if store == "sqlite"
        else str(request.getfixturevalue("pg_url"))
    )
    with TestClient(create_app(make_settings(models_dir, tmp_path, database_url=url))) as client:
        insert_rows(url, [row(client_request_id="order-1")])
        body = client.get("/predictions", params={"model": "penguins"}).json()
    [item] = body["items"]
    assert item["features"] == PENGUIN
    assert item["client_request_id"] == "order-1"
    assert PredictionsPage.model_validate(body).items[0].features == PENGUIN
