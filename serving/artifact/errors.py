"""Why an artifact cannot be found, trusted or loaded."""

from __future__ import annotations

from pathlib import Path


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
