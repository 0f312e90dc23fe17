"""One run of ``python -m training train``: data, fit, save, verify, gate, promote.

The fitting itself is :func:`training.train.fit`, the same function the notebook calls;
this module adds what a job needs around it: naming, the registry, the quality gate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from serving import artifact
from training import gate, registry
from training.data import Dataset, load_builtin, load_csv
from training.evaluate import PRIMARY_METRIC
from training.options import OptionsError, TrainOptions
from training.pipelines import PipelineError, default_estimator
from training.settings import TrainingSettings
from training.train import fit, save

Log = Callable[[str], None]


class TrainingError(ValueError):
    """Fitting failed because of the data or the hyper-parameters (scikit-learn's message)."""


@dataclass(frozen=True)
class Outcome:
    """What a run produced and decided, for the summary and the exit code."""

    metadata: artifact.Metadata
    path: Path
    gate: gate.GateResult
    promoted: bool
    forced: bool
    previous: str | None
    """The version that was current before this run."""
    notes: tuple[str, ...] = ()


def model_name(options: TrainOptions, settings: TrainingSettings) -> str:
    """``--name``, else ``MODEL_NAME``, else the dataset's name."""
    return checked_name(options.name or settings.model_name or options.source_name)


def checked_name(name: str) -> str:
    """``name`` if the registry accepts it; a bad name is a usage error, not a refusal."""
    try:
        return artifact.check_name(name)
    except artifact.ArtifactError as exc:
        raise OptionsError(str(exc)) from None


def load_dataset(options: TrainOptions) -> Dataset:
    if options.data is not None:
        assert options.target is not None  # TrainOptions guarantees it
        return load_csv(options.data, options.target, options.task)
    return load_builtin(options.dataset or "breast_cancer")


def run(options: TrainOptions, settings: TrainingSettings, *, force: bool, log: Log) -> Outcome:
    """Train, register a new version, promote it when the gate (or ``force``) allows."""
    name = model_name(options, settings)
    models_dir = settings.models_dir
    key = settings.signing_key()
    dataset = load_dataset(options)
    n_rows, n_features = dataset.X.shape
    log(
        f"training {name}: {options.model or default_estimator(dataset.task)} on {dataset.source} "
        f"({n_rows} rows, {n_features} features, {dataset.task}), seed {options.seed}"
    )
    metric = PRIMARY_METRIC[dataset.task]

    def on_fold(number: int, folds: int, metrics: dict[str, float]) -> None:
        others = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != metric)
        log(f"  CV fold {number}/{folds}  {metric} {metrics[metric]:.4f}  ({others})")

    try:
        trained = fit(
            dataset,
            estimator=options.model,
            params=options.params,
            seed=options.seed,
            test_size=options.test_size,
            cv_folds=options.cv_folds,
            progress=on_fold,
        )
    except PipelineError:
        raise
    except ValueError as exc:
        raise TrainingError(f"training failed: {exc}") from None
    path = save(trained, dataset, models_dir, name=name, signing_key=key)
    loaded = artifact.load(path, signing_key=key)
    X = trained.X_train
    if not np.array_equal(loaded.pipeline.predict(X), trained.pipeline.predict(X)):
        raise artifact.ArtifactError(f"{path}: the reloaded model predicts differently")
    with registry.lock(models_dir, name):
        notes: list[str] = []
        try:
            current = registry.current_metadata(models_dir, name)
        except artifact.ArtifactError as exc:
            current = None
            notes.append(f"current version unreadable, not compared: {exc}")
        previous = current.version if current else artifact.read_current(models_dir, name)
        result = gate.check(
            loaded.metadata,
            current,
            min_score=_first(options.min_score, settings.train_min_score),
            tolerance=settings.train_tolerance if options.tolerance is None else options.tolerance,
        )
        promoted = result.passed or force
        if promoted:
            reason = "quality gate passed" if result.passed else "forced past the quality gate"
            registry.promote(
                models_dir,
                name,
                loaded.metadata.version,
                reason=f"{reason}: {result.metric} {result.score:.4f}",
                signing_key=key,
            )
    return Outcome(
        loaded.metadata,
        path,
        result,
        promoted,
        forced=force and not result.passed,
        previous=previous,
        notes=tuple(notes),
    )


def _first(value: float | None, fallback: float | None) -> float | None:
    return value if value is not None else fallback
