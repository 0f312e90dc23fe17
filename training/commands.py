"""The registry commands of ``python -m training``: register, convert, list, show, promote,
rollback, history. Each raises the errors :mod:`training.cli` maps to exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import skops.io as sio

from serving import artifact
from serving.artifact import trust
from training import job, registry, report
from training.convert import convert
from training.csvfile import read_csv
from training.dataset import DataError
from training.options import OptionsError
from training.register import RegisterError, register
from training.settings import TrainingSettings

DEFAULT_NAME = "breast_cancer"
Args = argparse.Namespace
Version = str | None
Key = bytes | None


def run(args: argparse.Namespace, settings: TrainingSettings) -> job.Outcome | None:
    """Do one registry command; the outcome of ``register`` (for its gate), else None."""
    models_dir = settings.models_dir
    key = settings.signing_key()
    given = args.name or settings.model_name
    version = getattr(args, "version", None)
    if version is not None and not artifact.is_version(version):
        raise OptionsError(
            f"{version!r} is not a version id (YYYYMMDD-HHMMSS-ffffff, as `python -m "
            "training list` shows them)"
        )
    if args.command == "register":
        if not given:
            raise OptionsError("register needs the model's name: --name NAME (or MODEL_NAME)")
        outcome = _register(args, settings, job.checked_name(given), key)
        print(report.summary(outcome))
        return outcome
    if args.command == "list" and not given:
        print(report.models_table(models_dir, registry.model_rows(models_dir)))
        return None
    name = job.checked_name(given or DEFAULT_NAME)
    if not artifact.list_versions(models_dir, name):
        raise artifact.ArtifactNotFoundError(artifact.unknown_model(models_dir, name))
    _HANDLERS[args.command](args, models_dir, name, version, key)
    return None


def _list(args: Args, root: Path, name: str, _: Version, __: Key) -> None:
    print(report.versions_table(name, root, registry.rows(root, name)))


def _convert(
    args: argparse.Namespace, root: Path, name: str, version: str | None, key: Key
) -> None:
    trusted = _trusted(args)
    path, promoted = convert(
        root, name, version, trust_pickle=args.trust_pickle, trusted=trusted, signing_key=key
    )
    meta = artifact.read_metadata(path)
    print(
        f"converted {name} {meta.converted_from} (joblib) to {meta.version} (skops) in "
        f"{path}; trusted types: {', '.join(meta.trusted_types) or 'none'}"
        + ("; it is now current" if promoted else "")
    )


def _promote(_: Args, root: Path, name: str, version: Version, key: Key) -> None:
    if version is None:  # argparse requires it
        raise OptionsError("promote needs a VERSION")
    entry = registry.promote(root, name, version, reason="promoted by hand", signing_key=key)
    print(report.history_line(entry) if entry else f"{version} is already current")


def _rollback(_: Args, root: Path, name: str, __: Version, key: Key) -> None:
    print(report.history_line(registry.rollback(root, name, signing_key=key)))


def _history(_: Args, root: Path, name: str, __: Version, ___: Key) -> None:
    entries = registry.read_history(root, name)
    for entry in entries:
        print(f"{entry.at:%Y-%m-%d %H:%M:%S} {report.history_line(entry)}  {entry.reason}")
    if not entries:
        print(f"no promotions of model {name!r} recorded in {root}")


def _show(_: Args, root: Path, name: str, version: Version, key: Key) -> None:
    path = artifact.resolve(root, name, version)
    meta = artifact.verify(path, signing_key=key)
    checked = "sha256 of every file" + (" and the metadata signature" if key else "")
    current = artifact.read_current(root, name) == meta.version
    print(report.describe(meta, path, current=current, verified=f"ok ({checked})"))


_HANDLERS: dict[str, Callable[[Args, Path, str, Version, Key], None]] = {
    "list": _list,
    "convert": _convert,
    "promote": _promote,
    "rollback": _rollback,
    "history": _history,
    "show": _show,
}


def _register(
    args: argparse.Namespace, settings: TrainingSettings, name: str, key: bytes | None
) -> job.Outcome:
    trusted = _trusted(args)
    model = load_model_file(args.model_file, trusted)
    data = read_csv(args.data, args.target, args.task)
    force = args.force or settings.train_force
    log(f"registering {name}: {type(model).__name__} from {args.model_file}, evaluated on "
        f"{data.source} ({len(data.y)} rows)")  # fmt: skip
    return register(
        model,
        data.X,
        data.y,
        name=name,
        models_dir=settings.models_dir,
        trusted=trusted,
        feature_names=None if data.is_frame else data.feature_names,
        min_score=args.min_score,
        tolerance=args.tolerance,
        force=force,
        task=args.task,
        target=data.target,
        source=data.source,
        signing_key=key,
    )


def _trusted(args: Args) -> list[str]:
    try:
        return artifact.check_patterns(args.trust or [])
    except ValueError as exc:
        raise OptionsError(f"--trust: {exc}") from None


def load_model_file(path: Path, trusted: list[str]) -> Any:
    """A fitted model from a file the user made: ``.skops`` loads with the safe list plus
    ``trusted``; anything else is unpickled with joblib, which runs the user's own code."""
    if not path.is_file():
        raise DataError(f"{path}: no such model file")
    try:
        if path.suffix == ".skops":
            needed = sio.get_untrusted_types(file=path)
            trust.check(
                needed, trusted, where=str(path), how="name them with --trust if you vouch for them"
            )
            return sio.load(path, trusted=needed)
        return joblib.load(path)
    except artifact.ArtifactError:
        raise
    except Exception as exc:
        raise RegisterError(f"{path}: cannot load the model: {job.one_line(exc)}") from None


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
