"""metadata.json: everything needed to trust and serve a version, and the library check."""

from __future__ import annotations

import platform
from datetime import datetime
from typing import Any, Literal

import joblib
import numpy
import orjson
import scipy
import sklearn
from pydantic import BaseModel, ConfigDict, Field

from serving.artifact.errors import LibraryVersionMismatchError

SCHEMA_VERSION = 1


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


def dump(metadata: Metadata) -> bytes:
    """metadata.json's bytes: indented, newline-terminated."""
    data = orjson.dumps(metadata.model_dump(mode="json"), option=orjson.OPT_INDENT_2)
    return data + b"\n"


def installed_versions() -> LibraryVersions:
    return LibraryVersions(
        python=platform.python_version(),
        scikit_learn=sklearn.__version__,
        numpy=numpy.__version__,
        scipy=scipy.__version__,
        joblib=joblib.__version__,
    )


def check_library_versions(metadata: Metadata, *, allow_mismatch: bool = False) -> None:
    """Refuse a pickle made by another scikit-learn: estimators are not portable across it."""
    trained = metadata.libraries.scikit_learn
    if trained != sklearn.__version__ and not allow_mismatch:
        raise LibraryVersionMismatchError(
            f"refusing {metadata.name} {metadata.version}: trained with scikit-learn "
            f"{trained}, installed is {sklearn.__version__}; retrain, install {trained}, "
            "or set MODEL_ALLOW_VERSION_MISMATCH=1 to override"
        )
