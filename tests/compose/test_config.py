"""docker-compose.yml as Compose resolves it (`docker compose config`, no engine needed).

These run in the default suite: they check the contract of docs/operations.md (Docker) and of
the issue statically, in a second, where the compose tests need a built stack.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.compose.stack import ROOT, compose_binary


def resolved(tmp_path: Path, env_file: Path | None = None) -> dict[str, Any]:
    """The resolved model, from a clean environment so a user's shell or .env cannot leak in."""
    if env_file is None:
        env_file = tmp_path / "empty.env"
        env_file.write_text("")
    done = subprocess.run(
        [compose_binary(), "--project-directory", str(ROOT), "--env-file", str(env_file),
         "config", "--format", "json"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )  # fmt: skip
    return dict(json.loads(done.stdout))


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return dict(resolved(tmp_path_factory.mktemp("compose"))["services"])


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", duration)
    assert match is not None, duration
    return int(match[1] or 0) * 60 + float(match[2] or 0)


def test_env_example_holds_the_compose_defaults(tmp_path: Path) -> None:
    assert resolved(tmp_path, ROOT / ".env.example") == resolved(tmp_path)


def test_env_example_lists_every_compose_variable() -> None:
    lines = (ROOT / "docker-compose.yml").read_text().splitlines()
    used = {
        v
        for line in lines
        if not line.lstrip().startswith("#")
        for v in re.findall(r"\$\{(\w+)", line)
    }
    passed_through = {"ADMIN_TOKEN", "API_KEYS"}
    listed = set(re.findall(r"^#? ?(\w+)=", (ROOT / ".env.example").read_text(), re.M))

    assert used | passed_through <= listed


def test_postgres_is_not_published_to_the_host(services: dict[str, Any]) -> None:
    assert "ports" not in services["postgres"]


def test_serve_waits_for_healthy_postgres_and_completed_one_shots(
    services: dict[str, Any],
) -> None:
    conditions = {name: dep["condition"] for name, dep in services["serve"]["depends_on"].items()}

    assert conditions == {
        "postgres": "service_healthy",
        "migrate": "service_completed_successfully",
        "train": "service_completed_successfully",
    }


def test_serve_mounts_models_read_only(services: dict[str, Any]) -> None:
    mounts = {m["target"]: m for m in services["serve"]["volumes"]}

    assert mounts["/models"]["read_only"] is True


def test_serve_spool_is_a_volume_on_a_read_only_root(services: dict[str, Any]) -> None:
    serve = services["serve"]
    mounts = {m["target"]: m["type"] for m in serve["volumes"]}

    assert serve["read_only"] is True
    assert mounts[serve["environment"]["SPOOL_DIR"]] == "volume"


def test_long_running_and_one_shot_services_drop_privileges(services: dict[str, Any]) -> None:
    for name in ("serve", "train", "migrate"):
        assert services[name]["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in services[name]["security_opt"], name


def test_serve_grace_period_outlasts_the_drain(services: dict[str, Any]) -> None:
    serve = services["serve"]

    assert seconds(serve["stop_grace_period"]) >= float(serve["environment"]["DRAIN_SECONDS"]) + 5


def test_serve_logs_as_the_writer_and_queries_as_the_reader(services: dict[str, Any]) -> None:
    environment = services["serve"]["environment"]

    assert environment["DATABASE_URL"].startswith("postgresql://skship_writer:")
    assert environment["DATABASE_READ_URL"].startswith("postgresql://skship_reader:")
