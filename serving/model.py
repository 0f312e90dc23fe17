"""A verified artifact ready to serve: load → inputs in metadata order → predict.

Everything a request needs is computed once here (feature schema, class names, the
``/model`` document), so the request path only does arithmetic. A pipeline fitted on a
float64 matrix gets the matrix (the fast path); one fitted on a DataFrame gets a DataFrame
with the dtypes recorded at training (serving/features.py).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import sklearn

from serving import artifact, fastpath
from serving.features import FeatureSchema, Inputs
from serving.predlog.records import ModelSchema
from serving.settings import Settings

logger = logging.getLogger("serving")


def _fast_sklearn_config() -> contextlib.AbstractContextManager[None]:
    """Validation already refused non-finite values, and the pipeline's parameters were
    checked when it was fitted: skip scikit-learn's per-call re-checks (~10% of a call)."""
    context: contextlib.AbstractContextManager[None] = sklearn.config_context(
        assume_finite=True, skip_parameter_validation=True
    )
    return context


@dataclass(frozen=True, slots=True)
class Prediction:
    """Outputs for some rows: labels or values, class probabilities, and which values lie
    outside what was seen in training."""

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


class ModelInputError(ValueError):
    """The pipeline refused these inputs (e.g. a category it cannot encode).

    ``cells`` are the (row, feature) pairs to blame when they are known: values not seen in
    training, which such a pipeline cannot take."""

    def __init__(self, message: str, cells: list[tuple[int, str]]) -> None:
        super().__init__(message)
        self.cells = cells


class LoadedModel:
    """One model version, verified and warmed up; immutable once built."""

    def __init__(self, loaded: artifact.Artifact) -> None:
        meta = loaded.metadata
        self.artifact = loaded
        self.metadata = meta
        self.name = meta.name
        self.version = meta.version
        self.ref = {"name": meta.name, "version": meta.version}
        self.features = FeatureSchema(meta.features)
        self.classes = tuple(meta.classes) if meta.classes is not None else None
        kinds = None if self.features.numeric_only else tuple(s.type for s in meta.features)
        self.log_schema = ModelSchema(
            meta.name, meta.version, self.features.names, self.classes, kinds
        )
        self._class_array = np.array(self.classes, dtype=object) if self.classes else None
        self.info_json = orjson.dumps(describe(loaded))
        pipeline = loaded.pipeline
        self.takes_frame = hasattr(pipeline, "feature_names_in_") or not self.features.numeric_only
        self._predict_proba: fastpath.Method | None = getattr(pipeline, "predict_proba", None)
        self._predict: fastpath.Method = pipeline.predict
        if not self.takes_frame:
            probe = self.features.probe()
            if not isinstance(probe, np.ndarray):  # numeric_only schemas probe with a matrix
                raise TypeError("a numeric model's probe rows must be a matrix")
            with _fast_sklearn_config():
                self._predict_proba, self._predict = fastpath.faster(pipeline, probe)

    @classmethod
    def load(cls, settings: Settings, name: str, version: str | None) -> LoadedModel:
        """Resolve ``version`` of ``name`` (the registry's current one when None), verify,
        deserialise, warm up. Raises ArtifactError for anything that stops it from serving."""
        path: Path = artifact.resolve(settings.models_dir, name, version)
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

    def predict(self, inputs: Inputs) -> Prediction:
        flagged = self.features.outside(inputs)
        X: Any = self.features.to_frame(inputs) if self.takes_frame else inputs
        try:
            with _fast_sklearn_config():
                if self._class_array is None:
                    values = self._predict(X)
                    return Prediction(np.asarray(values, dtype=np.float64).tolist(), None, flagged)
                if self._predict_proba is None:  # a classifier without probabilities
                    return Prediction([str(v) for v in self._predict(X)], None, flagged)
                proba = self._predict_proba(X)
        except ValueError as exc:
            raise ModelInputError(str(exc), self._unseen(inputs, flagged)) from exc
        # argmax of predict_proba is what predict() returns for these estimators,
        # and computing it here saves a second pass through the pipeline.
        labels = self._class_array[proba.argmax(axis=1)].tolist()
        return Prediction(labels, proba, flagged)

    def warm_up(self) -> None:
        """Predict typical rows once: proves the pipeline runs on this schema."""
        probe = self.features.probe()
        result = self.predict(probe[:2] if isinstance(probe, list) else probe[:1])
        if not result.labels:
            raise artifact.ArtifactError(f"warm-up of {self.name} {self.version} gave nothing")

    def _unseen(self, inputs: Inputs, flagged: np.ndarray | None) -> list[tuple[int, str]]:
        """Categories not seen in training among ``inputs`` (what a strict encoder refuses)."""
        if flagged is None or isinstance(inputs, np.ndarray):
            return []
        specs = self.features.specs
        return [
            (int(row), specs[col].name)
            for row, col in zip(*np.nonzero(flagged), strict=True)
            if specs[col].type == "category"
        ]


def describe(loaded: artifact.Artifact) -> dict[str, Any]:
    """The GET /model document."""
    meta = loaded.metadata
    return {
        "name": meta.name,
        "version": meta.version,
        "created_at": meta.created_at.isoformat(),
        "origin": meta.origin,
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
        "format": meta.format,
        "digest": f"sha256:{loaded.digest}",
        "fingerprint": meta.fingerprint,
        "signed": meta.signature is not None,
        "reference_profile": meta.reference is not None,
    }
