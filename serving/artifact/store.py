"""Saving a version atomically, and verifying and loading one."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
from pydantic import ValidationError

from serving.artifact.errors import ArtifactError, ArtifactNotFoundError
from serving.artifact.files import fsync_dir, write_synced
from serving.artifact.integrity import read_verified, sha256, sign, verify_signature
from serving.artifact.layout import METADATA_FILE, MODEL_FILE, model_dir, version_dir
from serving.artifact.metadata import Metadata, check_library_versions, dump

_STAGING_PREFIX = ".incoming-"
STALE_STAGING_SECONDS = 24 * 3600
"""A staging folder this old belongs to a save that crashed; the next save removes it."""


@dataclass(frozen=True)
class Artifact:
    """A verified, loaded version: its metadata, its pipeline and where it came from."""

    metadata: Metadata
    pipeline: Any
    path: Path
    digest: str
    """sha256 of model.joblib, the identity of the pickled bytes."""


def save(
    models_dir: Path,
    metadata: Metadata,
    pipeline: Any,
    *,
    signing_key: bytes | None = None,
) -> Path:
    """Write a new version atomically and return its folder.

    Everything is written and fsynced in a hidden staging folder, then renamed into
    place: a crash at any point leaves either no version or a complete one.
    """
    root = model_dir(models_dir, metadata.name)
    root.mkdir(parents=True, exist_ok=True)
    final = version_dir(models_dir, metadata.name, metadata.version)
    if final.exists():
        raise ArtifactError(f"version {metadata.version} of {metadata.name!r} already exists")
    buffer = io.BytesIO()
    joblib.dump(pipeline, buffer)
    model_bytes = buffer.getvalue()
    files = {MODEL_FILE: sha256(model_bytes)}
    signed = sign(metadata.model_copy(update={"files": files, "signature": None}), signing_key)
    _remove_stale_staging(root)
    staging = Path(tempfile.mkdtemp(prefix=f"{_STAGING_PREFIX}{metadata.version}-", dir=root))
    try:
        write_synced(staging / MODEL_FILE, model_bytes)
        write_synced(staging / METADATA_FILE, dump(signed))
        fsync_dir(staging)
        os.rename(staging, final)
    except BaseException:
        # An error (disk full, permissions) leaves nothing behind; a hard crash may leave
        # the hidden staging folder, which is never listed or resolved.
        shutil.rmtree(staging, ignore_errors=True)
        raise
    fsync_dir(root)
    return final


def _remove_stale_staging(root: Path) -> None:
    """Delete staging folders that a crashed save left behind long ago (never listed anyway)."""
    cutoff = time.time() - STALE_STAGING_SECONDS
    for path in root.glob(f"{_STAGING_PREFIX}*"):
        try:
            if path.is_dir() and path.stat().st_mtime < cutoff:
                shutil.rmtree(path, ignore_errors=True)
        except FileNotFoundError:  # another save removed it first
            continue


def read_metadata(path: Path) -> Metadata:
    """Parse metadata.json of a version folder, without trusting or loading anything."""
    meta_path = Path(path) / METADATA_FILE
    try:
        raw = meta_path.read_bytes()
    except FileNotFoundError:
        raise ArtifactNotFoundError(f"{meta_path} does not exist") from None
    try:
        return Metadata.model_validate_json(raw)
    except ValidationError as exc:
        raise ArtifactError(f"{meta_path} is not valid artifact metadata: {exc}") from None


def verify(path: Path, *, signing_key: bytes | None = None) -> Metadata:
    """Check the signature (when a key is given) and every file's sha256."""
    metadata = read_metadata(path)
    verify_signature(metadata, Path(path), signing_key)
    if MODEL_FILE not in metadata.files:
        raise ArtifactError(f"{Path(path) / METADATA_FILE} lists no digest for {MODEL_FILE}")
    for filename in metadata.files:
        read_verified(Path(path), filename, metadata)
    return metadata


def load(
    path: Path,
    *,
    allow_version_mismatch: bool = False,
    signing_key: bytes | None = None,
) -> Artifact:
    """Verify a version folder, then unpickle its pipeline from the verified bytes."""
    path = Path(path)
    metadata = read_metadata(path)
    verify_signature(metadata, path, signing_key)
    for filename in metadata.files:
        if filename != MODEL_FILE:
            read_verified(path, filename, metadata)
    model_bytes = read_verified(path, MODEL_FILE, metadata)
    check_library_versions(metadata, allow_mismatch=allow_version_mismatch)
    pipeline = joblib.load(io.BytesIO(model_bytes))
    return Artifact(metadata, pipeline, path, metadata.files[MODEL_FILE])
