"""Spool slots: which spool folder each worker process owns, and adopting leftovers.

With one process (``WORKERS=1``) the spool is ``SPOOL_DIR`` itself, as it always was. With
``WORKERS=N`` worker ``k`` (0 <= k < N) owns ``SPOOL_DIR/slot-<k>``, and the supervisor
holds ``SPOOL_DIR``'s own lock for as long as it runs, so one server at a time uses a
``SPOOL_DIR`` whatever its ``WORKERS``. A slot belongs to its number, not to a process: a
worker restarted in slot ``k`` opens the same folder and replays what its predecessor left
(serving/predlog/spool.py).

Changing ``WORKERS`` must never orphan a record. So at startup, before any worker runs, the
segments of every folder that this start will not open -- ``SPOOL_DIR`` itself when N > 1,
``slot-<k>`` for k >= N, every slot folder when N = 1 -- are *adopted*: renamed into the
folders that will be opened, spread round-robin, and the emptied slot folders removed. A
rename is atomic, so a segment is always in exactly one folder; a start cut short halfway
leaves each segment in its old or its new folder, and the next start adopts again. Label
files (``*.labels``, serving/predlog/labels.py) are adopted the same way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path

from serving.predlog.labels import LABELS_SUFFIX
from serving.predlog.spool import LEGACY_SUFFIX, LOCK_FILE, SUFFIX, Spool, lock_folder

logger = logging.getLogger(__name__)

SLOT = re.compile(r"slot-(\d+)")


def slot_dir(spool_dir: Path, slot: int) -> Path:
    return spool_dir / f"slot-{slot}"


def spool_dirs(spool_dir: Path, workers: int) -> list[Path]:
    """The folders the processes of a ``workers``-process server open, by slot."""
    if workers == 1:
        return [spool_dir]
    return [slot_dir(spool_dir, k) for k in range(workers)]


class SpoolClaim:
    """``SPOOL_DIR``'s lock, held by whoever adopted its leftovers."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def claim(spool_dir: Path, workers: int) -> SpoolClaim:
    """Lock ``SPOOL_DIR``, check that no live process holds a folder this start will open,
    and adopt the leftovers. Raises SpoolLockedError (in use) or OSError."""
    spool_dir.mkdir(parents=True, exist_ok=True)
    held = SpoolClaim(lock_folder(spool_dir))
    try:
        for folder in spool_dirs(spool_dir, workers):
            if folder != spool_dir:
                Spool.check_free(folder)
        adopt(spool_dir, workers)
    except BaseException:
        held.release()
        raise
    return held


def adopt(spool_dir: Path, workers: int) -> int:
    """Move every segment of a folder no process of this start opens into one that is
    opened; returns how many moved. The caller holds ``SPOOL_DIR``'s lock."""
    targets = spool_dirs(spool_dir, workers)
    sources = [spool_dir] if workers > 1 else []
    for folder in sorted(spool_dir.iterdir(), key=lambda p: p.name):
        match = SLOT.fullmatch(folder.name)
        if match and folder.is_dir() and (workers == 1 or int(match[1]) >= workers):
            sources.append(folder)
    locks: list[int] = []
    try:
        # Every source is locked before anything moves: a live process in any is an error.
        locks = [lock_folder(folder) for folder in sources if folder != spool_dir]
        segments = sorted(
            (
                path
                for folder in sources
                for suffix in (SUFFIX, LEGACY_SUFFIX, LABELS_SUFFIX)
                for path in folder.glob(f"*{suffix}")
            ),
            key=lambda path: path.name,
        )
        for target in targets:
            target.mkdir(parents=True, exist_ok=True)
        for index, segment in enumerate(segments):
            os.rename(segment, _free_name(targets[index % len(targets)], segment.name))
        for folder in sources:
            if folder != spool_dir:
                _remove_if_empty(folder)
    finally:
        for fd in locks:
            os.close(fd)
    if segments:
        logger.info(
            "adopted %d spool segment(s) from %s into %s: they are written to the store by "
            "the process that opens each", len(segments),
            ", ".join(str(folder) for folder in sources), ", ".join(str(t) for t in targets),
        )  # fmt: skip
    return len(segments)


def _free_name(folder: Path, name: str) -> Path:
    """``folder/name``, or the next free name in the same order (names are nanoseconds)."""
    path = folder / name
    suffix = next((s for s in (LABELS_SUFFIX, LEGACY_SUFFIX) if name.endswith(s)), SUFFIX)
    stem = int(name.removesuffix(suffix)) if name.removesuffix(suffix).isdigit() else None
    while path.exists():
        if stem is None:
            path = folder / f"adopted-{path.name}"
        else:
            stem += 1
            path = folder / f"{stem:020d}{suffix}"
    return path


def _remove_if_empty(folder: Path) -> None:
    """Remove an adopted slot folder once only its lock file is left."""
    with contextlib.suppress(OSError):
        if {p.name for p in folder.iterdir()} <= {LOCK_FILE}:
            (folder / LOCK_FILE).unlink(missing_ok=True)
            folder.rmdir()
