"""The model artifact: the on-disk format training writes and serving trusts.

A version lives in ``<models_dir>/<name>/<version>/`` as ``model.joblib`` (one fitted
scikit-learn ``Pipeline``) and ``metadata.json`` (everything needed to trust and serve it,
including the sha256 of every other file). ``<models_dir>/<name>/current`` names the
version to serve and is replaced atomically.

Pickle runs code, so loading reads the bytes once, checks their digest against the
metadata and only then unpickles those same bytes: a tampered or truncated file never
reaches ``joblib.load``. With a signing key, the metadata itself carries an HMAC, so
rewriting the digests along with the pickle is refused too.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import platform
import re
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import joblib
import numpy
import orjson
import scipy
import sklearn
from pydantic import BaseModel, ConfigDict, Field, ValidationError

SCHEMA_VERSION = 1
MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
CURRENT_POINTER = "current"
_STAGING_PREFIX = ".incoming-"
STALE_STAGING_SECONDS = 24 * 3600
"""A staging folder this old belongs to a save that crashed; the next save removes it."""
_VERSION_RE = re.compile(r"^\d{8}-\d{6}-\d{6}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ArtifactError(Exception):
    """An artifact cannot be found, trusted or loaded; the message says which and why."""


class ArtifactNotFoundError(ArtifactError):
    """No such model, version or current pointer."""


class DigestMismatchError(ArtifactError):
    """A file's sha256 differs from the one recorded in metadata.json."""

    def __init__(self, path: Path, expected: str, actual: str) -> None:
        super().__init__(
            f"refusing {path}: sha256 mismatch (expected {expected}, actual {actual}); "
            "the file was modified or truncated after training"
        )
        self.path, self.expected, self.actual = path, expected, actual


class SignatureError(ArtifactError):
    """metadata.json is unsigned or its HMAC does not match the configured key."""


class LibraryVersionMismatchError(ArtifactError):
    """The artifact was pickled by another scikit-learn than the one installed."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureSpec(_Frozen):
    """One input column: its name as in the dataset and its training statistics."""

    name: str
    dtype: Literal["number"] = "number"
    min: float
    max: float
    mean: float
    std: float


class DatasetInfo(_Frozen):
    """Where the training data came from and a fingerprint of its exact content."""

    source: str
    target: str
    fingerprint: str
    n_rows: int
    n_features: int


class LibraryVersions(_Frozen):
    """Versions that produced the pickle; scikit-learn must match at load time."""

    python: str
    scikit_learn: str
    numpy: str
    scipy: str
    joblib: str


class Metadata(_Frozen):
    """Contents of metadata.json."""

    schema_version: int = SCHEMA_VERSION
    name: str
    version: str
    created_at: datetime
    task: Literal["classification", "regression"]
    estimator: str
    features: list[FeatureSpec]
    target: str
    classes: list[str] | None = None
    metrics: dict[str, float]
    cv_metrics: dict[str, dict[str, float]] = Field(default_factory=dict)
    confusion_matrix: list[list[int]] | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int
    dataset: DatasetInfo
    libraries: LibraryVersions
    git_commit: str | None = None
    files: dict[str, str] = Field(default_factory=dict)
    signature: str | None = None

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]


@dataclass(frozen=True)
class Artifact:
    """A verified, loaded version: its metadata, its pipeline and where it came from."""

    metadata: Metadata
    pipeline: Any
    path: Path
    digest: str
    """sha256 of model.joblib, the identity of the pickled bytes."""


def installed_versions() -> LibraryVersions:
    return LibraryVersions(
        python=platform.python_version(),
        scikit_learn=sklearn.__version__,
        numpy=numpy.__version__,
        scipy=scipy.__version__,
        joblib=joblib.__version__,
    )


def new_version(now: datetime | None = None) -> str:
    """A version id that sorts by creation time: ``YYYYMMDD-HHMMSS-ffffff`` (UTC)."""
    return (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S-%f")


def check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise ArtifactError(
            f"invalid model name {name!r}: use letters, digits, '_', '.', '-' (max 64)"
        )
    return name


def model_dir(models_dir: Path, name: str) -> Path:
    return Path(models_dir) / check_name(name)


def version_dir(models_dir: Path, name: str, version: str) -> Path:
    if not _VERSION_RE.match(version):
        raise ArtifactNotFoundError(
            f"invalid version {version!r} for model {name!r}: expected YYYYMMDD-HHMMSS-ffffff"
        )
    return model_dir(models_dir, name) / version


def list_versions(models_dir: Path, name: str) -> list[str]:
    """Complete versions of a model, oldest first. Staging folders are never listed."""
    root = model_dir(models_dir, name)
    if not root.is_dir():
        return []
    return sorted(
        p.name
        for p in root.iterdir()
        if _VERSION_RE.match(p.name) and (p / METADATA_FILE).is_file()
    )


def read_current(models_dir: Path, name: str) -> str | None:
    pointer = model_dir(models_dir, name) / CURRENT_POINTER
    try:
        version = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return version or None


def write_current(models_dir: Path, name: str, version: str) -> None:
    """Point ``current`` at a complete version, atomically (write, fsync, rename)."""
    target = version_dir(models_dir, name, version)
    if not (target / METADATA_FILE).is_file():
        raise ArtifactNotFoundError(f"no version {version!r} of model {name!r} in {models_dir}")
    atomic_write(model_dir(models_dir, name) / CURRENT_POINTER, f"{version}\n".encode())


def resolve(models_dir: Path, name: str, version: str | None = None) -> Path:
    """The folder of ``version``, or of the current version when ``version`` is None."""
    if version is None:
        version = read_current(models_dir, name)
        if version is None:
            raise ArtifactNotFoundError(
                f"model {name!r} has no current version in {models_dir}: "
                "train one with `make train` (or `python -m training train`)"
            )
    path = version_dir(models_dir, name, version)
    if not (path / METADATA_FILE).is_file():
        raise ArtifactNotFoundError(f"no version {version!r} of model {name!r} in {models_dir}")
    return path


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
    files = {MODEL_FILE: hashlib.sha256(model_bytes).hexdigest()}
    signed = _sign(metadata.model_copy(update={"files": files, "signature": None}), signing_key)
    _remove_stale_staging(root)
    staging = Path(tempfile.mkdtemp(prefix=f"{_STAGING_PREFIX}{metadata.version}-", dir=root))
    try:
        _write_synced(staging / MODEL_FILE, model_bytes)
        _write_synced(staging / METADATA_FILE, _dump_metadata(signed))
        _fsync_dir(staging)
        os.rename(staging, final)
    except BaseException:
        # An error (disk full, permissions) leaves nothing behind; a hard crash may leave
        # the hidden staging folder, which is never listed or resolved.
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _fsync_dir(root)
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
    _verify_signature(metadata, Path(path), signing_key)
    if MODEL_FILE not in metadata.files:
        raise ArtifactError(f"{Path(path) / METADATA_FILE} lists no digest for {MODEL_FILE}")
    for filename in metadata.files:
        _read_verified(Path(path), filename, metadata)
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
    _verify_signature(metadata, path, signing_key)
    for filename in metadata.files:
        if filename != MODEL_FILE:
            _read_verified(path, filename, metadata)
    model_bytes = _read_verified(path, MODEL_FILE, metadata)
    check_library_versions(metadata, allow_mismatch=allow_version_mismatch)
    pipeline = joblib.load(io.BytesIO(model_bytes))
    return Artifact(metadata, pipeline, path, metadata.files[MODEL_FILE])


def check_library_versions(metadata: Metadata, *, allow_mismatch: bool = False) -> None:
    """Refuse a pickle made by another scikit-learn: estimators are not portable across it."""
    trained = metadata.libraries.scikit_learn
    if trained != sklearn.__version__ and not allow_mismatch:
        raise LibraryVersionMismatchError(
            f"refusing {metadata.name} {metadata.version}: trained with scikit-learn "
            f"{trained}, installed is {sklearn.__version__}; retrain, install {trained}, "
            "or set MODEL_ALLOW_VERSION_MISMATCH=1 to override"
        )


def _read_verified(path: Path, filename: str, metadata: Metadata) -> bytes:
    if Path(filename).name != filename or filename in {"", ".", ".."}:
        raise ArtifactError(f"{path / METADATA_FILE} names an invalid file {filename!r}")
    file_path = path / filename
    try:
        data = file_path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"{file_path} is listed in metadata.json but missing") from None
    expected = metadata.files.get(filename)
    if expected is None:
        raise ArtifactError(f"{path / METADATA_FILE} lists no digest for {filename}")
    actual = hashlib.sha256(data).hexdigest()
    if not hmac.compare_digest(actual, expected):
        raise DigestMismatchError(file_path, expected, actual)
    return data


def _dump_metadata(metadata: Metadata) -> bytes:
    data = orjson.dumps(metadata.model_dump(mode="json"), option=orjson.OPT_INDENT_2)
    return data + b"\n"


def _signable(metadata: Metadata) -> bytes:
    body = metadata.model_dump(mode="json", exclude={"signature"})
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def _sign(metadata: Metadata, key: bytes | None) -> Metadata:
    if not key:
        return metadata
    mac = hmac.new(key, _signable(metadata), hashlib.sha256).hexdigest()
    return metadata.model_copy(update={"signature": f"hmac-sha256:{mac}"})


def _verify_signature(metadata: Metadata, path: Path, key: bytes | None) -> None:
    if not key:
        return
    expected = _sign(metadata, key).signature
    if metadata.signature is None:
        raise SignatureError(
            f"refusing {path}: metadata.json is unsigned and a signing key is configured"
        )
    if expected is None or not hmac.compare_digest(metadata.signature, expected):
        raise SignatureError(
            f"refusing {path}: metadata.json signature does not match the configured key"
        )


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new content, never a mix."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        _write_synced(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
