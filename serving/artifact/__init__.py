"""The model artifact: the on-disk format training writes and serving trusts.

A version lives in ``<models_dir>/<name>/<version>/`` as ``model.skops`` (one fitted
scikit-learn estimator, usually a ``Pipeline``; ``model.joblib`` for older versions) and
``metadata.json`` (everything needed to trust and serve it, including the sha256 of every
other file). ``<models_dir>/<name>/current`` names the version to serve and is replaced
atomically.

Loading reads the model's bytes once, checks their digest against the metadata and only
then deserialises those same bytes, under a trust policy (see docs/training.md,
"Trust policy"): skops with exactly the recorded trusted types, each safe or allowed by
the operator; a pickle only when the metadata is signed or the operator opted in. With a
signing key, the metadata itself carries an HMAC, so rewriting the digests along with the
model is refused too.

Modules: ``metadata`` (metadata.json and the library check), ``layout`` (folders, versions,
the current pointer), ``integrity`` (digests, signature), ``codec`` (skops or joblib bytes,
the fingerprint), ``trust`` (the safe list and the operator's patterns), ``store`` (save,
verify, load), ``files`` (durable writes), ``errors``. Callers use the names re-exported
here.
"""

from serving.artifact.errors import (
    ArtifactError,
    ArtifactNotFoundError,
    DigestMismatchError,
    LibraryVersionMismatchError,
    SignatureError,
)
from serving.artifact.files import atomic_write
from serving.artifact.layout import (
    CURRENT_POINTER,
    JOBLIB_FILE,
    METADATA_FILE,
    MODEL_FILE,
    SKOPS_FILE,
    check_name,
    is_version,
    list_models,
    list_versions,
    model_dir,
    new_version,
    read_current,
    resolve,
    unknown_model,
    version_dir,
    write_current,
)
from serving.artifact.metadata import (
    SCHEMA_VERSION,
    ArtifactFormat,
    CategoryProfile,
    DatasetInfo,
    FeatureProfile,
    FeatureSpec,
    FeatureType,
    LibraryVersions,
    Metadata,
    NumberProfile,
    ReferenceProfile,
    check_library_versions,
    installed_versions,
)
from serving.artifact.store import (
    STALE_STAGING_SECONDS,
    Artifact,
    load,
    read_metadata,
    save,
    verify,
)
from serving.artifact.trust import UntrustedTypeError, check_patterns

__all__ = [
    "CURRENT_POINTER",
    "JOBLIB_FILE",
    "METADATA_FILE",
    "MODEL_FILE",
    "SCHEMA_VERSION",
    "SKOPS_FILE",
    "STALE_STAGING_SECONDS",
    "Artifact",
    "ArtifactError",
    "ArtifactFormat",
    "ArtifactNotFoundError",
    "CategoryProfile",
    "DatasetInfo",
    "DigestMismatchError",
    "FeatureProfile",
    "FeatureSpec",
    "FeatureType",
    "LibraryVersionMismatchError",
    "LibraryVersions",
    "Metadata",
    "NumberProfile",
    "ReferenceProfile",
    "SignatureError",
    "UntrustedTypeError",
    "atomic_write",
    "check_library_versions",
    "check_name",
    "check_patterns",
    "installed_versions",
    "is_version",
    "list_models",
    "list_versions",
    "load",
    "model_dir",
    "new_version",
    "read_current",
    "read_metadata",
    "resolve",
    "save",
    "unknown_model",
    "verify",
    "version_dir",
    "write_current",
]
