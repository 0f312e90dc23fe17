"""POST /feedback on a real server and both stores: labels spooled before the 200, joined
with their predictions into live quality equal to scikit-learn's on the same labels."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient
from sklearn.metrics import accuracy_score, balanced_accuracy_score, log_loss

from serving.app import create_app
from serving.predlog.log import is_postgres
from tests.live import LiveServer
from tests.pgcluster import PgCluster
from tests.serving.conftest import make_settings
from tests.serving.predlog.helpers import query
from training.data import load_builtin


def _labels(url: str) -> dict[tuple[str, int], Any]:
    label = "label::text" if is_postgres(url) else "label"
    rows = query(url, f"SELECT request_id, row_index, {label} FROM feedback")
    return {(str(rid), int(row)): json.loads(text) for rid, row, text in rows}


def _wait(predicate: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "not written in time"
        time.sleep(0.1)


@pytest.fixture
def live(models_dir: Path, tmp_path: Path, store_url: str) -> Iterator[LiveServer]:
    server = LiveServer(
        models_dir, tmp_path, database_url=store_url, env={"LOG_LEVEL": "warning"}
    ).start()
    try:
        yield server
    finally:
        server.stop()


def _predict(client: httpx.Client, X: np.ndarray) -> list[dict[str, Any]]:
    answers = []
    for start in range(0, len(X), 100):
        response = client.post("/predict", json={"instances": X[start : start + 100].tolist()})
        assert response.status_code == 200, response.text
        answers.append(response.json())
    return answers


def test_live_quality_equals_scikit_learn_on_the_same_labels(
    live: LiveServer, store_url: str
) -> None:
    data = load_builtin("breast_cancer")
    rng = np.random.default_rng(3)
    rows = rng.choice(len(data.X), size=300, replace=False)
    with httpx.Client(base_url=live.base_url, timeout=30) as client:
        answers = _predict(client, data.X[rows])
        items = [
            {"request_id": answer["request_id"], "row_index": i, "label": str(data.y[rows[k]])}
            for k, (answer, i) in enumerate(
                (a, i) for a in answers for i in range(len(a["predictions"]))
            )
        ]
        for start in range(0, len(items), 120):
            body = {"model": "breast_cancer", "feedback": items[start : start + 120]}
            response = client.post("/feedback", json=body)
            assert response.status_code == 200, response.text
            assert response.json() == {"accepted": len(body["feedback"])}

        def labelled() -> bool:
            report = client.get("/monitoring/quality").json()
            return bool(sum(v["labelled"] for v in report["versions"]) == 300)

        _wait(labelled)
        [version] = client.get("/monitoring/quality").json()["versions"]
    predicted = [p for a in answers for p in a["predictions"]]
    probabilities = [p for a in answers for p in a["probabilities"]]
    classes = sorted(probabilities[0])
    truth = [str(data.y[r]) for r in rows]
    live_metrics = version["live"]
    assert live_metrics["accuracy"] == pytest.approx(accuracy_score(truth, predicted), abs=1e-12)
    assert live_metrics["balanced_accuracy"] == pytest.approx(
        balanced_accuracy_score(truth, predicted), abs=1e-12
    )
    proba = np.array([[p[c] for c in classes] for p in probabilities])
    assert live_metrics["log_loss"] == pytest.approx(
        log_loss(truth, proba, labels=classes), rel=1e-9
    )
    assert len(_labels(store_url)) == 300


def test_a_later_label_replaces_the_earlier(live: LiveServer, store_url: str) -> None:
    X = load_builtin("breast_cancer").X[:2]
    with httpx.Client(base_url=live.base_url, timeout=30) as client:
        [answer] = _predict(client, X)
        rid = answer["request_id"]
        for label in ("malignant", "benign"):
            response = client.post(
                "/feedback",
                json={"feedback": [{"request_id": rid, "row_index": 1, "label": label}]},
            )
            assert response.status_code == 200
    _wait(lambda: _labels(store_url).get((rid, 1)) == "benign")
    time.sleep(1)  # the earlier label, had it been written later, would show by now
    assert _labels(store_url) == {(rid, 1): "benign"}
    shown = _log_feedback(store_url, "--model", "breast_cancer")
    [line] = [line for line in shown.splitlines() if rid in line]
    assert line.split()[3:7] == ["1", "benign", answer["predictions"][1], "breast_cancer"]


def _log_feedback(url: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "serving", "log", "feedback", "--database-url", url, *args],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout


def test_a_label_for_an_unknown_request_is_kept_until_its_prediction_comes(
    live: LiveServer, store_url: str
) -> None:
    rid = str(uuid.uuid4())
    item = {"request_id": rid, "row_index": 0, "label": "benign"}
    response = httpx.post(f"{live.base_url}/feedback", json={"feedback": [item]})
    assert response.status_code == 200
    _wait(lambda: (rid, 0) in _labels(store_url))
    [line] = [line for line in _log_feedback(store_url).splitlines() if rid in line]
    assert line.split()[3:8] == ["0", "benign", "-", "-", "-"]  # no prediction (yet)


@pytest.fixture
def client(models_dir: Path, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(models_dir, tmp_path))) as test_client:
        yield test_client


RID = "0193a9e2-5b1c-7d4e-8f00-3c2b1a0f9e8d"


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"model": "breast_cancer", "feedback": [{"request_id": RID, "row_index": 0,
          "label": 1.5}]}, 422, "breast_cancer is a classifier"),
        ({"model": "nope", "feedback": [{"request_id": RID, "row_index": 0, "label": "a"}]},
         404, "no model 'nope'"),
        ({"feedback": [{"request_id": "42", "row_index": 0, "label": "a"}]}, 422, "UUID"),
        ({"feedback": [{"request_id": RID, "row_index": -1, "label": "a"}]}, 422, "row_index"),
        ({"feedback": [{"request_id": RID, "row_index": 0, "label": [1]}]}, 422, "label"),
        ({"feedback": [{"request_id": RID, "row_index": 0}]}, 422, "label"),
        ({"feedback": []}, 422, "feedback"),
        ({"feedback": [{"request_id": RID, "row_index": 0, "label": "a", "x": 1}]}, 422, "x"),
        ({"model": "breast_cancer", "feedback": [{"request_id": RID, "row_index": 0,
          "label": True}]}, 422, "a label is a class name"),
    ],
)  # fmt: skip
def test_bad_feedback_is_a_4xx_naming_the_problem(
    client: TestClient, body: dict[str, Any], status: int, says: str
) -> None:
    response = client.post("/feedback", json=body)
    assert response.status_code == status, response.text
    assert says in response.text


def test_a_body_that_is_not_json_is_400_and_a_wrong_type_415(client: TestClient) -> None:
    headers = {"content-type": "application/json"}
    assert client.post("/feedback", content=b"{", headers=headers).status_code == 400
    assert (
        client.post("/feedback", content=b"{}", headers={"content-type": "text/plain"}).status_code
        == 415
    )


def test_more_labels_than_a_batch_is_422(client: TestClient) -> None:
    items = [{"request_id": RID, "row_index": i, "label": "a"} for i in range(1001)]
    response = client.post("/feedback", json={"feedback": items})
    assert response.status_code == 422
    assert "At most" in response.text


def test_labels_with_logging_off_are_refused_saying_why(models_dir: Path, tmp_path: Path) -> None:
    settings = make_settings(models_dir, tmp_path, log_predictions=False)
    with TestClient(create_app(settings)) as off:
        item = {"request_id": RID, "row_index": 0, "label": "a"}
        response = off.post("/feedback", json={"feedback": [item]})
    assert response.status_code == 503
    assert "LOG_PREDICTIONS=false" in response.text


# -- the log's guarantees, for labels -----------------------------------------------------


@pytest.fixture
def cluster_url(cluster: PgCluster) -> str:
    dbname = f"feedback_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    return cluster.url_for(dbname)


class LabelLoad:
    """Clients labelling row 0 of fresh request ids as fast as the server answers."""

    def __init__(self, base_url: str, clients: int = 4) -> None:
        self.base_url = base_url
        self.accepted: list[tuple[str, str]] = []
        self.failed: list[int | None] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client) for _ in range(clients)]

    def __enter__(self) -> LabelLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _client(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=30) as client:
            while not self._stop.is_set():
                rid, label = str(uuid.uuid4()), ("benign", "malignant")[len(self.accepted) % 2]
                item = {"request_id": rid, "row_index": 0, "label": label}
                try:
                    response = client.post("/feedback", json={"feedback": [item]})
                except httpx.HTTPError:
                    self.failed.append(None)
                    time.sleep(0.05)
                    continue
                if response.status_code == 200:
                    self.accepted.append((rid, label))
                else:
                    self.failed.append(response.status_code)

    def wait_for(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.accepted) < count:
            assert time.monotonic() < deadline, "the load made no progress"
            time.sleep(0.05)


@pytest.mark.postgres
@pytest.mark.slow
def test_labels_survive_the_database_stopped_mid_load(
    cluster: PgCluster, cluster_url: str, models_dir: Path, tmp_path: Path
) -> None:
    env = {"LOG_RETRY_MAX_SECONDS": "1", "LOG_LEVEL": "warning"}
    live = LiveServer(models_dir, tmp_path, database_url=cluster_url, env=env).start()
    try:
        with LabelLoad(live.base_url) as load:
            load.wait_for(100)
            cluster.stop()
            try:
                at_stop = len(load.accepted)
                time.sleep(8)
                assert len(load.accepted) > at_stop + 100  # answered while the database is down
            finally:
                cluster.start()
            load.wait_for(len(load.accepted) + 100)
        wanted = {(rid, 0): label for rid, label in load.accepted}
        _wait(lambda: _labels(cluster_url) == wanted, timeout=60)
    finally:
        live.stop()
    assert load.failed == []
    assert _labels(cluster_url) == wanted


@pytest.mark.slow
def test_labels_answered_before_a_sigkill_are_written_after_the_restart(
    models_dir: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    live = LiveServer(models_dir, tmp_path, database_url=url, env={"LOG_LEVEL": "warning"})
    live.start()
    try:
        with LabelLoad(live.base_url) as load:
            load.wait_for(200)
            live.signal(signal.SIGKILL)
            live.wait_exit()
        live.start()
        wanted = {(rid, 0): label for rid, label in load.accepted}
        _wait(lambda: wanted.items() <= _labels(url).items(), timeout=60)
    finally:
        live.stop()
    assert wanted.items() <= _labels(url).items()
