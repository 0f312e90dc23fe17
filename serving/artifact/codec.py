"""The fitted model's bytes: skops (loading runs no code) or joblib (pickle, runs code).

skops (``skops.io``) stores a model as data and rebuilds it from an explicit list of types;
a pickle is a program that ``joblib.load`` executes. So a version's ``format`` decides what
loading it needs (docs/training.md, "Trust policy"): a skops file loads with exactly the
trusted types recorded when it was saved, after :mod:`serving.artifact.trust` allowed
them; a joblib file loads only when its metadata is signed with the configured key, or
under the operator's explicit ``MODEL_ALLOW_PICKLE`` opt-in, logged on every load.

The fingerprint names the fitted model, not the file: skops files differ byte for byte
between two saves of one model (zip member names come from object ids, entries carry
timestamps), whereas the pickle bytes of equal models are equal.
"""

from __future__ import annotations

import hashlib
import io
import logging
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import joblib
import skops.io as sio
from skops.io.exceptions import UntrustedTypesFoundException

from serving.artifact import trust
from serving.artifact.errors import ArtifactError
from serving.artifact.metadata import ArtifactFormat, Metadata

logger = logging.getLogger("serving.artifact")

_HOW_TO_TRUST = (
    "allow them with MODEL_TRUSTED_TYPES (serving) or --trust (training) if you vouch "
    "for the code that defines them, or sign the metadata with ARTIFACT_SIGNING_KEY"
)


def dumps(model: Any, fmt: ArtifactFormat) -> tuple[bytes, list[str]]:
    """The model's bytes in ``fmt`` and, for skops, the types loading it must trust."""
    if fmt == "skops":
        try:
            data = sio.dumps(model)
        except Exception as exc:
            raise ArtifactError(
                f"the model cannot be saved with skops: {type(exc).__name__}: {exc}"
            ) from exc
        return data, sorted(sio.get_untrusted_types(data=data))
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue(), []


def fingerprint(model: Any) -> str:
    """``sha256:<hex>`` of the model's pickle bytes: equal for equal fitted models."""
    return f"sha256:{hashlib.sha256(pickle.dumps(model, protocol=5)).hexdigest()}"


def loads(
    data: bytes,
    metadata: Metadata,
    *,
    where: Path,
    signed: bool,
    allow_pickle: bool,
    trusted_types: Sequence[str],
) -> Any:
    """Rebuild the model from verified bytes, if the trust policy lets it load."""
    if metadata.format == "joblib":
        if not signed and not allow_pickle:
            raise ArtifactError(
                f"refusing {where}: a joblib (pickle) artifact runs code when it is loaded; "
                "it loads only when its metadata.json is signed with ARTIFACT_SIGNING_KEY "
                "or with MODEL_ALLOW_PICKLE=true; or convert it to skops with "
                f"`python -m training convert {metadata.version} --name {metadata.name} "
                "--trust-pickle`"
            )
        if not signed:
            logger.warning(
                "loading %s as a pickle because MODEL_ALLOW_PICKLE=true: unsigned pickles "
                "can run any code; convert it with `python -m training convert`",
                where,
            )
        return joblib.load(io.BytesIO(data))
    if not signed:
        trust.check(metadata.trusted_types, trusted_types, where=f"{where}", how=_HOW_TO_TRUST)
    try:
        return sio.loads(data, trusted=list(metadata.trusted_types))
    except UntrustedTypesFoundException as exc:
        raise ArtifactError(
            f"refusing {where}: it holds types its metadata.json does not record as trusted ({exc})"
        ) from None
    except Exception as exc:
        raise ArtifactError(
            f"refusing {where}: not a readable skops file ({type(exc).__name__}: {exc})"
        ) from None
