"""A verified artifact ready to serve: load → features in metadata order → predict.

Everything a request needs is computed once here (feature schema, class names, the
``/model`` document, training ranges), so the request path only does arithmetic.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import sklearn

from serving import artifact, fastpath
from serving.predlog.records import ModelSchema
from serving.settings import Settings
from serving.validation import FeatureSchema


def _fast_sklearn_config() -> contextlib.AbstractContextManager[None]:
    """Validation already refused non-finite values, and the pipeline's parameters were
    checked when it was fitted: skip scikit-learn's per-call re-checks (~10% of a call)."""
    context: contextlib.AbstractContextManager[None] = sklearn.config_context(
        assume_finite=True, skip_parameter_validation=True
    )
    return context


@dataclass(frozen=True, slots=True)
class Prediction:
    """Outputs for a (rows, features) matrix: labels or values, class probabilities, and
    which values lie outside the range seen in training."""

    labels: list[Any]
    probabilities: np.ndarray | None
    outside: np.ndarray | None
    """(rows, features) bool mask of out-of-range values; None when there are none."""

    def rows(self, start: int, end: int) -> Prediction:
        proba, outside = self.probabilities, self.outside
        if outside is not None:
            outside = outside[start:end]
            if not outside.any():
                outside = None
        return Prediction(
            self.labels[start:end], None if proba is None else proba[start:end], outside
        )


class LoadedModel:
    """One model version, verified and warmed up; immutable once built."""

    def __init__(self, loaded: artifact.Artifact) -> None:
        meta = loaded.metadata
        self.artifact = loaded
        self.metadata = meta
        self.name = meta.name
        self.version = meta.version
        self.ref = {"name": meta.name, "version": meta.version}
        self.features = FeatureSchema(meta.feature_names)
        self.classes = tuple(meta.classes) if meta.classes is not None else None
        self.log_schema = ModelSchema(meta.name, meta.version, self.features.names, self.classes)
        self.train_min = np.array([f.min for f in meta.features])
        self.train_max = np.array([f.max for f in meta.features])
        self._class_array = np.array(self.classes, dtype=object) if self.classes else None
        self.info_json = orjson.dumps(describe(loaded))
        means = np.array([f.mean for f in meta.features])
        probe = fastpath.probe_rows(self.train_min, self.train_max, means)
        with _fast_sklearn_config():
            self._predict_proba, self._predict = fastpath.faster(loaded.pipeline, probe)

    @classmethod
    def load(cls, settings: Settings, version: str | None) -> LoadedModel:
        """Resolve ``version`` (the registry's current one when None), verify, unpickle,
        warm up. Raises ArtifactError for anything that stops it from serving."""
        path: Path = artifact.resolve(settings.models_dir, settings.model_name, version)
        key = settings.artifact_signing_key
        loaded = artifact.load(
            path,
            allow_version_mismatch=settings.model_allow_version_mismatch,
            signing_key=key.get_secret_value().encode() if key else None,
            allow_pickle=settings.model_allow_pickle,
            trusted_types=settings.model_trusted_types,
        )
        try:
            model = cls(loaded)
            model.warm_up()
        except Exception as exc:
            raise artifact.ArtifactError(
                f"{path} verified but does not serve: {type(exc).__name__}: {exc}"
            ) from exc
        return model

    def predict(self, matrix: np.ndarray) -> Prediction:
        outside = (matrix < self.train_min) | (matrix > self.train_max)
        flagged = outside if outside.any() else None
        with _fast_sklearn_config():
            if self._class_array is None:
                values = self._predict(matrix)
                return Prediction(np.asarray(values, dtype=np.float64).tolist(), None, flagged)
            if self._predict_proba is None:  # a classifier without probabilities
                return Prediction([str(v) for v in self._predict(matrix)], None, flagged)
            proba = self._predict_proba(matrix)
        # argmax of predict_proba is what predict() returns for these estimators,
        # and computing it here saves a second pass through the pipeline.
        labels = self._class_array[proba.argmax(axis=1)].tolist()
        return Prediction(labels, proba, flagged)

    def warm_up(self) -> None:
        """Predict the training means once: proves the pipeline runs on this schema."""
        means = np.array([[f.mean for f in self.metadata.features]])
        result = self.predict(means)
        if len(result.labels) != 1:
            raise artifact.ArtifactError(
                f"warm-up of {self.name} {self.version} gave no prediction"
            )


def describe(loaded: artifact.Artifact) -> dict[str, Any]:
    """The GET /model document."""
    meta = loaded.metadata
    return {
        "name": meta.name,
        "version": meta.version,
        "created_at": meta.created_at.isoformat(),
        "task": meta.task,
        "estimator": meta.estimator,
        "features": [f.model_dump() for f in meta.features],
        "target": meta.target,
        "classes": meta.classes,
        "metrics": meta.metrics,
        "cv_metrics": meta.cv_metrics,
        "params": meta.params,
        "seed": meta.seed,
        "dataset": meta.dataset.model_dump(),
        "libraries": meta.libraries.model_dump(),
        "git_commit": meta.git_commit,
        "digest": f"sha256:{loaded.digest}",
        "signed": meta.signature is not None,
    }
