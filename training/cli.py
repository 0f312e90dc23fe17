"""``python -m training``: train or register models and manage the registry of their versions.

Exit codes (docs/training.md, "Exit codes"): 0 done (or nothing to do), 1 the registry or an
artifact refused the operation (unknown model or version, tampered files), 2 bad input
(flags, config, data, a malformed version id, a --pipeline or model that cannot be used, a
type nobody trusted, environment), 3 the quality gate refused the new version (it stays
registered, not current). User errors print one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from serving import artifact
from training import commands, job, report
from training.convert import ConvertError
from training.custom import CustomPipelineError
from training.data import BUILTIN_DATASETS, DataError
from training.options import OptionsError, describe, load_config, merge, parse_param
from training.pipelines import ESTIMATORS, PipelineError
from training.register import RegisterError
from training.settings import TrainingSettings

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_GATE = 0, 1, 2, 3
_TRAIN_FLAGS = (
    "dataset data target task model pipeline trust seed name cv_folds test_size min_score tolerance"
)
_USAGE_ERRORS = (
    OptionsError,
    DataError,
    PipelineError,
    CustomPipelineError,
    RegisterError,
    ConvertError,
    job.TrainingError,
    artifact.UntrustedTypeError,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Train, register and convert scikit-learn models; manage their versions.",
    )
    commands_ = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands_.add_parser("train", help="train, evaluate, register, promote if it passes")
    source = train.add_mutually_exclusive_group()
    source.add_argument("--dataset", choices=list(BUILTIN_DATASETS), help="built-in dataset")
    source.add_argument("--data", type=Path, metavar="FILE.csv", help="CSV file with a header")
    train.add_argument("--target", help="target column of the CSV")
    train.add_argument("--task", choices=["classification", "regression"], help="CSV only")
    train.add_argument("--model", choices=list(ESTIMATORS), help="default: per task")
    train.add_argument(
        "--pipeline",
        metavar="FILE.py:FUNC",
        help="your own unfitted estimator: FILE.py:FUNC or module:FUNC (called with seed=)",
    )
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

    register = commands_.add_parser("register", help="register a model fitted elsewhere")
    register.add_argument("model_file", type=Path, metavar="MODEL_FILE", help=".joblib/.pkl/.skops")
    register.add_argument("--data", type=Path, required=True, metavar="EVAL.csv")
    register.add_argument("--target", required=True, help="target column of the CSV")
    register.add_argument("--task", choices=["classification", "regression"])
    register.add_argument("--min-score", type=float, help="gate: minimum primary metric")
    register.add_argument("--tolerance", type=float, help="gate: allowed drop vs current")
    register.add_argument("--force", action="store_true", help="promote even if the gate refuses")

    convert = commands_.add_parser("convert", help="a joblib version as a new skops version")
    convert.add_argument("version", nargs="?", help="default: the current version")
    convert.add_argument(
        "--trust-pickle", action="store_true", help="you vouch for the pickle: load it"
    )

    commands_.add_parser("list", help="all models, or one model's versions with --name")
    promote = commands_.add_parser("promote", help="make a version current")
    promote.add_argument("version")
    commands_.add_parser("rollback", help="make the previously promoted version current")
    commands_.add_parser("history", help="promotions and rollbacks, oldest first")
    show = commands_.add_parser("show", help="metadata of a version (default: current)")
    show.add_argument("version", nargs="?")
    for command in (train, register, convert):
        command.add_argument(
            "--trust",
            action="append",
            metavar="module.Name",
            help="a type the model may need beyond the safe list, or module.* (repeatable)",
        )
    for sub in commands_.choices.values():
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
        return _dispatch(args, settings)
    except _USAGE_ERRORS as exc:
        return _fail(str(exc), EXIT_USAGE)
    except artifact.ArtifactError as exc:
        return _fail(str(exc), EXIT_REFUSED)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except BrokenPipeError:
        # The reader went away (`| head`): not an error; keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _dispatch(args: argparse.Namespace, settings: TrainingSettings) -> int:
    if args.command == "train":
        return _train(args, settings)
    outcome = commands.run(args, settings)
    if outcome is not None and not outcome.promoted:
        return _gate_refused(outcome)
    return EXIT_OK


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
    outcome = job.run(options, settings, force=force, log=commands.log)
    print(report.summary(outcome))
    return EXIT_OK if outcome.promoted else _gate_refused(outcome)


def _gate_refused(outcome: job.Outcome) -> int:
    meta = outcome.metadata
    return _fail(
        f"quality gate refused {meta.name} {meta.version}: " + "; ".join(outcome.gate.failures),
        EXIT_GATE,
    )


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code
