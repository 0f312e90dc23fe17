"""Trusting a version's bytes: sha256 digests of its files and the metadata's HMAC."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import orjson

from serving.artifact.errors import ArtifactError, DigestMismatchError, SignatureError
from serving.artifact.layout import METADATA_FILE
from serving.artifact.metadata import Metadata


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_verified(path: Path, filename: str, metadata: Metadata) -> bytes:
    """The bytes of ``path/filename``, read once, after their digest matched the metadata."""
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
    actual = sha256(data)
    if not hmac.compare_digest(actual, expected):
        raise DigestMismatchError(file_path, expected, actual)
    return data


def sign(metadata: Metadata, key: bytes | None) -> Metadata:
    """``metadata`` with an HMAC-SHA256 over everything but the signature (no key: as is)."""
    if not key:
        return metadata
    mac = hmac.new(key, _signable(metadata), hashlib.sha256).hexdigest()
    return metadata.model_copy(update={"signature": f"hmac-sha256:{mac}"})


def verify_signature(metadata: Metadata, path: Path, key: bytes | None) -> None:
    """With a key, refuse unsigned metadata or a signature made with another key."""
    if not key:
        return
    expected = sign(metadata, key).signature
    if metadata.signature is None:
        raise SignatureError(
            f"refusing {path}: metadata.json is unsigned and a signing key is configured"
        )
    if expected is None or not hmac.compare_digest(metadata.signature, expected):
        raise SignatureError(
            f"refusing {path}: metadata.json signature does not match the configured key"
        )


def _signable(metadata: Metadata) -> bytes:
    body = metadata.model_dump(mode="json", exclude={"signature"})
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
