"""The compose stack end to end: postgres -> migrate, train -> serve, as the README runs it."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.compose.stack import ComposeError, ComposeStack, instances

pytestmark = pytest.mark.compose

OWNER_PASSWORD = "skship-owner-dev"  # docker-compose.yml's default for POSTGRES_PASSWORD


def predict(stack: ComposeStack, count: int, request_id: str | None = None) -> httpx.Response:
    headers = {"X-Request-ID": request_id} if request_id else {}
    return httpx.post(
        f"{stack.base_url}/predict",
        json={"instances": instances(count)},
        headers=headers,
        timeout=10,
    )


def model_versions(stack: ComposeStack) -> set[str]:
    listing = stack.one_shot("train", "ls", "/models/breast_cancer").stdout
    return {name for name in listing.split() if name[:1].isdigit()}


def served_version(stack: ComposeStack) -> str:
    return str(stack.get("/model").json()["version"])


def wait_for_version(stack: ComposeStack, version: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and served_version(stack) != version:
        time.sleep(0.5)
    return served_version(stack)


def test_serve_answers_with_the_model_the_train_service_trained(stack: ComposeStack) -> None:
    assert served_version(stack) in model_versions(stack)


def test_serve_healthcheck_reports_healthy(stack: ComposeStack) -> None:
    stack.wait_healthy("serve")

    assert stack.containers()["serve"]["Health"] == "healthy"


def test_serve_predicts_through_the_published_port(stack: ComposeStack) -> None:
    answer = predict(stack, 3)

    assert answer.status_code == 200
    assert len(answer.json()["predictions"]) == 3


def test_readiness_reports_the_postgres_log(stack: ComposeStack) -> None:
    log = stack.get("/ready").json()["log"]

    assert (log["store"], log["store_reachable"]) == ("postgresql", True)


def test_predictions_are_readable_through_the_reader_role(stack: ComposeStack) -> None:
    correlation = str(uuid.uuid4())

    answer = predict(stack, 3, correlation)
    assert answer.status_code == 200
    stack.wait_spool_drained()
    rows = stack.psql(
        f"SELECT row_index, model_version, request_id FROM predictions "  # a uuid4 of ours
        f"WHERE client_request_id = '{correlation}' ORDER BY row_index"
    )

    served = answer.json()["request_id"]
    assert rows == [[str(i), served_version(stack), served] for i in range(3)]


def test_reader_role_cannot_write_the_log(stack: ComposeStack) -> None:
    # predictions is a view over these tables (migration 0004).
    for table in ("prediction_requests", "prediction_models"):
        with pytest.raises(ComposeError, match="permission denied"):
            stack.psql(f"DELETE FROM {table}")


def test_serve_holds_only_the_writer_credentials(stack: ComposeStack) -> None:
    environment = stack.run("exec", "-T", "serve", "env").stdout

    assert "DATABASE_URL=postgresql://skship_writer:" in environment
    assert OWNER_PASSWORD not in environment


def test_serve_root_filesystem_is_read_only(stack: ComposeStack) -> None:
    done = stack.run("exec", "-T", "serve", "touch", "/app/written", check=False)

    assert done.returncode != 0
    assert "Read-only file system" in done.stderr


def test_serve_runs_as_the_unprivileged_user(stack: ComposeStack) -> None:
    assert stack.run("exec", "-T", "serve", "id", "-u").stdout.strip() == "10001"


def test_serve_image_holds_no_training_code(stack: ComposeStack) -> None:
    done = stack.one_shot("serve", "python", "-c", "import training", check=False)

    assert done.returncode == 1
    assert "No module named 'training'" in done.stderr


def test_models_volume_first_mounted_by_serve_is_writable_by_train(stack: ComposeStack) -> None:
    other = ComposeStack()  # a project of its own, whose models volume serve creates
    try:
        owner = other.one_shot("serve", "stat", "-c", "%u", "/models").stdout.strip()
    finally:
        other.run("down", "-v", "--remove-orphans", check=False)

    assert owner == "10001"


def test_train_does_nothing_when_a_current_model_exists(stack: ComposeStack) -> None:
    before = model_versions(stack)

    stack.one_shot("train")

    assert model_versions(stack) == before


def test_forced_retrain_is_served_after_sighup(stack: ComposeStack) -> None:
    before = model_versions(stack)

    stack.one_shot("train", env=["TRAIN_FORCE=1"])
    (new,) = model_versions(stack) - before
    stack.run("kill", "-s", "HUP", "serve")

    assert wait_for_version(stack, new) == new


def test_forced_retrain_is_served_after_admin_reload(stack: ComposeStack) -> None:
    before = model_versions(stack)

    stack.one_shot("train", env=["TRAIN_FORCE=1"])
    (new,) = model_versions(stack) - before
    reloaded = httpx.post(f"{stack.base_url}/admin/reload", timeout=30)

    assert reloaded.status_code == 200
    assert served_version(stack) == new


def test_serve_drains_and_exits_zero_on_stop(stack: ComposeStack) -> None:
    try:
        stack.run("stop", "serve")
        serve = stack.containers()["serve"]
        logs = stack.logs("serve")
    finally:
        stack.run("start", "serve")
        stack.wait_ready()

    assert serve["ExitCode"] == 0
    assert "draining" in logs
