"""``python -m training``: train a model and manage the registry of its versions.

Exit codes: 0 done (or nothing to do), 1 the registry or an artifact refused the operation,
2 bad input (flags, config, data, hyper-parameters, environment), 3 the quality gate
refused the new version (it stays registered, not current). User errors print one clear
message on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from serving import artifact
from training import job, registry, report
from training.data import BUILTIN_DATASETS, DataError
from training.options import OptionsError, describe, load_config, merge, parse_param
from training.pipelines import ESTIMATORS, PipelineError
from training.settings import TrainingSettings

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_GATE = 0, 1, 2, 3
DEFAULT_NAME = "breast_cancer"
_TRAIN_FLAGS = "dataset data target task model seed name cv_folds test_size min_score tolerance"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Train, evaluate and register scikit-learn models; manage their versions.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train, evaluate, register, promote if it passes")
    source = train.add_mutually_exclusive_group()
    source.add_argument("--dataset", choices=list(BUILTIN_DATASETS), help="built-in dataset")
    source.add_argument("--data", type=Path, metavar="FILE.csv", help="CSV file with a header")
    train.add_argument("--target", help="target column of the CSV")
    train.add_argument("--task", choices=["classification", "regression"], help="CSV only")
    train.add_argument("--model", choices=list(ESTIMATORS), help="default: per task")
    train.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="estimator hyper-parameter, value as TOML/JSON literal (repeatable)",
    )
    train.add_argument("--config", type=Path, metavar="FILE.toml", help="options as TOML")
    train.add_argument("--seed", type=int, help="random seed (default 0)")
    train.add_argument("--cv-folds", type=int, help="k-fold CV on the training part (default 5)")
    train.add_argument("--test-size", type=float, help="held-out fraction (default 0.2)")
    train.add_argument("--min-score", type=float, help="gate: minimum primary metric")
    train.add_argument("--tolerance", type=float, help="gate: allowed drop vs current")
    train.add_argument("--force", action="store_true", help="promote even if the gate refuses")
    train.add_argument(
        "--if-missing",
        action="store_true",
        help="do nothing when the model already has a current version (unless forced)",
    )

    commands.add_parser("list", help="versions, primary metric, which is current")
    promote = commands.add_parser("promote", help="make a version current")
    promote.add_argument("version")
    commands.add_parser("rollback", help="make the previously promoted version current")
    commands.add_parser("history", help="promotions and rollbacks, oldest first")
    show = commands.add_parser("show", help="metadata of a version (default: current)")
    show.add_argument("version", nargs="?")
    for sub in commands.choices.values():
        sub.add_argument("--models-dir", type=Path, help="registry root (env MODELS_DIR)")
        sub.add_argument("--name", help="model name (env MODEL_NAME)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = TrainingSettings()
    except ValidationError as exc:
        return _fail(f"invalid environment: {describe(exc, env=True)}", EXIT_USAGE)
    if args.models_dir is not None:
        settings = settings.model_copy(update={"models_dir": args.models_dir})
    try:
        if args.command == "train":
            return _train(args, settings)
        return _registry_command(args, settings)
    except (OptionsError, DataError, PipelineError, job.TrainingError) as exc:
        return _fail(str(exc), EXIT_USAGE)
    except artifact.ArtifactError as exc:
        return _fail(str(exc), EXIT_REFUSED)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)


def _train(args: argparse.Namespace, settings: TrainingSettings) -> int:
    config = load_config(args.config) if args.config else {}
    flags: dict[str, Any] = {key: getattr(args, key) for key in _TRAIN_FLAGS.split()}
    options = merge(config, flags, dict(parse_param(item) for item in args.param))
    force = args.force or settings.train_force
    name = job.model_name(options, settings)
    if args.if_missing and not force:
        try:
            path = artifact.resolve(settings.models_dir, name)
        except artifact.ArtifactNotFoundError:
            pass
        else:
            print(
                f"model {name!r} already has a current version ({path.name}) in "
                f"{settings.models_dir}; nothing to do (--if-missing). "
                "Pass --force or set TRAIN_FORCE=1 to retrain."
            )
            return EXIT_OK
    outcome = job.run(options, settings, force=force, log=_log)
    print(report.summary(outcome))
    if not outcome.promoted:
        return _fail(
            f"quality gate refused {name} {outcome.metadata.version}: "
            + "; ".join(outcome.gate.failures),
            EXIT_GATE,
        )
    return EXIT_OK


def _registry_command(args: argparse.Namespace, settings: TrainingSettings) -> int:
    models_dir = settings.models_dir
    name = job.checked_name(args.name or settings.model_name or DEFAULT_NAME)
    key = settings.signing_key()
    if args.command == "list":
        print(report.versions_table(name, models_dir, registry.rows(models_dir, name)))
    elif args.command == "promote":
        entry = registry.promote(
            models_dir, name, args.version, reason="promoted by hand", signing_key=key
        )
        print(report.history_line(entry) if entry else f"{args.version} is already current")
    elif args.command == "rollback":
        print(report.history_line(registry.rollback(models_dir, name, signing_key=key)))
    elif args.command == "history":
        entries = registry.read_history(models_dir, name)
        for entry in entries:
            print(f"{entry.at:%Y-%m-%d %H:%M:%S} {report.history_line(entry)}  {entry.reason}")
        if not entries:
            print(f"no promotions of model {name!r} recorded in {models_dir}")
    else:  # show
        path = artifact.resolve(models_dir, name, args.version)
        meta = artifact.verify(path, signing_key=key)
        checked = "sha256 of every file" + (" and the metadata signature" if key else "")
        current = artifact.read_current(models_dir, name) == meta.version
        print(report.describe(meta, path, current=current, verified=f"ok ({checked})"))
    return EXIT_OK


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code
