"""API keys guard /predict when configured; the admin token guards /admin/*."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from tests.serving.conftest import make_settings


@pytest.fixture
def keyed(models_dir: Path, tmp_path: Path) -> Iterator[TestClient]:
    settings = make_settings(
        models_dir, tmp_path, api_keys="alice=k-alice,bob=k-bob", admin_token="adm1n"
    )
    with TestClient(create_app(settings)) as client:
        yield client


def test_predict_without_a_key_is_401(keyed: TestClient, rows: list[list[float]]) -> None:
    response = keyed.post("/predict", json={"instances": [rows[0]]})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_predict_with_a_wrong_key_is_401(keyed: TestClient, rows: list[list[float]]) -> None:
    response = keyed.post(
        "/predict", json={"instances": [rows[0]]}, headers={"Authorization": "Bearer k-alicE"}
    )
    assert response.status_code == 401


@pytest.mark.parametrize("header", ["Authorization", "X-API-Key"])
def test_predict_with_a_valid_key_is_served(
    keyed: TestClient, rows: list[list[float]], header: str
) -> None:
    value = "Bearer k-bob" if header == "Authorization" else "k-bob"
    response = keyed.post("/predict", json={"instances": [rows[0]]}, headers={header: value})
    assert response.status_code == 200


def test_open_routes_need_no_key(keyed: TestClient) -> None:
    assert keyed.get("/health").status_code == 200
    assert keyed.get("/ready").status_code == 200


def test_admin_reload_needs_the_admin_token(keyed: TestClient) -> None:
    assert keyed.post("/admin/reload").status_code == 401
    assert (
        keyed.post("/admin/reload", headers={"Authorization": "Bearer k-alice"}).status_code == 401
    )
    assert keyed.post("/admin/reload", headers={"Authorization": "Bearer adm1n"}).status_code == 200


def test_malformed_api_keys_setting_fails_fast(models_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="API_KEYS"):
        make_settings(models_dir, tmp_path, api_keys="just-a-key")
