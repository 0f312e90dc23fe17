"""What one training run is asked to do: flags over a TOML config file over defaults.

A config file holds the same options as the flags, with underscores, and a ``[params]``
table for the estimator's hyper-parameters::

    dataset = "breast_cancer"
    model = "random_forest"
    seed = 0
    cv_folds = 5

    [params]
    n_estimators = 200
    max_depth = 8

Relative ``data`` paths (and ``pipeline = "FILE.py:FUNC"`` files) in a config file are
relative to the file. ``--param key=value``
values are TOML literals (``0.5``, ``true``, ``"balanced"``), or JSON (``null``), else taken
as a plain string (``solver=liblinear``).
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from serving.artifact import check_patterns
from training.data import BUILTIN_DATASETS, Task
from training.pipelines import ESTIMATORS

_NAME_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class OptionsError(ValueError):
    """A flag, a config file or a hyper-parameter is invalid; the message says which."""


class TrainOptions(BaseModel):
    """The inputs of one training run, validated before any data is read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str | None = None
    data: Path | None = None
    target: str | None = None
    task: Task | None = None
    model: str | None = None
    pipeline: str | None = None
    """``FILE.py:FUNC`` or ``module:FUNC`` returning the user's own unfitted estimator."""
    trust: list[str] = Field(default_factory=list)
    """Types beyond the safe list the model may need: ``module.Name`` or ``module.*``."""
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int = Field(0, ge=0, le=2**32 - 1)
    name: str | None = None
    cv_folds: int = Field(5, ge=0, le=100)
    test_size: float = Field(0.2, gt=0, lt=1)
    min_score: float | None = None
    tolerance: float | None = Field(None, ge=0)

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, value: str | None) -> str | None:
        if value is not None and value not in BUILTIN_DATASETS:
            raise ValueError(
                f"unknown dataset {value!r}; choose one of {', '.join(BUILTIN_DATASETS)}"
            )
        return value

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str | None) -> str | None:
        if value is not None and value not in ESTIMATORS:
            raise ValueError(f"unknown model {value!r}; choose one of {', '.join(ESTIMATORS)}")
        return value

    @field_validator("trust")
    @classmethod
    def _trust_patterns(cls, value: list[str]) -> list[str]:
        return check_patterns(value)

    @field_validator("cv_folds")
    @classmethod
    def _folds(cls, value: int) -> int:
        if value == 1:
            raise ValueError("cross-validation needs at least 2 folds (0 turns it off)")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> TrainOptions:
        if self.data is not None and self.dataset is not None:
            raise ValueError("give either a built-in dataset or a CSV file (data), not both")
        if self.data is not None and not self.target:
            raise ValueError("a CSV file (data) needs the name of its target column (target)")
        if self.data is None and (self.target is not None or self.task is not None):
            raise ValueError("target and task apply to a CSV file (data) only")
        if self.pipeline is not None and (self.model is not None or self.params):
            raise ValueError(
                "a --pipeline is your own estimator: model and params apply to built-in ones"
            )
        return self

    @property
    def source_name(self) -> str:
        """The model name used when none is given: the dataset's, or the CSV file's stem."""
        if self.data is not None:
            return _NAME_SAFE.sub("_", self.data.stem).strip("_.-")[:64] or "model"
        return self.dataset or "breast_cancer"


def parse_param(item: str) -> tuple[str, Any]:
    """``key=value`` into (key, value) with the value parsed as a TOML or JSON literal."""
    key, sep, raw = item.partition("=")
    key, raw = key.strip(), raw.strip()
    if not sep or not key:
        raise OptionsError(f"--param {item!r}: expected key=value, e.g. --param C=0.5")
    try:
        return key, tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        pass
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def load_config(path: Path) -> dict[str, Any]:
    """Read a TOML config file into option values; keys are checked by :func:`merge`."""
    try:
        config = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OptionsError(f"{path}: no such config file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise OptionsError(f"{path}: not valid TOML ({exc})") from None
    if isinstance(config.get("data"), str):
        config["data"] = Path(path).parent / config["data"]
    pipeline = config.get("pipeline")
    if isinstance(pipeline, str) and ".py:" in pipeline:
        config["pipeline"] = str(Path(path).parent / pipeline)
    return config


def merge(config: dict[str, Any], flags: dict[str, Any], params: dict[str, Any]) -> TrainOptions:
    """Flags (None means not given) over the config file; ``params`` over its [params]."""
    values = dict(config)
    # A source given on the command line replaces the config file's, whichever kind.
    if flags.get("dataset") is not None:
        for key in ("data", "target", "task"):
            values.pop(key, None)
    if flags.get("data") is not None:
        values.pop("dataset", None)
    values.update({key: value for key, value in flags.items() if value is not None})
    config_params = config.get("params", {})
    if not isinstance(config_params, dict):
        raise OptionsError("the config file's 'params' must be a table of hyper-parameters")
    values["params"] = {**config_params, **params}
    try:
        return TrainOptions.model_validate(values)
    except ValidationError as exc:
        raise OptionsError(describe(exc)) from None


def describe(exc: ValidationError, *, env: bool = False) -> str:
    """One line per problem naming the option (or environment variable), without URLs."""
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        if env:
            where = where.upper()
        elif where in TrainOptions.model_fields:
            where = f"{where} (--{where.replace('_', '-')})"
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {message}" if where else message)
    return "; ".join(lines)
