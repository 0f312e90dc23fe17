"""Request ids: the server's own for every request, and the client's correlation id.

The server makes a new UUIDv7 for every request: the ``request_id`` of the response and
the prediction log's key, so that no client input can keep an answered prediction out of
the log. A client's ``X-Request-ID`` is only a correlation id: echoed in the response and
stored beside the rows as ``client_request_id`` (docs/serving.md, "Request ids").
"""

from __future__ import annotations

import os
import time

from serving.errors import InvalidInputError, entry

REQUEST_ID_HEADER = b"x-request-id"
MAX_CLIENT_REQUEST_ID = 128


def new_request_id() -> str:
    """A UUIDv7 (RFC 9562): time-ordered, so the log's unique index on request ids grows
    at its right edge instead of at random places (Python 3.11 has no uuid.uuid7).

    Formatted by hand: it runs once per request and ``uuid.UUID`` costs twice as much.
    """
    ms = f"{time.time_ns() // 1_000_000:012x}"
    rand = os.urandom(10).hex()
    # 48-bit ms | version 7 + 12 random bits | variant 10 + 14 random bits | 48 random bits
    variant = _VARIANT[rand[3]]
    return f"{ms[:8]}-{ms[8:]}-7{rand[:3]}-{variant}{rand[4:7]}-{rand[8:20]}"


# The variant's two top bits are 10: a random hex digit keeps its low two bits.
_VARIANT = {f"{d:x}": f"{0x8 | (d & 0x3):x}" for d in range(16)}


def client_request_id_from(supplied: bytes | None) -> str | None:
    """The client's correlation id: 1 to 128 printable ASCII characters, or None."""
    if supplied is None:
        return None
    printable = all(0x20 <= b < 0x7F for b in supplied)
    if not 0 < len(supplied) <= MAX_CLIENT_REQUEST_ID or not printable:
        msg = f"X-Request-ID must be 1 to {MAX_CLIENT_REQUEST_ID} printable ASCII characters"
        raise InvalidInputError([entry(["header", "x-request-id"], msg, "string_pattern")])
    return supplied.decode("ascii")
