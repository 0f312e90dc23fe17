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


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/model"),
        ("GET", "/models"),
        ("GET", "/models/breast_cancer"),
        ("GET", "/metrics"),
        ("GET", "/docs"),
        ("GET", "/redoc"),
        ("GET", "/openapi.json"),
        ("GET", "/predictions"),
        ("GET", "/v2"),
        ("GET", "/v2/models/breast_cancer"),
        ("GET", "/v2/models/breast_cancer/ready"),
        ("POST", "/v2/models/breast_cancer/infer"),
        ("POST", "/models/breast_cancer/predict"),
        ("GET", "/no-such-route"),
    ],
)
def test_everything_but_the_probes_needs_a_key(keyed: TestClient, method: str, path: str) -> None:
    response = keyed.request(method, path)
    assert response.status_code == 401, response.text
    assert "x-request-id" in response.headers
    assert keyed.request(method, path, headers={"X-API-Key": "k-alice"}).status_code != 401


@pytest.mark.parametrize("path", ["/health", "/ready", "/v2/health/live", "/v2/health/ready"])
def test_probes_need_no_key(keyed: TestClient, path: str) -> None:
    assert keyed.get(path).status_code == 200


def test_metrics_can_be_opened_to_scrapers(models_dir: Path, tmp_path: Path) -> None:
    settings = make_settings(models_dir, tmp_path, api_keys="alice=k", metrics_public=True)
    with TestClient(create_app(settings)) as client:
        assert client.get("/metrics").status_code == 200
        assert client.get("/model").status_code == 401


def test_openapi_declares_the_key_schemes_and_open_probes(keyed: TestClient) -> None:
    schema = keyed.get("/openapi.json", headers={"X-API-Key": "k-bob"}).json()
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert schema["security"] == [{"bearer": []}, {"apiKey": []}]
    assert schema["paths"]["/health"]["get"]["security"] == []


def test_with_keys_and_no_admin_token_admin_needs_a_key(models_dir: Path, tmp_path: Path) -> None:
    settings = make_settings(models_dir, tmp_path, api_keys="alice=k")
    with TestClient(create_app(settings)) as client:
        assert client.post("/admin/reload").status_code == 401
        assert client.post("/admin/reload", headers={"X-API-Key": "k"}).status_code == 200


def test_with_keys_ready_withholds_why_a_model_failed(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "empty", tmp_path, api_keys="alice=k")
    with TestClient(create_app(settings)) as client:
        ready = client.get("/ready")
        models = client.get("/models", headers={"X-API-Key": "k"}).json()["models"]
    assert ready.status_code == 503
    assert str(tmp_path) not in ready.text
    assert "see GET /models" in ready.text
    assert str(tmp_path) in models[0]["error"]
