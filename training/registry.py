"""The model registry on the folder: versions, the ``current`` pointer, promotion history.

``<models_dir>/<name>/history.jsonl`` records every promotion and rollback, one JSON object
per line, beside the ``current`` pointer. Both are replaced atomically under an exclusive
lock on ``<name>/.lock``, so two jobs promoting at once cannot interleave. ``current`` is
written first: a crash between the two writes leaves a history that lacks the last event,
which :func:`promotion_stack` repairs by treating ``current`` as the newest promotion.

Only a version whose digests (and signature, with a key) verify can be promoted.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from serving import artifact

HISTORY_FILE = "history.jsonl"
LOCK_FILE = ".lock"

# Locks this process holds, so that promote() inside a locked train() does not deadlock.
_held: dict[Path, int] = {}


class RegistryError(artifact.ArtifactError):
    """A registry operation cannot be done; the message says why and what to do."""


class HistoryEntry(BaseModel):
    """One change of the ``current`` pointer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: datetime
    action: Literal["promote", "rollback"]
    version: str
    previous: str | None
    reason: str = ""


@dataclass(frozen=True)
class VersionRow:
    """A line of ``python -m training list``: metadata, or why it cannot be read."""

    version: str
    current: bool
    metadata: artifact.Metadata | None
    problem: str | None = None


@dataclass(frozen=True)
class ModelRow:
    """A line of ``python -m training list`` without ``--name``: one model of the registry."""

    name: str
    versions: int
    current: str | None
    metadata: artifact.Metadata | None
    """The current version's metadata (None without a current version, or unreadable)."""
    problem: str | None = None


@contextmanager
def lock(models_dir: Path, name: str) -> Iterator[None]:
    """Hold the model's registry lock (reentrant within this process)."""
    root = artifact.model_dir(models_dir, name)
    root.mkdir(parents=True, exist_ok=True)
    key = root.resolve()
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _held[key] = 1
        try:
            yield
        finally:
            del _held[key]
    finally:
        os.close(fd)  # closing releases the flock


def read_history(models_dir: Path, name: str) -> list[HistoryEntry]:
    """Every recorded promotion and rollback, oldest first."""
    path = artifact.model_dir(models_dir, name) / HISTORY_FILE
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    try:
        return [HistoryEntry.model_validate_json(line) for line in lines if line.strip()]
    except ValidationError as exc:
        raise RegistryError(f"{path} is not a valid promotion history: {exc}") from None


def promotion_stack(history: list[HistoryEntry], current: str | None) -> list[str]:
    """The versions a rollback walks back through, the current one last.

    A promotion pushes its version; a rollback pops back to its target. Changes the
    history missed (``current`` set by hand, or a crash between the pointer and the history
    write) are filled in from each promotion's ``previous`` and from ``current`` itself.
    """
    stack: list[str] = []
    for entry in history:
        if entry.action == "rollback":
            while stack and stack[-1] != entry.version:
                stack.pop()
        elif entry.previous is not None and (not stack or stack[-1] != entry.previous):
            stack.append(entry.previous)
        if not stack or stack[-1] != entry.version:
            stack.append(entry.version)
    if current is not None and (not stack or stack[-1] != current):
        stack.append(current)
    return stack


def promote(
    models_dir: Path,
    name: str,
    version: str,
    *,
    reason: str = "",
    signing_key: bytes | None = None,
    action: Literal["promote", "rollback"] = "promote",
) -> HistoryEntry | None:
    """Verify ``version`` and make it current; None when it already is."""
    path = artifact.resolve(models_dir, name, version)
    artifact.verify(path, signing_key=signing_key)
    with lock(models_dir, name):
        previous = artifact.read_current(models_dir, name)
        if previous == version:
            return None
        entry = HistoryEntry(
            at=datetime.now(UTC), action=action, version=version, previous=previous, reason=reason
        )
        artifact.write_current(models_dir, name, version)
        _append_history(models_dir, name, entry)
        return entry


def rollback(models_dir: Path, name: str, *, signing_key: bytes | None = None) -> HistoryEntry:
    """Make the previously promoted version current again."""
    if artifact.read_current(models_dir, name) is None:  # also: do not create a model folder
        raise RegistryError(f"model {name!r} has no current version in {models_dir}")
    with lock(models_dir, name):
        current = artifact.read_current(models_dir, name)
        if current is None:
            raise RegistryError(f"model {name!r} has no current version in {models_dir}")
        stack = promotion_stack(read_history(models_dir, name), current)
        if len(stack) < 2:
            raise RegistryError(
                f"model {name!r}: no earlier promoted version to roll back to from {current}"
            )
        target = stack[-2]
        entry = promote(
            models_dir,
            name,
            target,
            reason=f"rollback from {current}",
            signing_key=signing_key,
            action="rollback",
        )
        if entry is None:  # the stack never holds one version twice in a row
            raise RegistryError(f"model {name!r}: {target} is already current")
        return entry


def current_metadata(models_dir: Path, name: str) -> artifact.Metadata | None:
    """The current version's metadata, or None when there is no current version."""
    if artifact.read_current(models_dir, name) is None:
        return None
    return artifact.read_metadata(artifact.resolve(models_dir, name))


def rows(models_dir: Path, name: str) -> list[VersionRow]:
    """Every complete version, oldest first, with its metadata when readable."""
    current = artifact.read_current(models_dir, name)
    result: list[VersionRow] = []
    for version in artifact.list_versions(models_dir, name):
        path = artifact.version_dir(models_dir, name, version)
        try:
            meta: artifact.Metadata | None = artifact.read_metadata(path)
            problem = None
        except artifact.ArtifactError as exc:
            meta, problem = None, str(exc)
        result.append(VersionRow(version, version == current, meta, problem))
    return result


def _append_history(models_dir: Path, name: str, entry: HistoryEntry) -> None:
    """Append one line by rewriting the file atomically (the caller holds the lock)."""
    path = artifact.model_dir(models_dir, name) / HISTORY_FILE
    try:
        existing = path.read_bytes()
    except FileNotFoundError:
        existing = b""
    if existing and not existing.endswith(b"\n"):
        existing += b"\n"
    artifact.atomic_write(path, existing + entry.model_dump_json().encode() + b"\n")


def model_rows(models_dir: Path) -> list[ModelRow]:
    """Every model of the registry with its current version, sorted by name."""
    result = []
    for name in artifact.list_models(models_dir):
        count = len(artifact.list_versions(models_dir, name))
        current = artifact.read_current(models_dir, name)
        try:
            meta = current_metadata(models_dir, name)
            problem = None
        except artifact.ArtifactError as exc:
            meta, problem = None, str(exc)
        result.append(ModelRow(name, count, current, meta, problem))
    return result
