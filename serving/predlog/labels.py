"""The labels' spool and writer: ``POST /feedback`` answers 200 only once its labels are here.

Labels travel beside predictions, not through their spool: a prediction segment is COPY
text in the ``predictions`` row format (spool.py), a label is a different row for a
different relation, and labels are few (one per labelled instance, sent once) while
predictions are the hot path. So the labels get a spool of their own, in the same folder
(``<ns>.labels`` files next to the ``<ns>.tsv`` segments, under the same folder lock, adopted
with them by spool slots), and one thread that drains it.

A label file holds one JSON array per line, ``[request_id, row_index, label, received_at,
client_id]``; one ``append`` (one request) is one ``os.write`` of complete lines, so what a
200 promised survives SIGTERM and SIGKILL of the process, as predictions do. The writer
seals the file it appends to, upserts the labels of each sealed file in one transaction per
chunk and deletes the file only then: a crash before the delete replays the file, and the
upsert keeps the label received last (feedback.py), so a replay changes nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson
from prometheus_client import CollectorRegistry, Counter

from serving.predlog.feedback import FeedbackRecord
from serving.predlog.migrations import SchemaError
from serving.predlog.records import LogFullError, LogUnavailableError
from serving.predlog.store import RowsRejectedError, Store, StoreUnavailableError
from serving.predlog.writer import backoff

logger = logging.getLogger(__name__)

LABELS_SUFFIX = ".labels"
CHUNK = 5_000
"""Labels per transaction when a file is drained."""


class LabelSpool:
    """Append side of the labels' spool; thread-safe. The caller holds the folder's lock."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._active: Path | None = None
        self._active_size = 0
        self._sealed: dict[Path, int] = {}
        """Files no longer appended to, oldest first, with the bytes counted for each."""
        self._bytes = 0
        self._last_name = 0
        self._accepting = False

    @property
    def spooled_bytes(self) -> int:
        return self._bytes

    def open(self) -> None:
        """Adopt label files an earlier process left; start accepting."""
        with self._lock:
            for path in sorted(self.directory.glob(f"*{LABELS_SUFFIX}")):
                self._sealed[path] = path.stat().st_size
                self._bytes += self._sealed[path]
            self._accepting = True

    def append(self, records: Sequence[FeedbackRecord]) -> None:
        """Write ``records`` as complete lines with one ``os.write``, or refuse them all."""
        data = b"".join(_encode(record) for record in records)
        with self._lock:
            if not self._accepting:
                raise LogUnavailableError("the prediction log is not open")
            if self._bytes + len(data) > self.max_bytes:
                raise LogFullError(f"label spool is at its cap ({self.max_bytes} bytes)", 1)
            fd = self._fd if self._fd is not None else self._create()
            view, written = memoryview(data), 0
            try:
                while written < len(data):
                    written += os.write(fd, view[written:])
            except OSError as exc:
                # Never leave a partial line for the next append to glue onto.
                try:
                    os.ftruncate(fd, self._active_size)
                except OSError:
                    self._seal()
                raise LogUnavailableError(f"cannot write the label spool: {exc}") from exc
            self._active_size += len(data)
            self._bytes += len(data)

    def _create(self) -> int:
        name = max(time.time_ns(), self._last_name + 1)
        self._last_name = name
        path = self.directory / f"{name:020d}{LABELS_SUFFIX}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        try:
            self._fd = os.open(path, flags, 0o600)
        except OSError as exc:
            raise LogUnavailableError(f"cannot create a label spool file: {exc}") from exc
        self._active, self._active_size = path, 0
        return self._fd

    def _seal(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        if self._active is not None:
            self._sealed[self._active] = self._active_size
            self._active, self._active_size = None, 0

    def take(self) -> list[Path]:
        """Seal the file being appended to; every sealed file, oldest first."""
        with self._lock:
            self._seal()
            return list(self._sealed)

    def remove(self, path: Path) -> None:
        """Forget a file whose labels are all committed."""
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            logger.error("cannot delete drained label file %s: %s", path, exc)
            return
        with self._lock:
            self._bytes -= self._sealed.pop(path, 0)

    def pending(self) -> bool:
        with self._lock:
            return bool(self._sealed) or self._active_size > 0

    def stop_accepting(self) -> None:
        with self._lock:
            self._accepting = False

    def close(self) -> None:
        with self._lock:
            self._accepting = False
            self._seal()


def _encode(record: FeedbackRecord) -> bytes:
    return orjson.dumps(
        [record.request_id, record.row_index, record.label, record.received_at,
         record.client_id]
    ) + b"\n"  # fmt: skip


def read_labels(path: Path) -> tuple[list[FeedbackRecord], int]:
    """The labels of one file, and how many lines could not be read (a torn last line)."""
    records: list[FeedbackRecord] = []
    bad = 0
    for line in path.read_bytes().split(b"\n"):
        if not line:
            continue
        try:
            request_id, row_index, label, received_at, client_id = orjson.loads(line)
            records.append(
                FeedbackRecord(str(request_id), int(row_index), label, float(received_at),
                               None if client_id is None else str(client_id))
            )  # fmt: skip
        except (orjson.JSONDecodeError, ValueError, TypeError):
            bad += 1
    return records, bad


class LabelWriter:
    """One thread that drains the labels' spool into the store, retrying while it is away."""

    def __init__(
        self,
        spool: LabelSpool,
        store: Store,
        registry: CollectorRegistry,
        *,
        schema_ready: Callable[[], bool],
        interval: float,
        retry_max: float,
    ) -> None:
        self.spool, self.store = spool, store
        self._schema_ready = schema_ready
        self.interval, self.retry_max = interval, retry_max
        self.written = Counter(
            "skship_feedback_labels_written", "Labels upserted into the feedback relation.",
            registry=registry,
        )  # fmt: skip
        self.dropped = Counter(
            "skship_feedback_labels_dropped", "Labels lost: a torn line or one the store refused.",
            registry=registry,
        )  # fmt: skip
        self._wake = threading.Event()
        self._abort = threading.Event()
        self._deadline: float | None = None
        self._thread = threading.Thread(target=self._run, name="skship-label-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float) -> bool:
        """Drain within ``timeout`` seconds; True when nothing is left spooled."""
        self._deadline = time.monotonic() + max(0.0, timeout)
        self._wake.set()
        self._thread.join(max(0.0, timeout))
        # A thread still in a write is left to it (the store's close ends it): the file is
        # deleted only after its commit, so at worst the next start replays it, harmlessly.
        self._abort.set()
        return not self.spool.pending()

    def _run(self) -> None:
        try:
            while not self._abort.is_set():
                drained = self._drain()
                if self._deadline is not None and (drained or not self._wait(0.05)):
                    return
                if self._deadline is None:
                    self._wake.wait(self.interval)
        except Exception:
            logger.exception("label writer crashed; labels stay spooled for the next start")

    def _drain(self) -> bool:
        """Write every sealed file; False when the store could not take them (yet)."""
        delay = 0.1
        for path in self.spool.take():
            records, bad = read_labels(path)
            if bad:
                logger.error("label file %s: %d unreadable line(s) dropped", path.name, bad)
                self.dropped.inc(bad)
            for start in range(0, len(records), CHUNK):
                chunk = records[start : start + CHUNK]
                while not self._write(chunk):
                    if not self._wait(delay):
                        return False
                    delay = min(delay * 2, self.retry_max)
            self.spool.remove(path)
        return True

    def _write(self, chunk: list[FeedbackRecord]) -> bool:
        if not self._schema_ready():
            return False
        try:
            self.written.inc(self.store.write_feedback(chunk))
        except RowsRejectedError as exc:  # never expected: POST /feedback validated them
            if len(chunk) > 1:
                middle = len(chunk) // 2
                return self._write(chunk[:middle]) and self._write(chunk[middle:])
            logger.error("the store rejected a label; dropping it: %s", exc)
            self.dropped.inc()
        except (StoreUnavailableError, SchemaError) as exc:
            logger.debug("labels stay spooled: %s", exc)
            return False
        return True

    def _wait(self, delay: float) -> bool:
        return backoff(delay, self._deadline, self._abort)
