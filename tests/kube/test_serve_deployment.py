"""deploy/kubernetes played by podman: the train and migrate Jobs' pods, then serve, logging.

What this proves and what it does not: docs/kubernetes.md, "What the checks prove".
The last test stops the serve pod; keep it last.
"""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.compose.stack import instances
from tests.kube.kubeplay import KubePlay

pytestmark = pytest.mark.kube


def predict(kube: KubePlay, count: int, client_id: str) -> httpx.Response:
    return httpx.post(
        f"{kube.base_url}/predict",
        json={"instances": instances(count)},
        headers={"X-Request-ID": client_id},
        timeout=10,
    )


def trained_versions(kube: KubePlay) -> set[str]:
    listing = kube.exec(kube.serve_container, "ls", "/models/breast_cancer").stdout
    return {name for name in listing.split() if name[:1].isdigit()}


def test_serve_is_ready_with_the_model_the_train_pod_trained(kube: KubePlay) -> None:
    ready = kube.get("/ready").json()

    assert ready["status"] == "ready"
    assert ready["model"]["name"] == "breast_cancer"
    assert ready["model"]["version"] in trained_versions(kube)


def test_serve_logs_to_the_postgres_pod(kube: KubePlay) -> None:
    log = kube.get("/ready").json()["log"]

    assert (log["store"], log["store_reachable"]) == ("postgresql", True)


def test_predictions_over_http_are_in_the_log(kube: KubePlay) -> None:
    client_id = str(uuid.uuid4())

    answer = predict(kube, 5, client_id)
    assert answer.status_code == 200
    body = answer.json()
    kube.wait_spool_drained()
    rows = kube.psql(
        "SELECT row_index, model_version, prediction FROM predictions "  # a uuid from JSON
        f"WHERE request_id = '{uuid.UUID(body['request_id'])}' ORDER BY row_index"
    )

    assert rows == [
        [str(i), body["model"]["version"], prediction]
        for i, prediction in enumerate(body["predictions"])
    ]


def test_log_command_in_the_serve_pod_reads_through_the_reader_role(kube: KubePlay) -> None:
    answer = predict(kube, 1, str(uuid.uuid4()))
    kube.wait_spool_drained()

    done = kube.exec(kube.serve_container, "python", "-m", "serving", "log", "recent")

    assert done.returncode == 0, done.stderr
    assert answer.json()["request_id"] in done.stdout


def test_serve_holds_only_the_writer_and_reader_credentials(kube: KubePlay) -> None:
    environment = kube.exec(kube.serve_container, "env").stdout

    assert f"DATABASE_URL={kube.url('skship_writer', kube.passwords['writer'])}" in environment
    assert f"DATABASE_READ_URL={kube.url('skship_reader', kube.passwords['reader'])}" in environment
    assert kube.passwords["owner"] not in environment
    assert "API_KEYS=" not in environment  # the optional Secret does not exist


def test_serve_runs_as_10001_on_a_read_only_root(kube: KubePlay) -> None:
    assert kube.exec(kube.serve_container, "id", "-u").stdout.strip() == "10001"
    root = kube.exec(kube.serve_container, "touch", "/app/written")
    assert "Read-only file system" in root.stderr
    models = kube.exec(kube.serve_container, "touch", "/models/written")
    assert "Read-only file system" in models.stderr


def test_serve_has_no_capabilities_and_no_new_privileges(kube: KubePlay) -> None:
    status = kube.exec(kube.serve_container, "cat", "/proc/1/status").stdout
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)

    assert fields["CapEff"].strip() == "0000000000000000"
    assert fields["CapBnd"].strip() == "0000000000000000"
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["Seccomp"].strip() == "2"  # a filter: the runtime's default profile


def test_the_spool_is_on_its_volume(kube: KubePlay) -> None:
    done = kube.exec(kube.serve_container, "ls", "-A", "/var/lib/skship/spool")

    assert ".lock" in done.stdout.split()


def test_wait_for_model_lets_serve_start_once_the_model_exists(kube: KubePlay) -> None:
    container = kube.play_wait_for_model("wait-present")

    assert kube.wait_exit(container, timeout=60) == 0


def test_wait_for_model_holds_serve_back_while_there_is_none(kube: KubePlay) -> None:
    container = kube.play_wait_for_model("wait-absent", model_name="not_trained_yet")
    deadline = time.monotonic() + 30
    while "waiting for" not in kube.logs(container) and time.monotonic() < deadline:
        time.sleep(0.5)

    assert kube.state(container)["Status"] == "running"
    assert "waiting for /models/not_trained_yet/current" in kube.logs(container)


def test_sigterm_drains_the_log_and_exits_0(kube: KubePlay) -> None:
    answers = [predict(kube, 3, str(uuid.uuid4())) for _ in range(5)]
    assert {a.status_code for a in answers} == {200}

    # Kubernetes would wait terminationGracePeriodSeconds (30 s); podman 4.3 ignores it.
    kube.podman("pod", "stop", "--time", "30", kube.serve_pod, timeout=60)
    state = kube.state(kube.serve_container)
    ids = ", ".join(f"'{uuid.UUID(a.json()['request_id'])}'" for a in answers)
    (count,) = kube.psql(f"SELECT count(*) FROM predictions WHERE request_id IN ({ids})")

    assert state["ExitCode"] == 0, kube.logs(kube.serve_container)
    assert "prediction log closed" in kube.logs(kube.serve_container)
    assert count == ["15"]
