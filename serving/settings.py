"""The serving deployable's settings: read once from the environment, then passed around.

Every field is an environment variable of the same name in upper case (``MODELS_DIR``,
``DATABASE_URL`` …); CLI flags override them. docs/configuration.md lists each
with its default. Bad values fail at startup with the variable's name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from serving import artifact

MiB = 1024 * 1024
WORKERS_PER_CPU = 4
MAX_WORKERS = 64


class Settings(BaseSettings):
    """Configuration of ``python -m serving``; see docs/configuration.md."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    # Model
    models_dir: Path = Field(Path("models"), description="Root of the model registry.")
    model_name: str = Field(
        "breast_cancer",
        description="The default model (POST /predict, GET /model). Unset: breast_cancer if "
        "served, else the only served model.",
    )
    model_names: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="'a,b': serve only these models; empty: every model with a current version.",
    )
    model_version: str | None = Field(
        None,
        description="Pin the default model to this version (kept across reloads).",
    )
    model_retry_seconds: float = Field(
        10.0,
        ge=0,
        description="How often models with nothing loaded are tried again (0: never).",
    )
    model_allow_version_mismatch: bool = Field(
        False, description="Load artifacts pickled by another scikit-learn (unsafe)."
    )
    artifact_signing_key: SecretStr | None = Field(
        None, description="When set, only artifacts whose metadata carries this HMAC load."
    )
    model_allow_pickle: bool = Field(
        False,
        description="Load unsigned joblib/pickle artifacts (they can run code; logged each time).",
    )
    model_trusted_types: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Types a skops artifact may need beyond the safe list: 'mod.Name,pkg.*'.",
    )

    # HTTP
    host: str = Field("127.0.0.1", description="Interface to listen on.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port to listen on.")
    workers: int = Field(
        1,
        ge=1,
        description="Worker processes sharing the port under a supervising parent, each with "
        "its own spool slot (docs/scaling.md); at most 4 per CPU and 64.",
    )
    max_body_bytes: int = Field(4 * MiB, ge=1024, description="Largest request body (413).")
    max_batch_rows: int = Field(1000, ge=1, description="Most instances in one request (422).")
    api_keys: Annotated[dict[str, SecretStr], NoDecode] = Field(
        default_factory=dict,
        description="'client=key,client2=key2'; when set, every route but the probes needs a key.",
    )
    admin_token: SecretStr | None = Field(
        None, description="When set, /admin/* needs 'Authorization: Bearer <token>'."
    )
    metrics_public: bool = Field(
        False, description="Open /metrics to scrapers without an API key (when API_KEYS is set)."
    )
    drain_seconds: float = Field(
        10.0, gt=0, description="On SIGTERM, how long in-flight requests and the log may take."
    )
    access_log: bool = Field(False, description="uvicorn's per-request access log.")
    log_level: str = Field("info", pattern="^(critical|error|warning|info|debug)$")

    # Connections: what one client connection may send and hold (docs/security.md).
    max_header_bytes: int = Field(
        32 * 1024,
        ge=1024,
        le=MiB,
        description="Largest request head (request line and headers), in bytes (431).",
    )
    max_headers: int = Field(100, ge=8, le=10_000, description="Most header fields (431).")
    header_timeout_seconds: float = Field(
        10.0, gt=0, description="A request head must arrive within this of its first byte (408)."
    )
    body_timeout_seconds: float = Field(
        30.0, gt=0, description="A request body must arrive within this of its head (408)."
    )
    keepalive_timeout_seconds: int = Field(
        5, ge=1, description="Close a connection idle this long, before or between requests."
    )
    max_connections: int = Field(
        4096,
        ge=1,
        description="Most open connections; at the cap the longest-idle one is closed for a "
        "new one. Lowered at startup to leave a quarter of RLIMIT_NOFILE free.",
    )

    # Micro-batching: concurrent requests share one predict call.
    batch_max_rows: int = Field(
        4096, ge=1, description="Most rows one coalesced predict call may hold."
    )

    # Prediction log
    database_url: str = Field(
        "sqlite:///var/predictions.db",
        description="postgresql://… or sqlite:///path; where predictions are logged.",
    )
    log_predictions: bool = Field(
        True, description="Log every prediction (off only for benchmarking the difference)."
    )
    spool_dir: Path = Field(
        Path("var/spool"), description="Local append-only spool, written before each response."
    )
    spool_max_bytes: int = Field(
        256 * MiB, ge=MiB, description="Spool cap; at the cap /predict answers 503."
    )
    log_batch_rows: int = Field(5000, ge=1, description="Most rows per database write.")
    log_retry_max_seconds: float = Field(
        5.0, gt=0, description="Longest backoff between retries while the database is down."
    )
    log_flush_interval_seconds: float = Field(
        0.1, gt=0, le=60, description="How often the writer drains a spool below one batch."
    )
    spool_segment_bytes: int = Field(
        8 * MiB,
        ge=64 * 1024,
        description="Spool file size before rolling to a new one (at most a quarter of the cap).",
    )
    spool_fsync_interval_seconds: float | None = Field(
        None,
        gt=0,
        description="Opt-in: fsync the spool this often, so records survive power loss too.",
    )
    database_read_url: str | None = Field(
        None,
        description="URL of a role that may SELECT, for log queries; defaults to DATABASE_URL.",
    )
    log_writer_connections: int = Field(
        2,
        ge=1,
        le=16,
        description="PostgreSQL connections draining the spool in parallel (SQLite uses one).",
    )
    # Log queries made for clients (GET /predictions); docs/prediction-log.md, "Query limits".
    monitoring_interval_seconds: float = Field(
        300.0,
        ge=0,
        description="How often drift and live quality gauges are refreshed (0: never).",
    )
    monitoring_window_seconds: float = Field(
        3600.0, gt=0, description="The window of predictions those gauges look at."
    )
    database_pool_size: int = Field(
        4,
        ge=1,
        le=100,
        description="Threads, and most database connections, that the log's queries may use.",
    )
    database_query_timeout_seconds: float = Field(
        3.0,
        gt=0,
        le=60,
        description="How long a log query may wait for a thread and a connection (also the"
        " PostgreSQL connect timeout); past it the answer is 503 with Retry-After.",
    )
    database_statement_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="Longest a log query may run (PostgreSQL statement_timeout; SQLite"
        " interrupts it); past it the answer is 503 with Retry-After.",
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_api_keys(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        keys: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in value.split(","))):
            client, sep, key = item.partition("=")
            if not sep or not client.strip() or not key.strip():
                raise ValueError("API_KEYS must look like 'client=key,client2=key2'")
            keys[client.strip()] = key.strip()
        return keys

    @field_validator("workers")
    @classmethod
    def _check_workers(cls, value: int) -> int:
        cpus = len(os.sched_getaffinity(0))
        limit = min(MAX_WORKERS, WORKERS_PER_CPU * cpus)
        if value > limit:
            raise ValueError(
                f"at most {limit} ({WORKERS_PER_CPU} per CPU this process may use, of which "
                f"there are {cpus}, and never more than {MAX_WORKERS})"
            )
        return value

    @field_validator("model_names", mode="before")
    @classmethod
    def _parse_model_names(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @field_validator("model_trusted_types", mode="before")
    @classmethod
    def _parse_trusted_types(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            return artifact.check_patterns(str(part) for part in value)
        return value

    @field_validator("database_url", "database_read_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(
            ("postgresql://", "postgres://", "sqlite:///")
        ):
            raise ValueError("a database URL must start with postgresql:// or sqlite:///")
        return value
