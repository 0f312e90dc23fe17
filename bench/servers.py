"""The apps under test and how each is started: a uvicorn subprocess pinned to one CPU.

Every app gets the same uvicorn: one worker, loop and HTTP parser ``auto`` (uvloop and
httptools, from ``uvicorn[standard]``), access log and Server header off. ``ceiling`` and
``naive`` run through uvicorn's CLI; skship through its front door, ``python -m serving serve``.
A server is ready at its first ``200`` from ``GET /ready``; the time from process start to
that answer is its time to ready. ``skship-pg-w2`` is ``skship-pg`` with ``--workers 2``: a
supervisor and two worker processes, pinned to the server CPU and, where the machine has
one, a spare CPU (runner.Config.cpus_for); with workers, ready means every worker serves.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from bench.models import NUMERIC_DATASETS, BenchModel, Protocol
from serving.settings import Settings
from tests.pgcluster import free_port

REPO = Path(__file__).resolve().parent.parent
# What skship's server (serving/server.py) sets too: no access log, no Server header.
UVICORN_OPTIONS = (
    "--workers", "1", "--no-access-log", "--no-server-header", "--log-level", "warning",
)  # fmt: skip
Store = Literal["none", "sqlite", "postgresql"]
SERVING = re.compile(r"serving\.supervisor: worker \d+ \(pid \d+\) serving")
"""What serving/supervisor.py logs when a worker serves."""


class ServerError(RuntimeError):
    """A server did not start, exited early, or never became ready."""


@dataclass(frozen=True)
class App:
    """One contender of the table."""

    name: str
    kind: Literal["ceiling", "naive", "skship"]
    store: Store = "none"
    workers: int = 1
    """skship's WORKERS: processes serving the port (under a supervisor when more than 1)."""
    protocol: Protocol = "rest"
    """skship's REST API (/predict) or the Open Inference Protocol (/v2/.../infer)."""

    @property
    def per_model(self) -> bool:
        """The ceiling ignores the model: one instance serves every workload."""
        return self.kind != "ceiling"

    def serves(self, model: BenchModel | None) -> bool:
        """The naive app reads lists of floats: it has no answer for typed data."""
        return self.kind != "naive" or model is None or model.dataset in NUMERIC_DATASETS

    def path(self, model: BenchModel | None) -> str:
        if self.protocol == "v2" and model is not None:
            return f"/v2/models/{model.name}/infer"
        return "/predict"

    @property
    def route(self) -> str:
        """The route label skship's metrics count this app's requests under."""
        return "/v2/models/{name}/infer" if self.protocol == "v2" else "/predict"


APPS = (
    App("ceiling", "ceiling"),
    App("naive", "naive"),
    App("skship-nolog", "skship", "none"),
    App("skship-sqlite", "skship", "sqlite"),
    App("skship-pg", "skship", "postgresql"),
    App("skship-pg-w2", "skship", "postgresql", workers=2),
    App("skship-v2", "skship", "postgresql", protocol="v2"),
)
APP_NAMES = tuple(app.name for app in APPS)


@dataclass
class Server:
    """A running, ready server process."""

    app: App
    process: subprocess.Popen[bytes]
    port: int
    ready_s: float
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def require_alive(self, during: str) -> None:
        """Raise if the process has exited: what was measured meanwhile is not a result."""
        code = self.process.poll()
        if code is not None:
            raise ServerError(
                f"{self.app.name} exited with code {code} during {during}; last log lines:\n"
                f"{log_tail(self.log_path)}"
            )

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, let it drain, SIGKILL only if it hangs; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def command(
    app: App, model: BenchModel | None, *, models_dir: Path, port: int, database_url: str
) -> list[str]:
    """The server's argv (without the taskset prefix)."""
    if app.kind == "skship":
        assert model is not None
        return [
            sys.executable, "-m", "serving", "serve", "--models-dir", str(models_dir),
            "--model-name", model.name, "--port", str(port), "--database-url", database_url,
            "--workers", str(app.workers),
        ]  # fmt: skip
    target = f"bench.apps.{app.kind}:create_app"
    return [
        sys.executable, "-m", "uvicorn", target, "--factory",
        "--host", "127.0.0.1", "--port", str(port), *UVICORN_OPTIONS,
    ]  # fmt: skip


def environment(app: App, model: BenchModel | None, *, spool_dir: Path) -> dict[str, str]:
    """The caller's environment without any skship setting, plus what this app needs."""
    ours = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k not in ours and k != "WEB_CONCURRENCY"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    if app.kind == "naive":
        assert model is not None
        env["NAIVE_MODEL_PATH"] = str(model.model_file)
    if app.kind == "skship":
        env["SPOOL_DIR"] = str(spool_dir)
        env["LOG_PREDICTIONS"] = "false" if app.store == "none" else "true"
        # info logs lifecycle events only (start, signals, drain): nothing per request.
        env["ACCESS_LOG"], env["LOG_LEVEL"] = "false", "info"
    return env


def start(
    app: App,
    model: BenchModel | None,
    *,
    models_dir: Path,
    workdir: Path,
    database_url: str,
    cpus: Sequence[int] | None,
    ready_timeout: float = 60.0,
    settings: dict[str, str] | None = None,
) -> Server:
    """Start ``app`` pinned to ``cpus`` and wait for its first ``200`` from ``/ready``."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = command(app, model, models_dir=models_dir, port=port, database_url=database_url)
    if cpus:
        argv = ["taskset", "-c", ",".join(map(str, cpus)), *argv]
    log_path = workdir / "server.log"
    env = environment(app, model, spool_dir=workdir / "spool") | (settings or {})
    with log_path.open("wb") as log:
        started = time.monotonic()
        process = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    server = Server(app, process, port, 0.0, log_path)
    try:
        server.ready_s = _wait_ready(server, started, ready_timeout)
    except BaseException:
        server.stop(timeout=10)
        raise
    return server


def log_tail(path: Path, lines: int = 12) -> str:
    """The server's last log lines, tracebacks' indented frames left out."""
    with contextlib.suppress(OSError):
        text = path.read_text(errors="replace").splitlines()
        return "\n".join([line for line in text if not line.startswith(" ")][-lines:])
    return ""


def _wait_ready(server: Server, started: float, timeout: float) -> float:
    deadline = started + timeout
    with httpx.Client(timeout=1.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise ServerError(
                    f"{server.app.name} exited {server.process.returncode} before ready:\n"
                    f"{log_tail(server.log_path)}"
                )
            with contextlib.suppress(httpx.TransportError):
                ready = client.get(f"{server.url}/ready").status_code == 200
                if ready and _workers_serving(server) >= server.app.workers:
                    return time.monotonic() - started
            time.sleep(0.01)
    raise ServerError(
        f"{server.app.name} not ready after {timeout:.0f} s:\n{log_tail(server.log_path)}"
    )


def _workers_serving(server: Server) -> int:
    """Workers the supervisor has logged as serving (1 for a one-process server)."""
    if server.app.workers == 1:
        return 1
    with contextlib.suppress(OSError):
        return len(SERVING.findall(server.log_path.read_text(errors="replace")))
    return 0
