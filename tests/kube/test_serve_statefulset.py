"""The StatefulSet's promise, played by podman: a pod deleted while PostgreSQL is down leaves
its answered predictions on its spool volume, and the next pod with that ordinal (mounting
the same claim) writes them, each once.

podman plays no StatefulSets, so this plays the pod the StatefulSet controller would make for
ordinal 0 (``statefulset_as_pod``: pod ``skship-serve-0``, claim ``spool-skship-serve-0``),
deletes it and plays it again; the controller's own part (recreating it, keeping the claim)
is Kubernetes's and is not tested here.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.compose.stack import instances
from tests.kube.kubeplay import KubePlay
from tests.pgcluster import free_port

pytestmark = pytest.mark.kube

# Shorter than the manifest's 15 s, to keep the test short: with PostgreSQL down the drain
# waits out its whole deadline (tests/deploy checks the manifest's shutdown arithmetic).
DRAIN_SECONDS = 4


def test_pod_deleted_while_postgres_is_down_leaves_its_records_to_its_successor(
    kube: KubePlay,
) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    pod, claim = kube.serve_statefulset_pod(port, DRAIN_SECONDS)
    name = pod["metadata"]["name"]
    container = kube.container(name, "serve")
    postgres = kube.postgres
    kube.play("statefulset-0", [kube.config, claim, pod])
    kube.wait_ready(base_url, container)

    kube.podman("pod", "stop", "--time", "10", postgres, timeout=60)
    answers = [
        httpx.post(f"{base_url}/predict", json={"instances": instances(3)}, timeout=10)
        for _ in range(10)
    ]
    assert {a.status_code for a in answers} == {200}
    assert kube.get("/ready", base_url).json()["log"]["spooled_bytes"] > 0
    # The pod is deleted: SIGTERM, a drain that cannot reach the database, exit 0.
    kube.podman("pod", "stop", "--time", "30", name, timeout=60)
    stopped = kube.state(container)
    kube.podman("pod", "rm", name)
    kube.podman("pod", "start", postgres)
    kube.wait_postgres()
    # Its successor: the same pod, the same claim (which outlived the pod).
    kube.play("statefulset-0-again", [kube.config, pod])
    kube.wait_ready(base_url, container)
    kube.wait_spool_drained(base_url)
    ids = ", ".join(f"'{uuid.UUID(a.json()['request_id'])}'" for a in answers)
    rows = kube.psql(
        f"SELECT count(*), count(DISTINCT (request_id, row_index)) FROM predictions "
        f"WHERE request_id IN ({ids})"
    )

    assert stopped["ExitCode"] == 0
    assert "replaying" in kube.logs(container)
    assert rows == [["30", "30"]]
