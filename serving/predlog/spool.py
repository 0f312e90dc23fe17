"""The local append-only spool: records reach it before their response is sent.

The spool is a folder of segment files named by creation time (``<ns>.skb``). A segment
is a header, then frames (``frames.py``): a model version's names the first time the
segment holds its requests, and for each micro-batch one frame of COPY BINARY tuples, one
per request, which the writer streams into the database as they are. One
``PredictionLog.append`` call (one micro-batch) is one ``os.write`` of complete frames:
the page cache holds them once it returns, so they survive SIGTERM and SIGKILL of this
process (not power loss, unless the opt-in periodic fsync is on).

One process owns a spool folder at a time (``flock`` on ``.lock``); segments present when
it opens the folder were left by an earlier process and are replayed. The writer threads
read segments behind the appender (``SpoolReader``) and delete one only once all its rows
are committed.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from serving.predlog import frames, legacy
from serving.predlog.frames import SEGMENT_HEADER as HEADER
from serving.predlog.frames import RequestEncoder
from serving.predlog.records import (
    LogFullError,
    LogUnavailableError,
    ModelSchema,
    PredictionRecord,
)

logger = logging.getLogger(__name__)

SUFFIX = ".skb"
LEGACY_SUFFIX = ".tsv"
"""Segments of format 2 and 3 (COPY text rows), left by an older version: converted at open."""
CAP_WARNING_INTERVAL = 10.0
"""Seconds between two warnings that the spool is at its cap."""
LOCK_FILE = ".lock"


class SpoolLockedError(Exception):
    """Another live process owns this spool folder."""


@dataclass(eq=False)
class Segment:
    """One spool file; ``size`` only ever covers complete frames."""

    path: Path
    size: int
    sealed: bool
    synced: int = 0
    fd: int | None = None
    models: set[int] = field(default_factory=set)
    """Keys of the model versions whose names this segment holds."""


class Spool:
    """Append side of the spool; thread-safe, shared with the writer thread."""

    def __init__(
        self, directory: Path, max_bytes: int, segment_bytes: int, retry_after: int = 1
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = max(min(segment_bytes, max_bytes // 4), len(HEADER) + 1)
        self.retry_after = retry_after
        """Seconds a refused client is told to wait; the writer updates it."""
        self.full = False
        self._full_announced = False
        self._last_full_warning = float("-inf")
        self.unwritable: str | None = None
        self._lock = threading.Lock()
        self._segments: list[Segment] = []
        self._active: Segment | None = None
        self._bytes = 0
        self._last_name = 0
        self._lock_fd: int | None = None
        self.appended_rows = 0
        """Rows accepted since this process opened the spool."""
        self.leftover_rows = 0
        """Rows found in segments an earlier process left."""
        self._accepting = False
        self._encoders: dict[ModelSchema, RequestEncoder] = {}
        self.leftover_lost: dict[str, int] = {}
        """Rows of an older version's segments that could not be converted, by reason
        ('torn', 'corrupt'); the writer counts them."""

    @property
    def spooled_bytes(self) -> int:
        return self._bytes

    @property
    def accepting(self) -> bool:
        return self._accepting

    @staticmethod
    def check_free(directory: Path) -> None:
        """Raise SpoolLockedError if a live process holds ``directory`` now."""
        try:
            fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SpoolLockedError(_locked(directory)) from None
        finally:
            os.close(fd)  # closing releases a lock taken here

    def open(self) -> None:
        """Create and lock the folder; adopt segments left by an earlier process."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = lock_folder(self.directory)
        self._accepting = True
        for path in sorted(self.directory.glob(f"*{LEGACY_SUFFIX}")):
            self._convert(path)
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            data = path.read_bytes()
            self._segments.append(Segment(path, len(data), sealed=True, synced=len(data)))
            self._bytes += len(data)
            self.leftover_rows += instances(data)
        if self._segments:
            logger.info(
                "replaying %d spool segment(s), %d bytes, left by an earlier process",
                len(self._segments), self._bytes,
            )  # fmt: skip

    def append(self, records: Sequence[PredictionRecord]) -> None:
        """Write ``records`` as complete frames with one ``os.write``, or refuse them all."""
        with self._lock:
            if not self._accepting:
                raise LogUnavailableError("the prediction log is not open")
            segment = self._active
            if segment is None or segment.size >= self.segment_bytes:
                segment = self._roll()
            parts: list[bytes] = [] if segment.size else [HEADER]
            payload, rows, new_models = self._encode(records, segment)
            parts += [encoder.model_frame for encoder in new_models]
            parts.append(frames.frame(frames.REQUESTS_MAGIC, payload, rows))
            data = b"".join(parts)
            if self._bytes + len(data) > self.max_bytes:
                if not self.full:
                    self._announce_full()
                self.full = True
                raise LogFullError(
                    f"prediction spool is at its cap ({self.max_bytes} bytes)", self.retry_after
                )
            self._write(segment, data)
            if new_models:
                segment.models.update(encoder.model.key for encoder in new_models)
            segment.size += len(data)
            self._bytes += len(data)
            self.appended_rows += rows
            self.unwritable = None

    def _encode(
        self, records: Sequence[PredictionRecord], segment: Segment
    ) -> tuple[bytes, int, list[RequestEncoder]]:
        """The micro-batch's tuples, its instances, and the encoders of models whose names
        ``segment`` does not hold yet (their frames go before the tuples)."""
        by_model: dict[ModelSchema, list[PredictionRecord]] = {}
        rows = 0
        for record in records:
            group = by_model.get(record.model)
            if group is None:
                by_model[record.model] = [record]
            else:
                group.append(record)
            rows += len(record.predictions)
        parts, new = [], []
        for schema, group in by_model.items():
            encoder = self._encoders.get(schema)
            if encoder is None:
                encoder = self._encoders[schema] = RequestEncoder(schema)
            if encoder.model.key not in segment.models:
                new.append(encoder)
            parts.append(encoder.encode(group))
        return b"".join(parts), rows, new

    def _convert(self, path: Path) -> None:
        """Rewrite a segment an older version left (COPY text rows) as frames, atomically."""
        converted = legacy.convert(path.read_bytes())
        target = path.with_suffix(SUFFIX)
        tmp = path.with_name(f".{target.name}.upgrade")
        with open(tmp, "wb") as handle:
            handle.write(converted.data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        path.unlink()
        for reason, count in converted.lost.items():
            self.leftover_lost[reason] = self.leftover_lost.get(reason, 0) + count
        logger.info("converted spool segment %s to the current format", path.name)

    def _roll(self) -> Segment:
        """Seal the active segment and open a new one (called under the lock)."""
        if self._active is not None:
            self._seal(self._active)
        name = max(time.time_ns(), self._last_name + 1)
        self._last_name = name
        path = self.directory / f"{name:020d}{SUFFIX}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, 0o600)
        except OSError as exc:
            self.unwritable = f"cannot create a spool segment: {exc}"
            raise LogUnavailableError(self.unwritable) from exc
        segment = Segment(path, 0, sealed=False, fd=fd)
        self._segments.append(segment)
        self._active = segment
        return segment

    def _write(self, segment: Segment, data: bytes) -> None:
        if segment.fd is None:  # a sealed segment is never written again
            raise LogUnavailableError(f"spool segment {segment.path} is sealed")
        try:
            written = os.write(segment.fd, data)
            while written < len(data):  # rare: a signal, or a full disk on the next call
                written += os.write(segment.fd, memoryview(data)[written:])
        except OSError as exc:
            self.unwritable = f"cannot write the spool: {exc}"
            # A partial line must not glue onto the next append: cut it off, and when even
            # that fails, never append to this segment again (its readers stop at .size).
            try:
                os.ftruncate(segment.fd, segment.size)
            except OSError:
                self._seal(segment)
            raise LogUnavailableError(self.unwritable) from exc

    def _seal(self, segment: Segment) -> None:
        if segment.fd is not None:
            with contextlib.suppress(OSError):
                os.close(segment.fd)
            segment.fd = None
        segment.sealed = True
        if self._active is segment:
            self._active = None

    def segments(self) -> list[Segment]:
        """The segments in write order, as the writer should drain them."""
        with self._lock:
            return list(self._segments)

    def seal_if_drained(self, segment: Segment, offset: int) -> bool:
        """Seal ``segment`` if the writer has everything in it; True when it is sealed."""
        with self._lock:
            if not segment.sealed and segment.size == offset:
                self._seal(segment)
            return segment.sealed

    def remove(self, segment: Segment) -> None:
        """Delete a sealed segment whose rows are all committed (again: a no-op)."""
        if not segment.sealed:
            raise ValueError(f"spool segment {segment.path} is still being written")
        with self._lock:
            if segment not in self._segments:
                return
        try:
            segment.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            logger.error("cannot delete drained spool segment %s: %s", segment.path, exc)
            return
        with self._lock:
            if segment in self._segments:
                self._segments.remove(segment)
                self._bytes -= segment.size
            if self.full and self._full_announced:
                logger.warning("prediction spool below its cap again: accepting predictions")
                self._full_announced = False
            self.full = False

    def _announce_full(self) -> None:
        """Warn that the cap is reached: at most once per CAP_WARNING_INTERVAL, since a spool
        kept at its cap flaps between full and not as each drained segment is deleted."""
        now = time.monotonic()
        if now - self._last_full_warning < CAP_WARNING_INTERVAL:
            return
        self._last_full_warning, self._full_announced = now, True
        logger.warning(
            "prediction spool at its cap (%d bytes): /predict answers 503 until the writer"
            " catches up", self.max_bytes,
        )  # fmt: skip

    def probe(self) -> None:
        """Try to open a fresh segment, clearing ``unwritable`` when the disk is back."""
        with self._lock:
            if self.unwritable is not None and self._lock_fd is not None:
                with contextlib.suppress(LogUnavailableError):
                    self._roll()
                    self.unwritable = None

    def sync(self) -> None:
        """fsync what was appended since the last call (opt-in, for power loss)."""
        with self._lock:
            pending = [(s, s.size) for s in self._segments if s.synced < s.size]
        for segment, size in pending:
            try:
                fd = os.open(segment.path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            segment.synced = size
        if pending:
            dir_fd = os.open(self.directory, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def stop_accepting(self) -> None:
        """Refuse further appends (shutdown); what is spooled can still be drained."""
        with self._lock:
            self._accepting = False

    def close(self) -> None:
        """Stop accepting, close files and release the folder lock; segments stay."""
        with self._lock:
            self._accepting = False
            if self._active is not None:
                self._seal(self._active)
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None


def lock_folder(directory: Path) -> int:
    """Take ``directory``'s spool lock (it must exist); the returned descriptor holds it until
    closed. Raises SpoolLockedError when a live process holds it."""
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SpoolLockedError(_locked(directory)) from None
    return fd


def _locked(directory: Path) -> str:
    return (
        f"spool folder {directory} is in use by another server process; stop that server "
        "or give each server its own SPOOL_DIR"
    )


def instances(data: bytes) -> int:
    """Instances in a segment's complete frames (for the leftover count; 0 when corrupt)."""
    count = 0
    try:
        for item in frames.scan(data, len(HEADER) if data.startswith(HEADER) else len(data)):
            count += item.instances
    except frames.CorruptFrameError:
        pass
    return count
