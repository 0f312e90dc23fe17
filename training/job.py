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
from training import custom, gate, registry
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

    @property
    def version(self) -> str:
        """The new version's id."""
        return self.metadata.version


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
        if options.target is None:  # TrainOptions refuses this; kept for python -O
            raise OptionsError("a CSV file (--data) needs its target column (--target)")
        return load_csv(options.data, options.target, options.task)
    return load_builtin(options.dataset or "breast_cancer")


def run(options: TrainOptions, settings: TrainingSettings, *, force: bool, log: Log) -> Outcome:
    """Train, register a new version, promote it when the gate (or ``force``) allows."""
    name = model_name(options, settings)
    models_dir = settings.models_dir
    key = settings.signing_key()
    dataset = load_dataset(options)
    own = None
    if options.pipeline is not None:
        own = custom.build(options.pipeline, seed=options.seed, task=dataset.task)
    n_rows, n_features = dataset.X.shape
    what = options.pipeline or options.model or default_estimator(dataset.task)
    log(
        f"training {name}: {what} on {dataset.source} "
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
            pipeline=own,
            pipeline_spec=options.pipeline,
        )
    except PipelineError:
        raise
    except Exception as exc:
        # A built-in pipeline fails with ValueError on bad data or parameters; a user's own
        # may raise anything: either way the cause is the input, not the registry.
        raise TrainingError(f"training failed: {one_line(exc)}") from None
    path = save(trained, dataset, models_dir, name=name, signing_key=key, trusted=options.trust)
    loaded = artifact.load(path, signing_key=key, trusted_types=options.trust)
    X = trained.X_train
    if not np.array_equal(loaded.pipeline.predict(X), trained.pipeline.predict(X)):
        raise artifact.ArtifactError(f"{path}: the reloaded model predicts differently")
    return decide(
        loaded.metadata,
        path,
        models_dir,
        min_score=_first(options.min_score, settings.train_min_score),
        tolerance=settings.train_tolerance if options.tolerance is None else options.tolerance,
        force=force,
        signing_key=key,
    )


def decide(
    metadata: artifact.Metadata,
    path: Path,
    models_dir: Path,
    *,
    min_score: float | None,
    tolerance: float,
    force: bool,
    signing_key: bytes | None,
) -> Outcome:
    """Gate a saved, verified version against the current one and promote it if it passes
    (or ``force``), under the model's registry lock."""
    name = metadata.name
    with registry.lock(models_dir, name):
        notes: list[str] = []
        try:
            current = registry.current_metadata(models_dir, name)
        except artifact.ArtifactError as exc:
            current = None
            notes.append(f"current version unreadable, not compared: {exc}")
        previous = current.version if current else artifact.read_current(models_dir, name)
        result = gate.check(metadata, current, min_score=min_score, tolerance=tolerance)
        promoted = result.passed or force
        if promoted:
            reason = "quality gate passed" if result.passed else "forced past the quality gate"
            registry.promote(
                models_dir,
                name,
                metadata.version,
                reason=f"{reason}: {result.metric} {result.score:.4f}",
                signing_key=signing_key,
            )
    return Outcome(
        metadata,
        path,
        result,
        promoted,
        forced=force and not result.passed,
        previous=previous,
        notes=tuple(notes),
    )


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (scikit-learn's span several); the type too,
    unless it is a ValueError (bad data or parameters)."""
    text = " ".join(str(exc).split())
    return text if isinstance(exc, ValueError) else f"{type(exc).__name__}: {text}"


def _first(value: float | None, fallback: float | None) -> float | None:
    return value if value is not None else fallback
