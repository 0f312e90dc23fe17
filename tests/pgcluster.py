"""A throwaway PostgreSQL cluster on a free port, for tests and the benchmark.

Fault tests stop, kill and restart their own cluster; they never touch the machine's
shared server. PostgreSQL refuses to run as root, so under root the cluster runs as the
``postgres`` system user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def find_pg_bin() -> Path | None:
    """The folder holding initdb/pg_ctl/postgres, or None when PostgreSQL is not installed."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).parent
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgCluster:
    """initdb into a temporary folder; start, stop, kill and restart on one fixed port."""

    def __init__(self, *, port: int | None = None, fsync: bool = True) -> None:
        pg_bin = find_pg_bin()
        if pg_bin is None:
            raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found")
        self.bin = pg_bin
        self.port = port or free_port()
        self.fsync = fsync
        self.root = Path(tempfile.mkdtemp(prefix="skship-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "run"
        self.logfile = self.root / "server.log"
        self._user = "postgres" if os.geteuid() == 0 else None
        self.socket_dir.mkdir()
        if self._user:
            record = pwd.getpwnam(self._user)
            for path in (self.root, self.socket_dir):
                os.chown(path, record.pw_uid, record.pw_gid)
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
            "--no-sync", "-E", "UTF8", "--locale=C.UTF-8",
        )  # fmt: skip

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url_for(self, dbname: str, user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}"

    def start(self, timeout: float = 30.0) -> None:
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1"
            f" -c fsync={'on' if self.fsync else 'off'}"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-o", options,
            "-w", "-t", str(int(timeout)), "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def kill(self) -> None:
        """SIGKILL the postmaster and its backends, as a crash or OOM kill would."""
        pid = self.postmaster_pid()
        if pid is None:
            return
        victims = [pid, *children(pid)]
        for victim in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(v) for v in victims):
            time.sleep(0.05)
        # A killed postmaster leaves its lock files; the next start must not trip on them.
        for leftover in (self.data / "postmaster.pid", *self.socket_dir.glob(".s.PGSQL.*")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()

    def restart(self) -> None:
        self.stop()
        self.start()

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None

    def destroy(self) -> None:
        self.stop(mode="immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, tool: str, *args: str, check: bool = True) -> None:
        subprocess.run(
            [str(self.bin / tool), *args],
            check=check,
            user=self._user,
            cwd=self.root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@contextlib.contextmanager
def throwaway_cluster(*, fsync: bool = True) -> Iterator[PgCluster]:
    cluster = PgCluster(fsync=fsync)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()
