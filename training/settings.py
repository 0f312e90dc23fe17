"""The training job's settings: environment variables, read once, overridden by CLI flags.

Every field is an environment variable of the same name in upper case (``MODELS_DIR``,
``TRAIN_MIN_SCORE`` …). docs/configuration.md ("Training") lists each with its default. A bad
value fails before any training starts, naming the variable.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class TrainingSettings(BaseSettings):
    """Configuration of ``python -m training``; flags of the same meaning take precedence."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    models_dir: Path = Field(Path("models"), description="Root of the model registry.")
    model_name: str | None = Field(
        None,
        description=(
            "Registry name of the model. Unset: `train` names the model after its dataset "
            "(the CSV file's stem), the other commands use 'breast_cancer'."
        ),
    )
    artifact_signing_key: SecretStr | None = Field(
        None,
        description="When set, metadata.json is signed (HMAC-SHA256) and checked on promotion.",
    )
    train_min_score: float | None = Field(
        None,
        description=(
            "Quality gate: lowest acceptable primary metric (balanced_accuracy or r2). "
            "Unset: 0.7 for classifiers, 0.1 for regressors."
        ),
    )
    train_tolerance: float = Field(
        0.02,
        ge=0,
        description="Quality gate: how far below the current version's primary metric is allowed.",
    )
    train_force: bool = Field(
        False,
        description="Retrain even with --if-missing, and promote whatever the quality gate says.",
    )

    def signing_key(self) -> bytes | None:
        """The HMAC key as bytes, or None when signing is off."""
        key = self.artifact_signing_key
        return key.get_secret_value().encode() if key and key.get_secret_value() else None
