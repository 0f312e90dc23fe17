"""metadata.json: everything needed to trust and serve a version, and the library check.

Schema version 2 types every feature (``number``, ``category``, ``boolean``, each maybe
``nullable``), records the serialisation format with its trusted types, a fingerprint of
the fitted model, and a reference profile of the data it was trained or evaluated on
(what drift is measured against). Version 1 files (numbers only, pickled with joblib)
still read: their features become non-nullable ``number`` features.
"""

from __future__ import annotations

import platform
from datetime import datetime
from importlib.metadata import version
from typing import Any, Literal

import joblib
import numpy
import orjson
import scipy
import sklearn
from pydantic import BaseModel, ConfigDict, Field, model_validator

from serving.artifact.errors import LibraryVersionMismatchError

SCHEMA_VERSION = 2

FeatureType = Literal["number", "category", "boolean"]
ArtifactFormat = Literal["skops", "joblib"]
Origin = Literal["trained", "registered"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureSpec(_Frozen):
    """One input column: its name as in the data, its type and its training statistics.

    ``dtype`` is the column dtype the pipeline was fitted with (``float64``, ``int64``,
    ``str``, ``object``, ``category``, ``bool``, ``boolean``); serving rebuilds columns of
    that dtype when the pipeline was fitted on a DataFrame.
    """

    name: str
    type: FeatureType = "number"
    nullable: bool = False
    dtype: str = "float64"
    min: float | None = None
    """number: smallest non-missing training value (None for other types)."""
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    categories: list[str] | None = None
    """category: the training categories (for a pandas ``category`` dtype, in its order)."""

    @model_validator(mode="before")
    @classmethod
    def _from_version_1(cls, data: Any) -> Any:
        # Schema 1 wrote {"dtype": "number", min, max, mean, std}: a float64 number.
        if isinstance(data, dict) and data.get("dtype") == "number" and "type" not in data:
            return {**data, "type": "number", "dtype": "float64"}
        return data

    @model_validator(mode="after")
    def _statistics_match_type(self) -> FeatureSpec:
        stats = (self.min, self.max, self.mean, self.std)
        if self.type == "number" and any(value is None for value in stats):
            raise ValueError(f"number feature {self.name!r} needs min, max, mean and std")
        if self.type == "category" and self.categories is None:
            raise ValueError(f"category feature {self.name!r} needs its categories")
        return self


class NumberProfile(_Frozen):
    """A number's reference distribution: counts between bin edges fixed on the reference.

    ``edges`` are increasing (``len(counts) + 1`` of them); a live value below the first or
    above the last edge falls in the first or last bin. ``missing`` counts nulls.
    """

    kind: Literal["number"] = "number"
    edges: list[float]
    counts: list[int]
    missing: int = 0
    mean: float | None = None
    std: float | None = None

    @model_validator(mode="after")
    def _shape(self) -> NumberProfile:
        if len(self.edges) != len(self.counts) + 1:
            raise ValueError("a number profile needs one more edge than counts")
        return self


class CategoryProfile(_Frozen):
    """A category's (or boolean's, as ``"true"``/``"false"``) reference frequencies."""

    kind: Literal["category"] = "category"
    counts: dict[str, int]
    missing: int = 0


FeatureProfile = NumberProfile | CategoryProfile


class ReferenceProfile(_Frozen):
    """The data a version was trained (or, when registered, evaluated) on, summarised.

    ``predictions`` profiles the model's own predictions on those rows: class counts for a
    classifier, a number profile for a regressor.
    """

    source: Literal["training", "evaluation"]
    rows: int
    features: dict[str, FeatureProfile]
    predictions: FeatureProfile | None = None


class DatasetInfo(_Frozen):
    """Where the training (or evaluation) data came from and a fingerprint of its content."""

    source: str
    target: str
    fingerprint: str
    n_rows: int
    n_features: int


class LibraryVersions(_Frozen):
    """Versions that produced the artifact; scikit-learn must match at load time."""

    python: str
    scikit_learn: str
    numpy: str
    scipy: str
    joblib: str
    skops: str | None = None
    pandas: str | None = None


class Metadata(_Frozen):
    """Contents of metadata.json."""

    schema_version: int = SCHEMA_VERSION
    name: str
    version: str
    created_at: datetime
    origin: Origin = "trained"
    """``trained`` by ``python -m training train``, or ``registered`` (fitted elsewhere)."""
    task: Literal["classification", "regression"]
    estimator: str
    features: list[FeatureSpec]
    target: str
    classes: list[str] | None = None
    metrics: dict[str, float]
    cv_metrics: dict[str, dict[str, float]] = Field(default_factory=dict)
    confusion_matrix: list[list[int]] | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int | None
    """None for a registered model (its fitting happened elsewhere)."""
    dataset: DatasetInfo
    libraries: LibraryVersions
    git_commit: str | None = None
    format: ArtifactFormat = "joblib"
    """How the fitted model is serialised: ``skops`` (loading runs no code) or ``joblib``."""
    trusted_types: list[str] = Field(default_factory=list)
    """skops: the types beyond skops' defaults that loading must trust, recorded at save."""
    fingerprint: str | None = None
    """sha256 of the fitted model's pickle bytes (never loaded): equal for equal models,
    whereas skops files are not byte-deterministic."""
    reference: ReferenceProfile | None = None
    converted_from: str | None = None
    """The version this one was converted from (``python -m training convert``), if any."""
    files: dict[str, str] = Field(default_factory=dict)
    signature: str | None = None

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def model_file(self) -> str:
        """The name of the serialised model's file in the version folder."""
        return "model.skops" if self.format == "skops" else "model.joblib"

    @property
    def numeric_only(self) -> bool:
        """Every feature a non-nullable number: the service's fastest input path."""
        return all(f.type == "number" and not f.nullable for f in self.features)


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
        skops=version("skops"),
        pandas=version("pandas"),
    )


def check_library_versions(metadata: Metadata, *, allow_mismatch: bool = False) -> None:
    """Refuse a model made by another scikit-learn: estimators are not portable across it."""
    trained = metadata.libraries.scikit_learn
    if trained != sklearn.__version__ and not allow_mismatch:
        raise LibraryVersionMismatchError(
            f"refusing {metadata.name} {metadata.version}: trained with scikit-learn "
            f"{trained}, installed is {sklearn.__version__}; retrain, install {trained}, "
            "or set MODEL_ALLOW_VERSION_MISMATCH=1 to override"
        )
