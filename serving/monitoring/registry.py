"""What monitoring reads from the model registry: metadata only, never a model.

A version's metadata.json holds its task, classes, held-out metrics and reference profile,
which is all that quality and drift need; nothing here unpickles anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from serving import artifact
from serving.artifact import ArtifactError, Metadata


class MonitoringInputError(ValueError):
    """The question cannot be asked: an unknown model or version, a window that is empty by
    construction. The message is one line, fit for a CLI or a 4xx body."""


@dataclass(frozen=True)
class Registry:
    """Read-only access to ``models_dir``'s metadata."""

    models_dir: Path

    def metadata(self, name: str, version: str | None = None) -> Metadata:
        """A version's metadata; the current version's when ``version`` is None."""
        try:
            if version is None and not artifact.list_versions(self.models_dir, name):
                raise MonitoringInputError(f"no model {name!r} in {self.models_dir}")
            return artifact.read_metadata(artifact.resolve(self.models_dir, name, version))
        except ArtifactError as exc:
            raise MonitoringInputError(str(exc)) from None

    def versions(self, name: str) -> dict[str, Metadata]:
        """Every readable version of ``name``, oldest first (unreadable ones are skipped)."""
        try:
            found = artifact.list_versions(self.models_dir, name)
        except ArtifactError as exc:
            raise MonitoringInputError(str(exc)) from None
        if not found:
            raise MonitoringInputError(f"no model {name!r} in {self.models_dir}")
        versions = {}
        for version in found:
            try:
                versions[version] = artifact.read_metadata(
                    artifact.version_dir(self.models_dir, name, version)
                )
            except ArtifactError:
                continue
        return versions
