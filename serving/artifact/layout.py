"""Where versions live: ``<models_dir>/<name>/<version>/`` and the ``current`` pointer."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from serving.artifact.errors import ArtifactError, ArtifactNotFoundError
from serving.artifact.files import atomic_write

SKOPS_FILE = "model.skops"
JOBLIB_FILE = "model.joblib"
MODEL_FILE = SKOPS_FILE
"""The model file of a version saved in the default format (``metadata.model_file`` says)."""
METADATA_FILE = "metadata.json"
CURRENT_POINTER = "current"
_VERSION_RE = re.compile(r"^\d{8}-\d{6}-\d{6}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


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


def is_version(version: str) -> bool:
    """Whether ``version`` has the form of a version id (``YYYYMMDD-HHMMSS-ffffff``)."""
    return bool(_VERSION_RE.match(version))


def list_models(models_dir: Path) -> list[str]:
    """Names of the models that have at least one complete version, sorted."""
    root = Path(models_dir)
    if not root.is_dir():
        return []
    return sorted(
        p.name for p in root.iterdir() if _NAME_RE.match(p.name) and list_versions(root, p.name)
    )


def unknown_model(models_dir: Path, name: str) -> str:
    """Why ``name`` cannot be found, listing the models that can."""
    models = list_models(models_dir)
    if not models:
        return (
            f"no model {name!r} in {models_dir}: the registry has no models yet; "
            "train one with `python -m training train`"
        )
    return f"no model {name!r} in {models_dir}; its models are: {', '.join(models)}"


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
    if not list_versions(models_dir, name):
        raise ArtifactNotFoundError(unknown_model(models_dir, name))
    if version is None:
        version = read_current(models_dir, name)
        if version is None:
            raise ArtifactNotFoundError(
                f"model {name!r} has no current version in {models_dir}: promote one with "
                f"`python -m training promote VERSION --name {name}`"
            )
    path = version_dir(models_dir, name, version)
    if not (path / METADATA_FILE).is_file():
        raise ArtifactNotFoundError(f"no version {version!r} of model {name!r} in {models_dir}")
    return path
