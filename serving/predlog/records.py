"""What the API hands to the prediction log, and what the log hands back to queries.

The API builds records on the hot path, so they hold the arrays it already has; turning
them into one row per instance, with features and probabilities keyed by name, is the
log's work, off the request path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np

if TYPE_CHECKING:
    from serving.predlog.feedback import FeedbackRecord
    from serving.predlog.queries import Filters, Queries
    from serving.predlog.reading import Connector

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ModelSchema:
    """Names shared by every record of one model version."""

    name: str
    version: str
    feature_names: tuple[str, ...]
    classes: tuple[str, ...] | None
    """Column order of ``PredictionRecord.probabilities``; None for regressors."""
    feature_kinds: tuple[str, ...] | None = None
    """'number', 'category' or 'boolean' per feature; None when all are numbers."""
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The spool looks encoders up by schema on every append: hashing every feature
        # name each time was a tenth of a logged request's cost.
        fields = (self.name, self.version, self.feature_names, self.classes, self.feature_kinds)
        object.__setattr__(self, "_hash", hash(fields))

    def __hash__(self) -> int:
        return self._hash


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """One answered request; the log stores it as ``len(features)`` rows."""

    request_id: str
    created_at: float
    """Unix time (seconds) when the request arrived."""
    model: ModelSchema
    features: np.ndarray | list[list[Any]]
    """(rows, features) float64, columns in ``model.feature_names`` order; or, for a typed
    model, one list of JSON values (numbers, strings, booleans, None) per row."""
    predictions: Sequence[str] | Sequence[float] | np.ndarray
    """One per row: the class label (str) of a classifier, the value of a regressor."""
    probabilities: np.ndarray | None
    """(rows, classes) float64, columns in ``model.classes`` order; None for regressors."""
    latency_ms: float
    client_id: str | None = None
    client_request_id: str | None = None
    """The client's own id for the request (X-Request-ID, or an inference request's id)."""


@dataclass(frozen=True, slots=True)
class LoggedPrediction:
    """One row of the ``predictions`` table, as queries return it."""

    request_id: str
    row_index: int
    created_at: datetime
    model_name: str
    model_version: str
    features: dict[str, Any]
    """By feature name, typed as sent: numbers, strings, booleans, None."""
    prediction: str
    probabilities: dict[str, float] | None
    latency_ms: float
    client_id: str | None
    client_request_id: str | None = None


@dataclass(frozen=True, slots=True)
class LoggedLabel:
    """One row of the ``feedback`` relation with the prediction it labels, when logged."""

    received_at: datetime
    request_id: str
    row_index: int
    label: Any
    model_name: str | None
    """None (with the version and prediction) while no logged prediction matches."""
    model_version: str | None
    prediction: str | None


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a query, newest first; ``next_cursor`` is None on the last page."""

    items: list[LoggedPrediction]
    next_cursor: str | None


class LogFullError(Exception):
    """The spool is at its cap: the request must be refused (503) and retried later."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LogUnavailableError(Exception):
    """The spool cannot be written (disk error), or the store cannot be queried: 503."""


class LogDisabledError(LogUnavailableError):
    """Logging is off (LOG_PREDICTIONS=false): there is nothing to record labels in."""


class InvalidCursorError(ValueError):
    """A pagination cursor that this log did not hand out (or that was altered): 4xx."""


@dataclass(frozen=True, slots=True)
class LogStatus:
    """The log's state for /ready: ``accepting`` False means /predict must refuse."""

    accepting: bool
    reason: str | None
    store: str
    """'postgresql', 'sqlite' or 'disabled'."""
    store_problem: str | None
    """The store refuses this configuration (no such database, a wrong password...): records
    are spooled, but nothing will reach the store until someone fixes it; not ready."""
    store_reachable: bool
    spooled_bytes: int
    oldest_unwritten_age_s: float | None


class PredictionLog(Protocol):
    """The durable prediction log as the API sees it."""

    def start(self) -> None:
        """Apply migrations, replay what an earlier process left in the spool, start writing."""

    def append(self, records: Sequence[PredictionRecord]) -> None:
        """Durably spool ``records`` before the response is sent; cheap, non-blocking.

        Raises LogFullError at the spool cap and LogUnavailableError when the spool
        cannot be written; either way nothing of ``records`` was accepted.
        """

    def append_feedback(self, records: Sequence[FeedbackRecord]) -> None:
        """Durably spool labels before the response is sent, as ``append`` does predictions.

        Raises LogFullError, LogUnavailableError (LogDisabledError when logging is off).
        """

    def status(self) -> LogStatus: ...

    def sample_metrics(self) -> None:
        """Set the log's gauges from its state (before a scrape; serving/metrics.py)."""

    async def query_page(self, filters: Filters, limit: int, cursor: str | None) -> Page:
        """Logged rows matching ``filters``, newest first, at most ``limit`` (>= 1).

        Pass the page's ``next_cursor`` back for the next page. Runs on the log's own query
        threads within its bounds (docs/prediction-log.md, "Query limits"). Raises
        InvalidCursorError for a cursor it did not issue, and LogUnavailableError (with a
        message fit for clients) when the store cannot answer in time.
        """

    async def read(self, work: Callable[[Queries], T]) -> T:
        """``work`` on the query threads, within the same bounds as ``query_page``."""

    async def read_connected(self, work: Callable[[Connector], T]) -> T:
        """``work(connector)`` within the same bounds, for other readers (monitoring)."""

    def cancel_queries(self) -> None:
        """Refuse new queries and cancel the running ones; returns at once.

        For the start of shutdown: queries then never hold up the drain.
        """

    def close(self, timeout: float) -> None:
        """Write what is spooled to the store within ``timeout`` seconds, then stop.

        What cannot be written in time stays in the spool for the next start.
        """
