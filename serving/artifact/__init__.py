"""The model artifact: the on-disk format training writes and serving trusts.

A version lives in ``<models_dir>/<name>/<version>/`` as ``model.joblib`` (one fitted
scikit-learn ``Pipeline``) and ``metadata.json`` (everything needed to trust and serve it,
including the sha256 of every other file). ``<models_dir>/<name>/current`` names the
version to serve and is replaced atomically.

Pickle runs code, so loading reads the bytes once, checks their digest against the
metadata and only then unpickles those same bytes: a tampered or truncated file never
reaches ``joblib.load``. With a signing key, the metadata itself carries an HMAC, so
rewriting the digests along with the pickle is refused too.

Modules: ``metadata`` (metadata.json and the library check), ``layout`` (folders, versions,
the current pointer), ``integrity`` (digests, signature), ``store`` (save, verify, load),
``files`` (durable writes), ``errors``. Callers use the names re-exported here.
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
    METADATA_FILE,
    MODEL_FILE,
    check_name,
    list_versions,
    model_dir,
    new_version,
    read_current,
    resolve,
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

__all__ = [
    "CURRENT_POINTER",
    "METADATA_FILE",
    "MODEL_FILE",
    "SCHEMA_VERSION",
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
    "atomic_write",
    "check_library_versions",
    "check_name",
    "installed_versions",
    "list_versions",
    "load",
    "model_dir",
    "new_version",
    "read_current",
    "read_metadata",
    "resolve",
    "save",
    "verify",
    "version_dir",
    "write_current",
]
