"""What one connection may send and hold, from the settings."""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass

from serving.settings import Settings

logger = logging.getLogger("serving.connections")

MiB = 1024 * 1024

# File descriptors kept free of connections for everything else the process opens (the
# listening socket, database connections, spool and log files, the event loop's own) and
# for a burst of accepts: the event loop accepts every pending connection before any of
# them is seen here, and at RLIMIT_NOFILE libuv closes all pending ones, probes included.
FD_RESERVE_FRACTION = 0.25
FD_RESERVE_MIN = 64


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """What one connection may do (see Settings for each field's meaning)."""

    max_header_bytes: int
    max_headers: int
    header_timeout: float
    body_timeout: float
    max_connections: int
    # After an error answered before the request was all in (413 on Content-Length, 431,
    # 408, 501), read and discard up to this much so the client can read the answer.
    discard_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings, nofile: int | None = None) -> ConnectionLimits:
        """The settings' limits, with the connection cap lowered to fit RLIMIT_NOFILE."""
        if nofile is None:
            nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        cap = settings.max_connections
        if nofile != resource.RLIM_INFINITY:
            fitting = nofile - max(FD_RESERVE_MIN, int(nofile * FD_RESERVE_FRACTION))
            if fitting < cap:
                logger.warning(
                    "MAX_CONNECTIONS=%d lowered to %d to fit the open-file limit (%d)",
                    cap,
                    max(1, fitting),
                    nofile,
                )
                cap = max(1, fitting)
        return cls(
            max_header_bytes=settings.max_header_bytes,
            max_headers=settings.max_headers,
            header_timeout=settings.header_timeout_seconds,
            body_timeout=settings.body_timeout_seconds,
            max_connections=cap,
            discard_bytes=max(16 * MiB, 4 * settings.max_body_bytes),
        )
