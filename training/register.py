"""Register a model fitted elsewhere (a notebook, a script): ``training.register(model, X, y,
name=...)`` (docs/training.md, "Register a fitted model").

``X, y`` are evaluation data, ideally rows the model did not learn from: the feature schema
comes from ``X`` (a DataFrame's column names and dtypes, or an array with
``feature_names=``), the metrics and the reference profile are computed on them, and the
quality gate applies as for ``train``. The model is scored on ``X`` rebuilt with exactly
the recorded dtypes — what the service will feed it — so a model that cannot serve is
refused here. Nothing is registered when any check fails.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import is_classifier, is_regressor
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from serving import artifact
from training import custom
from training.dataset import DataError, Dataset, Task
from training.evaldata import evaluation_features
from training.evaluate import confusion, score
from training.job import Outcome, decide, one_line
from training.profile import reference_profile
from training.schema import conform, feature_specs
from training.settings import TrainingSettings
from training.train import final_step, git_commit

RegisterResult = Outcome
"""``result.version``, ``.promoted``, ``.path``, ``.gate``, ``.metadata``, ``.previous``."""


class RegisterError(ValueError):
    """The model or its evaluation data cannot be registered; the message says why."""


def register(
    model: Any,
    X: Any,
    y: Any,
    *,
    name: str,
    models_dir: Path | str | None = None,
    trusted: Sequence[str] = (),
    feature_names: Sequence[str] | None = None,
    min_score: float | None = None,
    tolerance: float | None = None,
    force: bool = False,
    task: Task | None = None,
    target: str = "target",
    source: str = "python",
    signing_key: bytes | None = None,
) -> RegisterResult:
    """Save ``model`` as a new version of ``name`` and promote it if the gate passes.

    ``trusted``: types the model needs beyond the safe list (``module.Name`` or
    ``module.*``), e.g. a custom transformer's class. ``models_dir``, ``min_score``,
    ``tolerance`` and ``signing_key`` default to the environment (MODELS_DIR,
    TRAIN_MIN_SCORE, TRAIN_TOLERANCE, ARTIFACT_SIGNING_KEY). Raises RegisterError for a
    model or data that cannot be registered, UntrustedTypeError for a type nobody trusted.
    """
    settings = TrainingSettings()
    root = Path(models_dir) if models_dir is not None else settings.models_dir
    key = signing_key if signing_key is not None else settings.signing_key()
    name = artifact.check_name(name)
    patterns = artifact.check_patterns(trusted)
    _check_model(model)
    try:
        X_eval, y_eval, names = evaluation_features(model, X, y, feature_names)
        specs = feature_specs(X_eval, X_eval, names)
        task = _task(model, task)
        labels = _labels(model, y_eval, task)
    except DataError as exc:
        raise RegisterError(str(exc)) from None
    features = conform(X_eval, specs) if isinstance(X_eval, pd.DataFrame) else X_eval
    data = Dataset(features, np.asarray(labels).astype(str), names, target, task, source)
    try:
        metrics = score(model, features, labels, task)
        predicted = np.asarray(model.predict(features))
        matrix = confusion(model, features, labels) if task == "classification" else None
    except Exception as exc:
        raise RegisterError(
            f"the model fails on its own evaluation data: {one_line(exc)}"
        ) from None
    if predicted.shape != (len(labels),):
        raise RegisterError(
            f"the model predicts shape {predicted.shape} for {len(labels)} rows; "
            "expected one value per row"
        )
    classes = [str(c) for c in model.classes_] if task == "classification" else None
    now = datetime.now(UTC)
    metadata = artifact.Metadata(
        name=name,
        version=artifact.new_version(now),
        created_at=now,
        origin="registered",
        task=task,
        estimator=type(final_step(model)).__name__,
        features=specs,
        target=target,
        classes=classes,
        metrics=metrics,
        confusion_matrix=matrix,
        seed=None,
        dataset=artifact.DatasetInfo(
            source=data.source,
            target=target,
            fingerprint=data.fingerprint,
            n_rows=len(labels),
            n_features=len(specs),
        ),
        libraries=artifact.installed_versions(),
        git_commit=git_commit(),
        reference=reference_profile(
            features, specs, predicted, source="evaluation", classes=classes
        ),
    )
    path = artifact.save(root, metadata, model, signing_key=key, trusted=patterns)
    try:
        loaded = artifact.load(path, signing_key=key, trusted_types=patterns)
        same = np.array_equal(np.asarray(loaded.pipeline.predict(features)), predicted)
    except Exception:
        shutil.rmtree(path, ignore_errors=True)
        raise
    if not same:
        shutil.rmtree(path, ignore_errors=True)
        raise artifact.ArtifactError(f"{name}: the saved model predicts differently; not kept")
    return decide(
        loaded.metadata,
        path,
        root,
        min_score=min_score if min_score is not None else settings.train_min_score,
        tolerance=tolerance if tolerance is not None else settings.train_tolerance,
        force=force,
        signing_key=key,
    )


def _check_model(model: Any) -> None:
    try:
        custom.check(model, "the model is", None)
    except custom.CustomPipelineError as exc:
        raise RegisterError(str(exc)) from None
    try:
        check_is_fitted(model)
    except NotFittedError:
        raise RegisterError(
            f"the model ({type(model).__name__}) is not fitted; fit it before registering"
        ) from None
    except TypeError as exc:
        raise RegisterError(f"the model cannot be checked: {exc}") from None


def _task(model: Any, task: Task | None) -> Task:
    inferred: Task | None = None
    if is_classifier(model) or (not is_regressor(model) and hasattr(model, "classes_")):
        inferred = "classification"
    elif is_regressor(model):
        inferred = "regression"
    if task is not None and inferred is not None and task != inferred:
        raise DataError(f"task {task!r} given, but the model is a {inferred} model")
    return task or inferred or "regression"


def _labels(model: Any, y: np.ndarray, task: Task) -> np.ndarray:
    """``y`` as the model's own labels (classes of its dtype), or floats for regression."""
    if task == "regression":
        try:
            values = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError("y must hold numbers for a regression model") from None
        if not np.isfinite(values).all():
            raise DataError("y holds missing or infinite values")
        return values
    classes = getattr(model, "classes_", None)
    if classes is None:
        raise DataError("the classifier has no classes_; is it fitted?")
    lookup = {str(c): c for c in classes}
    names = [str(v) for v in pd.Series(y).tolist()]
    unknown = sorted(set(names) - set(lookup))
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:5])
        raise DataError(
            f"y holds labels the model does not know: {shown}; its classes are "
            + ", ".join(map(str, lookup))
        )
    return np.asarray([lookup[n] for n in names], dtype=np.asarray(classes).dtype)
