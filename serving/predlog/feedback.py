"""Ground truth: the labels clients send for predictions the log holds.

A label names its prediction by the ids a ``/predict`` answer returns (``request_id``,
``row_index``). Both stores write a batch of labels as upserts that keep, for each row, the
label received last (``received_at``; within one batch, the later record): a replayed
older batch never overwrites a newer label, and replaying a batch twice changes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    """One label for one predicted instance."""

    request_id: str
    row_index: int
    label: Any
    """The true value as a JSON value: a class label (string) or a number."""
    received_at: float
    """Unix time (seconds) when the server accepted the label."""
    client_id: str | None = None

    def label_json(self) -> str:
        """The label as JSON text (ValueError if it is not a JSON value)."""
        try:
            return orjson.dumps(self.label).decode()
        except TypeError as exc:
            raise ValueError(f"label of {self.request_id}/{self.row_index}: {exc}") from exc

    def canonical_request_id(self) -> str:
        """The request id in UUID's canonical form (ValueError if it is not a UUID)."""
        return str(uuid.UUID(self.request_id))

    def received(self) -> datetime:
        return datetime.fromtimestamp(self.received_at, UTC)
