"""What the writer thread needs from a store, whichever database is behind it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from serving.predlog.lines import SpooledRecord


class StoreUnavailableError(Exception):
    """The store cannot take writes right now (down, restarting, locked): retry later."""


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

    def encode(self, records: Sequence[SpooledRecord]) -> Encoded:
        """Turn records into rows (pure CPU, any thread); RowsRejectedError if malformed."""

    def write(self, batch: Encoded) -> int:
        """Insert the batch in one transaction; returns rows new to the store.

        Raises StoreUnavailableError (retry) or RowsRejectedError (bad values).
        """

    def ping(self) -> bool:
        """True when the store answers now."""

    def interrupt(self) -> None:
        """From another thread: abort the write in progress (shutdown's deadline passed)."""

    def close(self) -> None: ...


class TimeText:
    """Formats Unix seconds as text with microseconds; caches the whole-second part.

    Records of a batch mostly share their second, and strftime is the slow part.
    """

    def __init__(self, seconds_format: str, fraction_format: bytes) -> None:
        self.seconds_format = seconds_format
        self.fraction_format = fraction_format
        self._second = -1
        self._prefix = b""

    def __call__(self, unix: float) -> bytes:
        second = int(unix // 1)
        micro = round((unix - second) * 1e6)
        if micro >= 1_000_000:
            second, micro = second + 1, micro - 1_000_000
        if second != self._second:
            moment = datetime.fromtimestamp(second, UTC)
            self._second, self._prefix = second, moment.strftime(self.seconds_format).encode()
        return self._prefix + self.fraction_format % micro
