"""Saving a version atomically, and verifying and loading one."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from serving.artifact import codec, trust
from serving.artifact.errors import ArtifactError, ArtifactNotFoundError
from serving.artifact.files import fsync_dir, write_synced
from serving.artifact.integrity import read_verified, sha256, sign, verify_signature
from serving.artifact.layout import METADATA_FILE, model_dir, version_dir
from serving.artifact.metadata import ArtifactFormat, Metadata, check_library_versions, dump

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
    """sha256 of the model file (``metadata.model_file``), the identity of its bytes."""


def save(
    models_dir: Path,
    metadata: Metadata,
    pipeline: Any,
    *,
    signing_key: bytes | None = None,
    format: ArtifactFormat = "skops",
    trusted: Sequence[str] = (),
) -> Path:
    """Write a new version atomically and return its folder.

    The metadata's ``format``, ``trusted_types``, ``fingerprint`` and ``files`` are set
    here. A skops model that needs a type beyond the safe list and ``trusted`` (exact names
    or ``module.*``) is refused before anything is written (UntrustedTypeError).

    Everything is written and fsynced in a hidden staging folder, then renamed into
    place: a crash at any point leaves either no version or a complete one.
    """
    root = model_dir(models_dir, metadata.name)
    final = version_dir(models_dir, metadata.name, metadata.version)
    model_bytes, needed = codec.dumps(pipeline, format)
    trust.check(
        needed,
        trusted,
        where=f"model {metadata.name!r}",
        how="name them as trusted (--trust module.Name, or trusted=[...]) if you vouch for "
        "the code that defines them",
    )
    update = {"format": format, "trusted_types": needed, "signature": None}
    staged = metadata.model_copy(update=update)
    staged = staged.model_copy(
        update={
            "fingerprint": codec.fingerprint(pipeline),
            "files": {staged.model_file: sha256(model_bytes)},
        }
    )
    signed = sign(staged, signing_key)
    root.mkdir(parents=True, exist_ok=True)
    if final.exists():
        raise ArtifactError(f"version {metadata.version} of {metadata.name!r} already exists")
    _remove_stale_staging(root)
    staging = Path(tempfile.mkdtemp(prefix=f"{_STAGING_PREFIX}{metadata.version}-", dir=root))
    try:
        write_synced(staging / staged.model_file, model_bytes)
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
    if metadata.model_file not in metadata.files:
        raise ArtifactError(
            f"{Path(path) / METADATA_FILE} lists no digest for {metadata.model_file}"
        )
    for filename in metadata.files:
        read_verified(Path(path), filename, metadata)
    return metadata


def load(
    path: Path,
    *,
    allow_version_mismatch: bool = False,
    signing_key: bytes | None = None,
    allow_pickle: bool = False,
    trusted_types: Sequence[str] = (),
) -> Artifact:
    """Verify a version folder, then rebuild its model from the verified bytes.

    Order: the metadata's signature (with a key), every file's digest, the scikit-learn
    version, then the trust policy of :func:`codec.loads`: a skops model's recorded types
    must be safe, allowed by ``trusted_types`` or signed; a joblib model loads only when
    signed or with ``allow_pickle`` (logged as a warning each time).
    """
    path = Path(path)
    metadata = read_metadata(path)
    verify_signature(metadata, path, signing_key)
    model_file = metadata.model_file
    for filename in metadata.files:
        if filename != model_file:
            read_verified(path, filename, metadata)
    model_bytes = read_verified(path, model_file, metadata)
    check_library_versions(metadata, allow_mismatch=allow_version_mismatch)
    pipeline = codec.loads(
        model_bytes,
        metadata,
        where=path / model_file,
        signed=bool(signing_key),
        allow_pickle=allow_pickle,
        trusted_types=trusted_types,
    )
    return Artifact(metadata, pipeline, path, metadata.files[model_file])
