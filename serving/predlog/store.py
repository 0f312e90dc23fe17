"""What the writer thread needs from a store, whichever database is behind it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence

    from serving.predlog.feedback import FeedbackRecord
    from serving.predlog.reader import Rows


class StoreUnavailableError(Exception):
    """The store cannot take writes right now (down, restarting, locked): retry later."""


class StoreMisconfiguredError(StoreUnavailableError):
    """The store refuses this configuration (no such database or role, a wrong password, a
    role that may not write): retrying will not help until someone fixes DATABASE_URL.

    ``problem`` is our own short wording, fit for /ready; the message has the details."""

    def __init__(self, problem: str, detail: str) -> None:
        super().__init__(f"{problem}: {detail}")
        self.problem = problem


class RowsRejectedError(Exception):
    """The store refused these rows' values; retrying the same rows would fail again."""


@dataclass(frozen=True, slots=True)
class Encoded:
    """A batch in the store's own form (COPY text, parameter rows), ready to write."""

    rows: int
    data: Any


class Store(Protocol):
    """The writing side of a prediction store; used by one thread at a time."""

    kind: str
    """'postgresql' or 'sqlite'."""

    def open(self) -> None:
        """Get ready to connect; never blocks on the database being up."""

    def prepare(self) -> None:
        """Bring the schema up to date, or verify it is (raises migrations.SchemaError)."""

    def encode(self, rows: Rows) -> Encoded:
        """Spooled rows in the store's own form (pure CPU); RowsRejectedError if malformed."""

    def write(self, batch: Encoded) -> int:
        """Insert the batch in one transaction; returns rows new to the store.

        Raises StoreUnavailableError (retry) or RowsRejectedError (bad values).
        """

    def write_feedback(self, records: Sequence[FeedbackRecord]) -> int:
        """Upsert labels in one transaction, keeping for each row the one received last.

        Returns rows inserted or replaced; raises like ``write``.
        """

    def ping(self) -> bool:
        """True when the store answers now."""

    def interrupt(self) -> None:
        """From another thread: abort the write in progress (shutdown's deadline passed)."""

    def close(self) -> None: ...
