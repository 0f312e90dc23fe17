"""Which types a skops artifact may make its loader trust (docs/training.md, "Trust policy").

skops refuses to build any object whose type it does not trust by default unless the caller
names that type. An artifact records the names it needs (``trusted_types``); this module
decides whether a loader may pass them on:

- **built-in safe list**: classes of scikit-learn, NumPy and SciPy (skops does not trust
  some of their internals by default, such as ``sklearn.tree._tree.Tree``, ``TreePredictor``
  and ``numpy.dtype``), NumPy ufuncs, and a short allow-list of functions and helpers;
- **operator's patterns** (``MODEL_TRUSTED_TYPES`` when serving, ``--trust`` / ``trusted=``
  when training): exact type names or ``module.*`` for everything in a module;
- anything else is refused, naming the type and the setting, unless the metadata is signed
  with the configured key (the signer vouched for it).
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Iterable, Sequence

import numpy as np

from serving.artifact.errors import ArtifactError

SAFE_PACKAGES = ("sklearn", "numpy", "scipy")
SAFE_NAMES = frozenset(
    {
        # partial's function and arguments are themselves checked by skops, one by one.
        "functools.partial",
        # HistGradientBoosting* fitted with categorical_features="from_dtype" keeps these.
        "sklearn.utils.validation.check_array",
        "sklearn.preprocessing._function_transformer._identity",
    }
)
# Never import these to look a name up: test helpers, scripts, C callbacks.
_UNSAFE_PARTS = frozenset(
    {"_testing", "tests", "testing", "conftest", "externals", "f2py", "_ccallback", "ctypeslib"}
)
_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*(\.\*)?$")


class UntrustedTypeError(ArtifactError):
    """A model needs a type that is neither on the safe list nor allowed by the operator."""

    def __init__(self, types: Sequence[str], message: str) -> None:
        super().__init__(message)
        self.types = list(types)


def check_patterns(patterns: Iterable[str]) -> list[str]:
    """The patterns, stripped; ValueError for one that is not ``a.b.Name`` or ``a.b.*``."""
    checked = []
    for raw in patterns:
        pattern = raw.strip()
        if not _PATTERN.match(pattern):
            raise ValueError(
                f"{raw!r} is not a type name (module.Name) or a module pattern (module.*)"
            )
        checked.append(pattern)
    return checked


def allowed_by(name: str, patterns: Iterable[str]) -> bool:
    """Whether ``name`` equals a pattern, or lies in a module a ``module.*`` pattern names."""
    for pattern in patterns:
        if pattern.endswith(".*"):
            if name.startswith(pattern[:-1]):
                return True
        elif name == pattern:
            return True
    return False


@functools.lru_cache(maxsize=512)
def is_safe(name: str) -> bool:
    """Whether ``name`` is on the built-in safe list (imports only sklearn, numpy, scipy)."""
    if name in SAFE_NAMES:
        return True
    parts = name.split(".")
    if parts[0] not in SAFE_PACKAGES or _UNSAFE_PARTS.intersection(parts):
        return False
    if any(part.startswith("__") or not part.isidentifier() for part in parts):
        return False
    obj = _resolve(parts)
    return isinstance(obj, type | np.ufunc)


def _resolve(parts: list[str]) -> object | None:
    """The object a dotted name designates, trying the longest importable module first."""
    for split in range(len(parts) - 1, 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attr in parts[split:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                return None
        return obj
    return None


def untrusted(types: Iterable[str], patterns: Iterable[str]) -> list[str]:
    """The types that are neither safe nor allowed by ``patterns``, sorted."""
    allowed = list(patterns)
    return sorted({t for t in types if not is_safe(t) and not allowed_by(t, allowed)})


def check(types: Iterable[str], patterns: Iterable[str], *, where: str, how: str) -> None:
    """Refuse ``types`` that need trust nobody gave; ``how`` says how to give it."""
    refused = untrusted(types, patterns)
    if refused:
        raise UntrustedTypeError(
            refused,
            f"{where} needs types that are not trusted: {', '.join(refused)}; {how}",
        )
