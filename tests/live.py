"""A real ``python -m serving serve`` in a subprocess, for shutdown, reload, limits, faults."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import httpx

from tests.pgcluster import children, free_port


class LiveServer:
    """One server process on a free port; ``base_url`` for clients, ``process`` for signals."""

    def __init__(
        self,
        models_dir: Path,
        workdir: Path,
        *,
        database_url: str | None = None,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.output = workdir / f"server-{self.port}.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in {"DATABASE_URL"}},
            "MODELS_DIR": str(models_dir),
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "DATABASE_URL": database_url or f"sqlite:///{workdir / 'predictions.db'}",
            "SPOOL_DIR": str(workdir / "spool"),
            "LOG_LEVEL": "info",
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, wait_ready: bool = True, timeout: float = 30.0) -> LiveServer:
        with self.output.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "serving", "serve"],
                env=self.env,
                cwd=self.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if wait_ready:
            self.wait(lambda r: r.status_code == 200, "/ready", timeout)
        else:
            self.wait(lambda r: r.status_code == 200, "/health", timeout)
        return self

    def wait(self, done: Callable[[httpx.Response], bool], path: str, timeout: float) -> None:
        """Poll ``path`` until ``done(response)`` is true, or fail with the server's output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if done(httpx.get(self.base_url + path, timeout=2)):
                    return
            time.sleep(0.05)
        raise AssertionError(f"server not ready after {timeout} s:\n{self.log()}")

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.output.read_text(errors="replace") if self.output.exists() else ""

    def workers(self) -> dict[int, int]:
        """Slot -> pid of each live worker process of ``serve --workers N``."""
        assert self.process is not None
        found = {}
        for pid in children(self.process.pid):
            with contextlib.suppress(OSError):
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if b"worker" in argv and b"--slot" in argv:
                    found[int(argv[argv.index(b"--slot") + 1])] = pid
        return found

    def wait_workers(self, count: int, timeout: float = 90.0) -> dict[int, int]:
        """Wait until ``count`` workers serve (the supervisor logs each); slot -> pid."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log()}")
            workers, log = self.workers(), self.log()
            if len(workers) == count and all(
                f"(pid {pid}) serving" in log for pid in workers.values()
            ):
                return workers
            time.sleep(0.1)
        raise AssertionError(f"{count} workers not serving after {timeout} s:\n{self.log()}")


@contextlib.contextmanager
def live_server(
    models_dir: Path,
    workdir: Path,
    *,
    database_url: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[LiveServer]:
    server = LiveServer(models_dir, workdir, database_url=database_url, env=env)
    try:
        yield server.start()
    finally:
        server.stop()
