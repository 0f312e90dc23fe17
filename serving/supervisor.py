"""The supervising parent of ``serve --workers N``: N worker processes share one socket.

The parent binds the socket (serving/server.py ``run``, before anything loads), holds
``SPOOL_DIR``'s lock after adopting leftover spools (serving/slots.py), and starts one
worker per slot. It serves no request itself. It:

- restarts a worker that dies (SIGKILL, crash, an exit nobody asked for) in the same slot,
  so its successor replays the slot's spool; a worker that dies again within
  ``STABLE_SECONDS`` of its start is restarted after a growing delay (1, 2, 4 … 30 s), and
  each death is logged with its cause. If a worker fails to start before any worker ever
  served, the configuration is broken: every worker is stopped and the parent exits 1.
- on SIGTERM or SIGINT sends SIGTERM to every worker, each of which drains (readiness 503,
  in-flight requests finish, its log is flushed), and exits 0 once all have exited;
  a worker still running ``DRAIN_SECONDS + EXIT_MARGIN_SECONDS`` later is killed (its spool
  keeps what it did not write, for the next start).
- on SIGHUP sends SIGHUP to every worker: each reloads its models. A worker still starting
  gets it as soon as it serves.
- gives the workers one /metrics: a fresh ``PROMETHEUS_MULTIPROC_DIR`` per start (removed
  at exit) in which every worker's metrics live (serving/metrics.py), and
  ``mark_process_dead`` for each worker that exits.

How workers are started, and why: each is a fresh interpreter, ``python -m serving worker``
(serving/worker.py), with the socket passed as an inherited descriptor and its settings on
stdin -- not ``fork``. By the time the parent could fork it has imported numpy, whose BLAS
starts threads, and forking a process with threads copies locks that nobody will release;
a fresh interpreter inherits nothing but the socket. It costs an interpreter start (about
what the one-process server's start costs) per worker, and needs no pickling and no
``multiprocessing`` helper process (its ``spawn`` starts a resource tracker): ``ps`` shows
each worker with its slot. Workers run in their own process group, so a terminal's Ctrl+C
reaches only the parent, which stops them in order (uvicorn's ``Multiprocess`` and
gunicorn's arbiter were the references; neither gives per-slot restarts or this drain).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from prometheus_client import multiprocess

from serving.metrics import MULTIPROC_ENV
from serving.settings import Settings
from serving.slots import SpoolClaim
from serving.worker import worker_settings

logger = logging.getLogger("serving.supervisor")

STABLE_SECONDS = 30.0
"""A worker that lived this long before it died is restarted at once."""
MAX_BACKOFF_SECONDS = 30.0
EXIT_MARGIN_SECONDS = 3.0
"""After DRAIN_SECONDS, how long a draining worker may take to exit before it is killed."""
_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)
WORKER_COMMAND = (sys.executable, "-m", "serving", "worker")
"""A worker's argv before ``--slot K --socket-fd S --notify-fd W``."""


@dataclass
class Slot:
    """One worker position: its number, and the process that holds it now."""

    number: int
    process: subprocess.Popen[bytes] | None = None
    notify: int | None = None
    """Read end of the pipe on which the worker says it serves."""
    serving: bool = False
    started_at: float = 0.0
    quick_exits: int = 0
    """Consecutive exits within STABLE_SECONDS of a start."""
    restart_at: float | None = None
    reload_pending: bool = False


def supervise(
    settings: Settings,
    sock: socket.socket,
    spool: SpoolClaim,
    command: tuple[str, ...] = WORKER_COMMAND,
) -> int:
    """Run ``settings.workers`` workers on ``sock`` until a stop signal; the exit code."""
    try:
        metrics_dir = Path(tempfile.mkdtemp(prefix="skship-metrics-"))
    except OSError as exc:
        print(
            f"error: cannot create a folder for the workers' metrics: {exc}; point TMPDIR "
            "to a writable folder",
            file=sys.stderr,
        )
        return 2
    try:
        return Supervisor(settings, sock, metrics_dir, command).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
        sock.close()
        spool.release()


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        sock: socket.socket,
        metrics_dir: Path,
        command: tuple[str, ...] = WORKER_COMMAND,
    ) -> None:
        self.settings = settings
        self.command = command
        self.sock = sock
        self.metrics_dir = metrics_dir
        self.slots = [Slot(k) for k in range(settings.workers)]
        self.stopping = False
        self.deadline = 0.0
        self.exit_code = 0
        self.ever_served = False

    def run(self) -> int:
        """Start every worker, supervise until a stop signal, return the exit code."""
        wake_read, wake_write = socket.socketpair()
        for end in (wake_read, wake_write):
            end.setblocking(False)
        previous = {sig: signal.signal(sig, _wake) for sig in _SIGNALS}
        previous_fd = signal.set_wakeup_fd(wake_write.fileno(), warn_on_full_buffer=False)
        try:
            logger.info(
                "supervising %d workers on %s:%d (spool slots in %s)",
                len(self.slots), self.settings.host, self.settings.port, self.settings.spool_dir,
            )  # fmt: skip
            for slot in self.slots:
                self._start(slot)
            while any(slot.process is not None for slot in self.slots) or not self.stopping:
                self._step(wake_read)
        finally:
            signal.set_wakeup_fd(previous_fd)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            wake_read.close()
            wake_write.close()
            self.stopping = True
            self._kill_all()
        logger.info("all workers exited")
        return self.exit_code

    def _step(self, wake: socket.socket) -> None:
        """Wait for a signal, a worker's word or a due restart, and act on it."""
        now = time.monotonic()
        due = [s.restart_at for s in self.slots if s.restart_at is not None]
        timeout = (self.deadline if self.stopping else min(due, default=now + 1.0)) - now
        notify = [s.notify for s in self.slots if s.notify is not None]
        watched = [wake.fileno(), *notify]
        readable, _, _ = select.select(watched, [], [], max(0.0, min(timeout, 1.0)))
        if wake.fileno() in readable:
            with contextlib.suppress(BlockingIOError):
                for signum in wake.recv(64):
                    self._on_signal(signum)
        for slot in self.slots:
            if slot.notify is not None and slot.notify in readable:
                self._on_notify(slot, slot.notify)
            if slot.process is not None and slot.process.poll() is not None:
                self._on_exit(slot, slot.process)
            due_now = slot.restart_at is not None and time.monotonic() >= slot.restart_at
            if due_now and not self.stopping:
                self._start(slot)
        if self.stopping and time.monotonic() >= self.deadline:
            self._kill_all()

    def _on_signal(self, signum: int) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            if self.stopping:
                logger.info("signal %d: already stopping", signum)
                return
            logger.info(
                "signal %d: stopping %d workers (each drains: readiness 503, in-flight "
                "requests finish, its log is flushed)", signum, len(self.slots),
            )  # fmt: skip
            self._stop(exit_code=0)
        elif signum == signal.SIGHUP:
            logger.info("SIGHUP: every worker reloads its models")
            for slot in self.slots:
                if slot.process is not None and slot.serving:
                    _send(slot.process, signal.SIGHUP)
                else:
                    slot.reload_pending = True

    def _on_notify(self, slot: Slot, notify: int) -> None:
        try:
            data = os.read(notify, 64)
        except BlockingIOError:  # nothing to read after all
            return
        except OSError:
            data = b""
        if data and slot.process is not None:
            slot.serving = self.ever_served = True
            logger.info("worker %d (pid %d) serving", slot.number, slot.process.pid)
            if slot.reload_pending and not self.stopping:
                _send(slot.process, signal.SIGHUP)
            slot.reload_pending = False
        else:  # the worker closed its end: it said it serves, or it died
            os.close(notify)
            slot.notify = None

    def _on_exit(self, slot: Slot, process: subprocess.Popen[bytes]) -> None:
        pid, code, served = process.pid, process.returncode, slot.serving
        multiprocess.mark_process_dead(pid, str(self.metrics_dir))  # type: ignore[no-untyped-call]
        slot.process, slot.serving = None, False
        if slot.notify is not None:
            os.close(slot.notify)
            slot.notify = None
        cause = _describe(code)
        if self.stopping:
            logger.info("worker %d (pid %d) %s", slot.number, pid, cause)
            return
        if not served and not self.ever_served:
            logger.error(
                "worker %d (pid %d) %s before it served; its log above says why. "
                "Stopping every worker", slot.number, pid, cause,
            )  # fmt: skip
            self._stop(exit_code=1)
            return
        lived = time.monotonic() - slot.started_at
        slot.quick_exits = slot.quick_exits + 1 if lived < STABLE_SECONDS else 0
        delay = backoff(slot.quick_exits)
        slot.restart_at = time.monotonic() + delay
        if delay:
            logger.error(
                "worker %d (pid %d) %s after %.1f s, %d times in a row within %.0f s of its "
                "start; restarting it in slot %d in %.0f s", slot.number, pid, cause, lived,
                slot.quick_exits, STABLE_SECONDS, slot.number, delay,
            )  # fmt: skip
        else:
            logger.warning(
                "worker %d (pid %d) %s after %.1f s; restarting it in slot %d (it replays "
                "the slot's spool)", slot.number, pid, cause, lived, slot.number,
            )  # fmt: skip

    def _start(self, slot: Slot) -> None:
        """Start the worker of ``slot``: a fresh ``python -m serving worker``."""
        slot.restart_at = None
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(read_end, False)  # the main loop must never wait on one worker
        argv = [
            *self.command, "--slot", str(slot.number),
            "--socket-fd", str(self.sock.fileno()), "--notify-fd", str(write_end),
        ]  # fmt: skip
        env = {**os.environ, MULTIPROC_ENV: str(self.metrics_dir)}
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                env=env,
                pass_fds=(self.sock.fileno(), write_end),
                process_group=0,
            )
        except OSError as exc:
            os.close(read_end)
            slot.quick_exits += 1
            slot.restart_at = time.monotonic() + max(1.0, backoff(slot.quick_exits))
            logger.error("cannot start worker %d: %s; trying again", slot.number, exc)
            return
        finally:
            os.close(write_end)
        if process.stdin is not None:  # always, with stdin=PIPE
            with contextlib.suppress(BrokenPipeError), process.stdin:
                process.stdin.write(worker_settings(self.settings, slot.number))
        slot.process, slot.notify, slot.serving = process, read_end, False
        slot.started_at = time.monotonic()
        logger.info("worker %d started (pid %d)", slot.number, process.pid)

    def _stop(self, exit_code: int) -> None:
        self.stopping = True
        self.exit_code = exit_code
        self.deadline = time.monotonic() + self.settings.drain_seconds + EXIT_MARGIN_SECONDS
        # Once the workers close their copies, new connections are refused, not queued.
        self.sock.close()
        for slot in self.slots:
            slot.restart_at = None
            if slot.process is not None:
                _send(slot.process, signal.SIGTERM)

    def _kill_all(self) -> None:
        for slot in self.slots:
            process = slot.process
            if process is None:
                continue
            if process.poll() is None:
                logger.warning(
                    "worker %d (pid %d) still running %.0f s after the stop signal: killed "
                    "(what its log did not write stays in its slot for the next start)",
                    slot.number, process.pid, self.settings.drain_seconds + EXIT_MARGIN_SECONDS,
                )  # fmt: skip
                _send(process, signal.SIGKILL)
            process.wait()
            self._on_exit(slot, process)


def backoff(quick_exits: int) -> float:
    """Seconds before restarting a worker after ``quick_exits`` quick exits in a row: the
    first restart is immediate, then 1, 2, 4 … up to MAX_BACKOFF_SECONDS."""
    if quick_exits <= 1:
        return 0.0
    return float(min(MAX_BACKOFF_SECONDS, 2.0 ** (quick_exits - 2)))


def _wake(signum: int, frame: FrameType | None) -> None:
    """Signals are read from the wakeup descriptor by the main loop; nothing to do here."""


def _send(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(sig)


def _describe(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    return f"exited with code {code}"
