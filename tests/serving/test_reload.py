"""Reload swaps versions without dropping a request; a bad artifact never replaces a good one."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from serving import artifact
from serving.app import create_app
from tests.live import live_server
from tests.serving.conftest import make_settings
from training.data import load_builtin
from training.train import fit, save


@pytest.fixture
def registry(models_dir: Path, tmp_path: Path) -> tuple[Path, str, str]:
    """A copy of the shared registry plus a second version (not current): (root, v1, v2)."""
    root = tmp_path / "models"
    shutil.copytree(models_dir, root)
    v1 = artifact.read_current(root, "breast_cancer")
    assert v1 is not None
    data = load_builtin("breast_cancer")
    v2 = save(fit(data, params={"C": 0.05}, cv_folds=0), data, root, name="breast_cancer").name
    return root, v1, v2


@pytest.fixture
def reload_client(registry: tuple[Path, str, str], tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(registry[0], tmp_path))) as client:
        yield client


def test_reload_serves_the_new_current_version(
    reload_client: TestClient, registry: tuple[Path, str, str], rows: list[list[float]]
) -> None:
    root, v1, v2 = registry
    artifact.write_current(root, "breast_cancer", v2)
    response = reload_client.post("/admin/reload")
    assert response.status_code == 200
    [result] = response.json()["models"]
    assert (result["name"], result["outcome"]) == ("breast_cancer", "reloaded")
    assert (result["version"], result["previous"], result["pinned"]) == (v2, v1, False)
    served = reload_client.post("/predict", json={"instances": [rows[0]]}).json()
    assert served["model"]["version"] == v2


def test_reload_serves_a_named_version(
    reload_client: TestClient, registry: tuple[Path, str, str]
) -> None:
    _, _, v2 = registry
    response = reload_client.post("/admin/reload", json={"version": v2})
    assert response.status_code == 200
    assert reload_client.get("/model").json()["version"] == v2


def test_reload_of_a_missing_version_is_404_and_keeps_serving(
    reload_client: TestClient, registry: tuple[Path, str, str]
) -> None:
    response = reload_client.post("/admin/reload", json={"version": "20990101-000000-000000"})
    assert response.status_code == 404
    assert reload_client.get("/model").json()["version"] == registry[1]


def test_reload_of_a_tampered_artifact_is_refused_and_keeps_serving(
    reload_client: TestClient, registry: tuple[Path, str, str], rows: list[list[float]]
) -> None:
    root, v1, v2 = registry
    model_file = root / "breast_cancer" / v2 / artifact.MODEL_FILE
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))
    response = reload_client.post("/admin/reload", json={"version": v2})
    assert response.status_code == 409
    assert "sha256 mismatch" in response.json()["detail"]
    assert str(model_file) in response.json()["detail"]
    served = reload_client.post("/predict", json={"instances": [rows[0]]})
    assert served.status_code == 200
    assert served.json()["model"]["version"] == v1
    metrics = reload_client.get("/metrics").text
    assert 'skship_model_reloads_total{model="breast_cancer",outcome="failed"} 1.0' in metrics


class _Shell:
    """Unpickling this runs a shell command that writes ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"echo pwned > {self.path}",))


def test_reload_of_a_planted_pickle_is_refused_without_running_it(
    reload_client: TestClient, registry: tuple[Path, str, str], tmp_path: Path
) -> None:
    root, v1, v2 = registry
    version = root / "breast_cancer" / v2
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Shell(marker))
    (version / "model.joblib").write_bytes(payload)
    meta_file = version / "metadata.json"
    meta = json.loads(meta_file.read_text())
    meta.update(format="joblib", files={"model.joblib": hashlib.sha256(payload).hexdigest()})
    meta_file.write_text(json.dumps(meta))

    response = reload_client.post("/admin/reload", json={"version": v2})

    assert response.status_code == 409
    assert "MODEL_ALLOW_PICKLE" in response.json()["detail"]
    assert not marker.exists(), "the planted pickle ran"
    assert reload_client.get("/model").json()["version"] == v1


def test_reload_of_another_scikit_learn_is_refused(
    reload_client: TestClient, registry: tuple[Path, str, str]
) -> None:
    root, v1, v2 = registry
    meta_file = root / "breast_cancer" / v2 / "metadata.json"
    meta_file.write_text(meta_file.read_text().replace('"scikit_learn": "', '"scikit_learn": "0.'))
    response = reload_client.post("/admin/reload", json={"version": v2})
    assert response.status_code == 409
    assert "scikit-learn" in response.json()["detail"]
    assert reload_client.get("/model").json()["version"] == v1


@pytest.mark.slow
def test_reload_under_load_drops_no_request(
    registry: tuple[Path, str, str], tmp_path: Path, rows: list[list[float]]
) -> None:
    root, v1, v2 = registry
    versions: Counter[str] = Counter()
    failures: list[str] = []
    stop = threading.Event()

    with live_server(root, tmp_path) as server:

        def hammer() -> None:
            with httpx.Client(base_url=server.base_url, timeout=10) as client:
                while not stop.is_set():
                    response = client.post("/predict", json={"instances": rows[:3]})
                    if response.status_code != 200:
                        failures.append(f"{response.status_code} {response.text[:200]}")
                        continue
                    versions[response.json()["model"]["version"]] += 1

        threads = [threading.Thread(target=hammer) for _ in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        artifact.write_current(root, "breast_cancer", v2)
        reloaded = httpx.post(server.base_url + "/admin/reload", timeout=30)
        time.sleep(1.0)
        artifact.write_current(root, "breast_cancer", v1)
        server.signal(signal.SIGHUP)
        server.wait(lambda r: r.json()["version"] == v1, "/model", 30)
        time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join()

    assert reloaded.status_code == 200
    assert failures == []
    assert set(versions) == {v1, v2}
    assert min(versions.values()) > 10
