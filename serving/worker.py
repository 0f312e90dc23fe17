"""One worker process of ``serve --workers N`` (started by serving/supervisor.py).

The supervisor runs ``python -m serving worker --slot K --socket-fd S --notify-fd W`` with
the listening socket inherited as descriptor S and the worker's final settings (its spool
slot, its share of the spool cap) as JSON on stdin. The worker serves exactly like the
one-process server (serving/server.py ``serve``), with three differences:

- it writes one byte to descriptor W once it serves (the supervisor forwards SIGHUP only to
  workers that do, and tells a failed start from a crash by it);
- SIGINT and SIGTERM both mean "drain": signals come from the supervisor, and a second one
  must not turn a drain into uvicorn's forced exit;
- it drains by itself when the supervisor is gone (its parent process changes), so a killed
  supervisor never leaves workers serving without anyone to stop them;
- once drained it exits at once, without the interpreter's teardown.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import uvicorn
from pydantic import SecretStr

from serving.server import DrainingServer, configure_logging, serve
from serving.settings import MiB, Settings
from serving.slots import slot_dir
from serving.state import AppState

logger = logging.getLogger("serving")

PARENT_CHECK_TICKS = 10
"""uvicorn ticks every 0.1 s: look for the supervisor once a second."""


def worker_settings(settings: Settings, slot: int) -> bytes:
    """What the supervisor writes to worker ``slot``'s stdin: the server's settings with
    the worker's spool slot and its share of the spool cap, as JSON (secrets in clear: they
    travel through a pipe only)."""
    worker = settings.model_copy(
        update={
            "spool_dir": slot_dir(settings.spool_dir, slot),
            "spool_max_bytes": max(MiB, settings.spool_max_bytes // settings.workers),
        }
    )
    return json.dumps(worker.model_dump(), default=_plain).encode()


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot pass {type(value).__name__} to a worker")


def main(slot: int, socket_fd: int, notify_fd: int) -> NoReturn:
    # Until the app installs its reload handler, SIGHUP's default action would kill us.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    settings = Settings.model_validate_json(sys.stdin.buffer.read())
    configure_logging(settings, worker=slot)
    sock = socket.socket(fileno=socket_fd)
    parent = os.getppid()

    def server(config: uvicorn.Config, state: AppState) -> DrainingServer:
        return WorkerServer(config, state, notify_fd=notify_fd, parent=parent)

    code = serve(settings, sock, worker=slot, server_class=server)
    # Served, drained, log closed: what is left is the interpreter freeing a heap of numpy
    # and scikit-learn objects, 1-2 s on a busy machine, out of the supervisor's deadline.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class WorkerServer(DrainingServer):
    def __init__(
        self, config: uvicorn.Config, state: AppState, *, notify_fd: int, parent: int
    ) -> None:
        super().__init__(config, state)
        self._notify_fd: int | None = notify_fd
        self._parent = parent

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._notify_fd is not None:
            with contextlib.suppress(OSError):  # a supervisor gone is seen by on_tick
                os.write(self._notify_fd, b"1")
            os.close(self._notify_fd)
            self._notify_fd = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(signal.SIGTERM, frame)

    async def on_tick(self, counter: int) -> bool:
        orphaned = counter % PARENT_CHECK_TICKS == 0 and os.getppid() != self._parent
        if orphaned and not self.should_exit:
            logger.warning("the supervising process is gone: draining and exiting")
            self.handle_exit(signal.SIGTERM, None)
        return await super().on_tick(counter)
