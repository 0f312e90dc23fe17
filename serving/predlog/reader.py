"""The writer threads' side of the spool: read batches of requests, forget them once committed.

Requests are COPY BINARY tuples already (``frames.py``): a batch is whole frames' payloads,
never parsed here, and the model rows its tuples refer to. Reading never goes past a
segment's published size, so a frame the appender is still writing is never seen. A sealed
segment left by a killed process may end in a torn frame (the kill landed mid-write, so
that micro-batch was never answered): it is skipped and counted. A frame with a wrong
header or a payload that fails its CRC cannot be trusted, nor can what follows it: the rest
of that segment is counted as dropped and logged.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from serving.predlog import frames
from serving.predlog.frames import HEADER, ModelRow
from serving.predlog.spool import Segment, Spool

logger = logging.getLogger(__name__)

_CHUNK = 1024 * 1024


@dataclass(eq=False)
class Rows:
    """Spooled requests: ``chunks`` are COPY BINARY tuples holding ``rows`` instances."""

    chunks: list[bytes] = field(default_factory=list)
    rows: int = 0
    models: dict[int, ModelRow] = field(default_factory=dict)
    """The model rows the tuples refer to (and perhaps others)."""

    def add(self, chunk: bytes, rows: int) -> None:
        self.chunks.append(chunk)
        self.rows += rows

    def halves(self) -> tuple[Rows, Rows] | None:
        """Split by requests (to isolate one the store refuses); None for one request."""
        try:
            split = [t for chunk in self.chunks for t in frames.split_tuples(chunk)]
        except ValueError:
            return None
        if len(split) < 2:
            return None
        middle = len(split) // 2
        first, second = split[:middle], split[middle:]
        return (
            Rows([b"".join(t for t, _ in first)], sum(n for _, n in first), self.models),
            Rows([b"".join(t for t, _ in second)], sum(n for _, n in second), self.models),
        )


@dataclass(eq=False)
class Batch:
    """Requests read together; committing it advances the spool past ``ends``."""

    rows: Rows = field(default_factory=Rows)
    ends: list[tuple[Segment, int]] = field(default_factory=list)
    committed: bool = False
    oldest: float | None = None
    """created_at of its first (oldest) request."""
    full: bool = False
    """It stopped at ``max_rows`` with more to read: the writer should not wait."""


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
        self._models: dict[int, ModelRow] = {}

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
            if batch.rows.chunks:
                try:
                    batch.oldest = frames.first_time(batch.rows.chunks[0])
                except (ValueError, IndexError, OverflowError):
                    batch.oldest = None
                batch.rows.models = dict(self._models)
            self._outstanding.append(batch)
            return batch

    def _read(self) -> Batch:
        batch = Batch()
        for segment in self.spool.segments():
            if batch.full or batch.rows.rows >= self.max_rows:
                batch.full = True
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
        header = len(frames.SEGMENT_HEADER)
        if cursor.offset == 0 and end >= header:
            if os.pread(cursor.fd, header, 0) != frames.SEGMENT_HEADER:
                self._corrupt(segment, cursor, "a segment without the spool's header", 0)
                return
            cursor.offset = header
        while cursor.offset < end and not batch.full:
            if batch.rows.rows >= self.max_rows:
                batch.full = True
                return
            chunk = os.pread(cursor.fd, min(end - cursor.offset, _CHUNK), cursor.offset)
            if len(chunk) >= HEADER.size:
                _magic, length, _n, _crc = HEADER.unpack_from(chunk, 0)
                whole = HEADER.size + length
                if len(chunk) < whole <= end - cursor.offset:  # one frame bigger than a chunk
                    chunk = os.pread(cursor.fd, whole, cursor.offset)
            consumed, problem = self._take(chunk, batch)
            if problem is not None:
                cursor.offset += consumed
                self._corrupt(segment, cursor, problem, end - cursor.offset)
                return
            if consumed == 0:
                if batch.rows.rows:
                    return  # the next frame goes into the next batch
                if segment.sealed:  # left incomplete by a process killed mid-write
                    logger.warning(
                        "skipping a torn last frame in %s (the process was killed mid-write,"
                        " before those responses were sent)", segment.path,
                    )  # fmt: skip
                    self.on_lost("torn", 1)
                    cursor.offset = end
                return
            cursor.offset += consumed

    def _take(self, chunk: bytes, batch: Batch) -> tuple[int, str | None]:
        """Add the complete frames of ``chunk`` to ``batch`` while it has room; returns the
        bytes consumed and, at a frame that cannot be trusted, why."""
        consumed = 0
        # Locals, not batch.rows.add per frame: a frame may hold a single request.
        chunks, rows, limit = batch.rows.chunks, batch.rows.rows, self.max_rows
        try:
            for magic, payload, instances, end in frames.scan(chunk):
                if magic == frames.MODEL_MAGIC:
                    model = ModelRow.from_json(payload)
                    self._models[model.key] = model
                elif rows and rows + instances > limit:
                    batch.full = True  # frames are whole: a batch rarely ends at max_rows
                    break
                else:
                    chunks.append(payload)
                    rows += instances
                consumed = end
        except (frames.CorruptFrameError, ValueError, KeyError) as exc:
            return consumed, str(exc)
        finally:
            batch.rows.rows = rows
        return consumed, None

    def _corrupt(self, segment: Segment, cursor: _Cursor, why: str, size: int) -> None:
        """Drop the rest of ``segment`` (nothing after a bad frame can be trusted)."""
        logger.error(
            "dropping the rest of spool segment %s (%d bytes) from offset %d: %s",
            segment.path, size, cursor.offset, why,
        )  # fmt: skip
        self.on_lost("corrupt", 1)
        cursor.offset = segment.size

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
