"""``--pipeline FILE.py:FUNC`` or ``module:FUNC``: the user's own, unfitted estimator.

The function is called as ``FUNC(seed=SEED)`` when it has a parameter named ``seed``,
else as ``FUNC()``. Then every ``random_state`` parameter of the estimator and its nested
steps that is still None is set to the seed, so the same seed and data always give the
same model (docs/training.md, "Your own pipeline").

``FILE.py`` is imported as a module named after the file (``penguin_pipeline`` for
``notebooks/penguin_pipeline.py``), with its folder put first on ``sys.path``, as
``python FILE.py`` would: classes and functions defined there are saved under that module
name, so a notebook that imports the same file registers the very same types.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from sklearn.base import is_classifier, is_regressor

from training.dataset import Task


class CustomPipelineError(ValueError):
    """The --pipeline spec does not give a usable, unfitted estimator; the message says why."""


def build(spec: str, *, seed: int, task: Task) -> Any:
    """The estimator ``spec`` names, checked and seeded; CustomPipelineError otherwise."""
    func = resolve(spec)
    try:
        accepts_seed = "seed" in inspect.signature(func).parameters
    except (TypeError, ValueError):
        accepts_seed = False
    try:
        estimator = func(seed=seed) if accepts_seed else func()
    except Exception as exc:
        raise CustomPipelineError(
            f"--pipeline {spec}: {_call(func)} raised {type(exc).__name__}: {exc}"
        ) from None
    check(estimator, f"--pipeline {spec}: {_call(func)} returned", task)
    return seeded(estimator, seed)


def resolve(spec: str) -> Any:
    """The callable of ``FILE.py:FUNC`` or ``module:FUNC``."""
    where, sep, attr = spec.rpartition(":")
    if not sep or not where or not attr.isidentifier():
        raise CustomPipelineError(
            f"--pipeline {spec!r}: expected FILE.py:FUNCTION or module:FUNCTION"
        )
    module = _import_file(Path(where), spec) if where.endswith(".py") else _import(where, spec)
    func = getattr(module, attr, None)
    if func is None:
        raise CustomPipelineError(f"--pipeline {spec}: {where} has no {attr!r}")
    if not callable(func):
        raise CustomPipelineError(f"--pipeline {spec}: {attr!r} is not a function")
    return func


def check(estimator: Any, what: str, task: Task | None) -> None:
    """Refuse what is not a scikit-learn estimator that predicts (and fits the task)."""
    if not (hasattr(estimator, "fit") and hasattr(estimator, "get_params")):
        raise CustomPipelineError(
            f"{what} {type(estimator).__name__}, not a scikit-learn estimator "
            "(it needs fit and get_params)"
        )
    if not hasattr(estimator, "predict"):
        raise CustomPipelineError(f"{what} a {type(estimator).__name__}, which has no predict")
    if task == "classification" and is_regressor(estimator):
        raise CustomPipelineError(f"{what} a regressor, but the target is classes")
    if task == "regression" and is_classifier(estimator):
        raise CustomPipelineError(
            f"{what} a classifier, but the target is numbers (pass --task classification)"
        )


def seeded(estimator: Any, seed: int) -> Any:
    """``estimator`` with every ``random_state`` that is None (nested ones too) set to seed."""
    unset = {
        key: seed
        for key, value in estimator.get_params(deep=True).items()
        if (key == "random_state" or key.endswith("__random_state")) and value is None
    }
    if unset:
        estimator.set_params(**unset)
    return estimator


def _import(name: str, spec: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise CustomPipelineError(f"--pipeline {spec}: no module named {exc.name!r}") from None
    except Exception as exc:
        raise CustomPipelineError(
            f"--pipeline {spec}: importing {name} raised {type(exc).__name__}: {exc}"
        ) from None


def _import_file(path: Path, spec: str) -> ModuleType:
    if not path.is_file():
        raise CustomPipelineError(f"--pipeline {spec}: no such file {path}")
    name = path.stem
    if not name.isidentifier():
        raise CustomPipelineError(f"--pipeline {spec}: {path.name} is not a module file name")
    folder = str(path.resolve().parent)
    loaded = sys.modules.get(name)
    if loaded is not None:
        if Path(getattr(loaded, "__file__", "") or "").resolve() == path.resolve():
            return loaded
        raise CustomPipelineError(
            f"--pipeline {spec}: a module named {name!r} is already imported from elsewhere"
        )
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return _import(name, spec)


def _call(func: Any) -> str:
    return f"{getattr(func, '__name__', 'the function')}()"
