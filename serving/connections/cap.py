"""MAX_CONNECTIONS: a count of open connections that makes room by closing idle ones."""

from __future__ import annotations

import logging
import time
from typing import Protocol

logger = logging.getLogger("serving.connections")


class Closable(Protocol):
    def close_idle(self) -> bool:
        """Close unless a request is in the app (then False)."""
        ...


class OpenConnections:
    """Counts open connections; at the cap, closes the longest-idle ones to make room.

    Idle means no request is in the app: waiting for a first request, between requests
    (keep-alive), still receiving a request head, or discarding after an early answer.
    A connection whose request is in the app is never closed for room; when every other
    connection is busy, the newest one is. The order is that of the last request's start
    (or the opening, before a first request): one dictionary update per request.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.count = 0
        # Insertion-ordered: the first key started its last request the longest ago.
        self._order: dict[Closable, None] = {}
        # Closed for room, not yet gone (connection_lost comes on a later loop turn).
        self._closing: set[Closable] = set()
        self._warned = 0.0

    def opened(self, conn: Closable) -> None:
        self.count += 1
        self._order[conn] = None
        if self.count > self.cap:
            self._make_room()

    def closed(self, conn: Closable) -> None:
        self.count -= 1
        self._order.pop(conn, None)
        self._closing.discard(conn)

    def active(self, conn: Closable) -> None:
        """``conn`` started a request: it becomes the last to close for room."""
        order = self._order
        order.pop(conn, None)
        order[conn] = None

    def _make_room(self) -> None:
        now = time.monotonic()
        if now - self._warned > 60:
            self._warned = now
            logger.warning(
                "%d open connections (MAX_CONNECTIONS): closing the longest-idle ones", self.cap
            )
        order = self._order
        for _ in range(len(order)):
            if self.count - len(self._closing) <= self.cap:
                return
            oldest = next(iter(order))
            del order[oldest]
            if oldest.close_idle():
                self._closing.add(oldest)
            else:  # busy: to the back of the line
                order[oldest] = None
