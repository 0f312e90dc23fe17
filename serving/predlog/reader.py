"""The writer threads' side of the spool: read batches of rows, forget them once committed.

Rows are COPY text already (``lines.py``): a batch is the segment bytes themselves, cut at
line ends, never parsed here. Reading never goes past a segment's published size, so a
line the appender is still writing is never seen. A sealed segment left by a killed
process may end in a torn line (the kill landed mid-write, so that request was never
answered): it is skipped and counted. A line without the ten fields of a row cannot be
stored anywhere: it is counted as dropped and logged.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from serving.predlog import lines
from serving.predlog.spool import Segment, Spool

logger = logging.getLogger(__name__)

_CHUNK = 1024 * 1024
_TABS = lines.FIELDS - 1


@dataclass(eq=False)
class Rows:
    """Complete spooled rows as bytes: ``chunks`` joined are ``rows`` newline-ended lines."""

    chunks: list[bytes] = field(default_factory=list)
    rows: int = 0

    def add(self, chunk: bytes, rows: int) -> None:
        self.chunks.append(chunk)
        self.rows += rows

    def halves(self) -> tuple[Rows, Rows]:
        """Split by lines (to isolate a row the store refuses)."""
        split = b"".join(self.chunks).splitlines(keepends=True)
        middle = len(split) // 2
        return Rows([b"".join(split[:middle])], middle), Rows(
            [b"".join(split[middle:])], len(split) - middle
        )


@dataclass(eq=False)
class Batch:
    """Rows read together; committing it advances the spool past ``ends``."""

    rows: Rows = field(default_factory=Rows)
    ends: list[tuple[Segment, int]] = field(default_factory=list)
    committed: bool = False
    oldest: float | None = None
    """created_at of its first (oldest) row."""


@dataclass(eq=False)
class _Cursor:
    fd: int
    offset: int = 0


class SpoolReader:
    """Reads the spool in order, for several writer threads at once.

    Batches may be committed in any order; a segment is forgotten only once every batch
    read up to its end is committed, so a batch still being written keeps its records'
    segments on disk.
    """

    def __init__(self, spool: Spool, max_rows: int, on_lost: Callable[[str, int], None]) -> None:
        self.spool = spool
        self.max_rows = max_rows
        self.on_lost = on_lost
        """Called with (reason, lines): 'torn' for a killed write, 'corrupt' for lost data."""
        self._cursors: dict[Segment, _Cursor] = {}
        self._unreadable: set[Segment] = set()
        self._outstanding: collections.deque[Batch] = collections.deque()
        self._lock = threading.Lock()

    def oldest(self) -> float | None:
        """created_at of the oldest record read and not yet committed."""
        # No lock: status() runs on the event loop and must not wait for a read. Copying a
        # deque is one C call under the GIL, so the snapshot is consistent.
        pending = tuple(self._outstanding)
        return min(
            (b.oldest for b in pending if not b.committed and b.oldest is not None), default=None
        )

    def read(self) -> Batch:
        """The next rows, up to ``max_rows`` (possibly none, with segments to forget)."""
        with self._lock:
            batch = self._read()
            if batch.rows.rows:
                try:
                    batch.oldest = lines.row_time(batch.rows.chunks[0])
                except (ValueError, IndexError):
                    batch.oldest = None
            self._outstanding.append(batch)
            return batch

    def _read(self) -> Batch:
        batch = Batch()
        for segment in self.spool.segments():
            if batch.rows.rows >= self.max_rows:
                break
            cursor = self._cursors.get(segment)
            if cursor is None:
                try:
                    fd = os.open(segment.path, os.O_RDONLY | os.O_CLOEXEC)
                except OSError as exc:
                    # Never forget a segment we could not read: retry at the next batch.
                    if segment not in self._unreadable:
                        self._unreadable.add(segment)
                        logger.error("cannot read spool segment %s: %s", segment.path, exc)
                    continue
                self._unreadable.discard(segment)
                cursor = self._cursors[segment] = _Cursor(fd)
            self._read_segment(segment, cursor, batch)
            batch.ends.append((segment, cursor.offset))
        return batch

    def _read_segment(self, segment: Segment, cursor: _Cursor, batch: Batch) -> None:
        end = segment.size
        header = len(lines.HEADER)
        if cursor.offset == 0 and end >= header and os.pread(cursor.fd, header, 0) == lines.HEADER:
            cursor.offset = header
        while cursor.offset < end and batch.rows.rows < self.max_rows:
            chunk = os.pread(cursor.fd, min(end - cursor.offset, _CHUNK), cursor.offset)
            last = chunk.rfind(b"\n")
            if last < 0 and cursor.offset + len(chunk) < end:
                chunk = os.pread(cursor.fd, end - cursor.offset, cursor.offset)
                last = chunk.rfind(b"\n")
            if last < 0:
                if segment.sealed:
                    logger.warning(
                        "skipping a torn last line in %s (the process was killed mid-write,"
                        " before that response was sent)", segment.path,
                    )  # fmt: skip
                    self.on_lost("torn", 1)
                cursor.offset = end
                return
            chunk = self._take(chunk[: last + 1], self.max_rows - batch.rows.rows)
            cursor.offset += len(chunk)
            self._add_checked(chunk, batch, segment)

    @staticmethod
    def _take(chunk: bytes, rows: int) -> bytes:
        """The first ``rows`` lines of ``chunk`` (all of it when it holds no more)."""
        if chunk.count(b"\n") <= rows:
            return chunk
        end = -1
        for _ in range(rows):
            end = chunk.index(b"\n", end + 1)
        return chunk[: end + 1]

    def _add_checked(self, chunk: bytes, batch: Batch, segment: Segment) -> None:
        """Add whole rows; drop (and count) any line that is not a row of ten fields."""
        rows = chunk.count(b"\n")
        if chunk.count(b"\t") == _TABS * rows:  # one C pass: the usual case
            batch.rows.add(chunk, rows)
            return
        good = []
        for line in chunk.splitlines(keepends=True):
            if line.count(b"\t") == _TABS:
                good.append(line)
            else:
                logger.error("dropping a line that is not a prediction row in %s", segment.path)
                self.on_lost("corrupt", 1)
        if good:
            batch.rows.add(b"".join(good), len(good))

    def commit(self, batch: Batch) -> None:
        """The batch's rows are in the store: delete segments nothing is left in."""
        with self._lock:
            batch.committed = True
            while self._outstanding and self._outstanding[0].committed:
                self._forget_drained(self._outstanding.popleft())

    def _forget_drained(self, batch: Batch) -> None:
        for segment, offset in batch.ends:
            if offset < segment.size or not self.spool.seal_if_drained(segment, offset):
                continue
            cursor = self._cursors.pop(segment, None)
            if cursor is not None:
                with contextlib.suppress(OSError):
                    os.close(cursor.fd)
            self.spool.remove(segment)

    def close(self) -> None:
        with self._lock:
            for cursor in self._cursors.values():
                with contextlib.suppress(OSError):
                    os.close(cursor.fd)
            self._cursors.clear()
