"""Drive one server with wrk (pinned to the load CPU) and read back what it measured.

Numbers come from the Lua ``done()`` hook (exact percentiles, in microseconds); wrk's own
text is parsed too, for the error lines ("Non-2xx or 3xx responses", "Socket errors") that
decide whether a measurement counts at all.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import orjson

INSTALL_HINT = (
    "wrk is not installed: install it with `apt-get install -y wrk` (Debian/Ubuntu; "
    "`brew install wrk` on macOS), then run `make bench` again"
)
LUA_SCRIPT = Path(__file__).with_name("load.lua")
_RESULT = re.compile(r"^BENCH_RESULT (\{.*\})$", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s*(\d+)")
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed no summary."""


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: completed requests over its duration, latency percentiles, errors."""

    requests: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: dict[str, int]

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def errors(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())


def find_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise WrkError(INSTALL_HINT)
    return wrk


def write_bodies(path: Path, bodies: list[bytes]) -> Path:
    """One JSON body per line, as load.lua reads them (JSON text never holds a raw newline)."""
    path.write_bytes(b"\n".join(bodies) + b"\n")
    return path


def run(
    url: str,
    bodies_file: Path,
    *,
    connections: int,
    duration_s: int,
    cpu: int | None,
    timeout_s: int = 10,
) -> WrkResult:
    """One wrk thread (it has one core) holding ``connections`` keep-alive connections."""
    command = [
        find_wrk(), "-t1", f"-c{connections}", f"-d{max(1, duration_s)}s",
        f"--timeout={timeout_s}s", "--latency", "-s", str(LUA_SCRIPT), url, "--", str(bodies_file),
    ]  # fmt: skip
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=duration_s + timeout_s + 30, check=False
    )
    if done.returncode != 0:
        raise WrkError(f"wrk exited {done.returncode}: {done.stderr.strip() or done.stdout}")
    return parse(done.stdout)


def parse(output: str) -> WrkResult:
    """Read the Lua summary line and wrk's error lines out of its stdout."""
    match = _RESULT.search(output)
    if match is None:
        raise WrkError(f"wrk printed no BENCH_RESULT line:\n{output}")
    summary = orjson.loads(match.group(1))
    latency = summary["latency_us"]
    non_2xx = _NON_2XX.search(output)
    socket = _SOCKET.search(output)
    socket_errors = dict.fromkeys(("connect", "read", "write", "timeout"), 0)
    if socket is not None:
        socket_errors = dict(zip(socket_errors, map(int, socket.groups()), strict=True))
    return WrkResult(
        requests=int(summary["requests"]),
        duration_s=summary["duration_us"] / 1e6,
        p50_ms=latency["p50"] / 1e3,
        p90_ms=latency["p90"] / 1e3,
        p99_ms=latency["p99"] / 1e3,
        max_ms=latency["max"] / 1e3,
        non_2xx=int(non_2xx.group(1)) if non_2xx else int(summary["errors"]["status"]),
        socket_errors=socket_errors,
    )
