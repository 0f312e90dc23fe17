"""``python -m training convert``: a joblib (pickle) version becomes a new skops version.

Versions saved before skops became the format are pickles, which the service loads only
when signed or under ``MODEL_ALLOW_PICKLE`` (docs/training.md, "Trust policy"). Converting
one loads the pickle — after its digests (and signature, with a key) were checked, and only
because the operator vouched for it with ``--trust-pickle`` — and saves the same model as
skops under a new version id: same metadata content, new digests and fingerprint,
``converted_from`` naming the old version. The new version must predict exactly what the
old one does on probe rows built from the training statistics; when the old version was
current, the new one becomes current.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from serving import artifact
from training import registry
from training.schema import conform


class ConvertError(ValueError):
    """The version cannot be converted as asked; the message says what to do."""


def convert(
    models_dir: Path,
    name: str,
    version: str | None = None,
    *,
    trust_pickle: bool,
    trusted: Sequence[str] = (),
    signing_key: bytes | None = None,
) -> tuple[Path, bool]:
    """(the new version's folder, whether it became current)."""
    path = artifact.resolve(models_dir, name, version)
    old = artifact.verify(path, signing_key=signing_key)
    if old.format != "joblib":
        raise ConvertError(f"{name} {old.version} is already a {old.format} artifact")
    if not trust_pickle:
        raise ConvertError(
            f"converting {name} {old.version} loads its pickle, which can run code: pass "
            "--trust-pickle if you vouch for where it came from"
        )
    source = artifact.load(path, signing_key=signing_key, allow_pickle=True).pipeline
    now = datetime.now(UTC)
    new = old.model_copy(
        update={
            "version": artifact.new_version(now),
            "created_at": now,
            "converted_from": old.version,
            "libraries": artifact.installed_versions(),
        }
    )
    target = artifact.save(
        models_dir, new, source, signing_key=signing_key, format="skops", trusted=trusted
    )
    try:
        converted = artifact.load(target, signing_key=signing_key, trusted_types=trusted)
        same = _same_predictions(source, converted.pipeline, old)
    except Exception:
        shutil.rmtree(target, ignore_errors=True)
        raise
    if not same:
        shutil.rmtree(target, ignore_errors=True)
        raise artifact.ArtifactError(f"{target}: the converted model predicts differently")
    promoted = False
    if artifact.read_current(models_dir, name) == old.version:
        registry.promote(
            models_dir,
            name,
            target.name,
            reason=f"converted from {old.version} (joblib to skops)",
            signing_key=signing_key,
        )
        promoted = True
    return target, promoted


def probe_rows(metadata: artifact.Metadata, model: Any) -> Any:
    """Rows from the training statistics (means, minimums, maximums; the first category,
    True), as a float64 matrix or, for a model fitted on a DataFrame, a DataFrame."""
    columns: dict[str, list[Any]] = {}
    for spec in metadata.features:
        if spec.type == "number":
            columns[spec.name] = [spec.mean, spec.min, spec.max]
        elif spec.type == "boolean":
            columns[spec.name] = [True, False, True]
        else:
            columns[spec.name] = [(spec.categories or ["?"])[0]] * 3
    frame = pd.DataFrame(columns)
    if metadata.numeric_only and not hasattr(model, "feature_names_in_"):
        return frame.to_numpy(dtype=np.float64)
    return conform(frame, metadata.features)


def _same_predictions(old: Any, new: Any, metadata: artifact.Metadata) -> bool:
    rows = probe_rows(metadata, old)
    methods = ["predict", "predict_proba"] if hasattr(old, "predict_proba") else ["predict"]
    return all(np.array_equal(getattr(old, m)(rows), getattr(new, m)(rows)) for m in methods)
