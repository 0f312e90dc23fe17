"""uvicorn's httptools protocol, with limits on what one connection may send and hold.

A thin subclass of uvicorn 0.54's ``HttpToolsProtocol``: every request still goes through
uvicorn's parser callbacks and ``RequestResponseCycle``; this adds bookkeeping around them.
It relies on these uvicorn internals (tests/serving/connections/test_uvicorn_internals.py
fails when one changes): the protocol's ``parser``, ``transport``, ``cycle``,
``pipeline``, ``url``, ``headers`` (a new list for each request, made in
``on_message_begin``), ``loop``, ``client``, ``server_state``,
``timeout_keep_alive(_task)``, ``timeout_keep_alive_handler``,
``_unset_keepalive_if_required``, ``send_400_response``, ``_should_upgrade``,
``handle_websocket_upgrade`` and ``_unsupported_upgrade_warning``; the cycle's
``transport`` (of which it uses ``write``, ``close``, ``is_closing``), ``keep_alive``,
``response_started``, ``response_complete``, ``disconnected`` and ``message_event``.
``data_received`` replaces uvicorn's (the same parser calls) so that a refusal raised in
a parser callback is answered here rather than by uvicorn's plain-text 400.

A connection is in one of these phases, each with its own bound:
- idle (no byte of a request yet): closed after KEEPALIVE_TIMEOUT_SECONDS (uvicorn arms
  that timer only after a response; here also when the connection opens);
- receiving the head: at most MAX_HEADER_BYTES and MAX_HEADERS (431), within
  HEADER_TIMEOUT_SECONDS of its first byte (408); transfer codings other than chunked 501;
- receiving the body: within BODY_TIMEOUT_SECONDS of the head (408, or a close once the
  response has started);
- answered before the request was all in (a 413 on Content-Length, or a refusal above):
  the rest is read and dropped, up to a bound, before the connection closes, so that the
  client reads the answer instead of a reset (Python's urllib sends the whole body before
  it reads anything, with ``Connection: close``).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, ClassVar, cast

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from serving.connections.cap import OpenConnections
from serving.connections.limits import ConnectionLimits
from serving.connections.refusals import (
    TRANSFER_ENCODING,
    RefusalLog,
    check_head,
    error_response,
    too_large_head,
    transfer_coding_problem,
)


class _RefusedError(Exception):
    """Raised in a parser callback to stop parsing; the refusal is in ``_refusal``."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with ``limits``; ``protocol_class`` binds them."""

    limits: ClassVar[ConnectionLimits]
    open_connections: ClassVar[OpenConnections]
    refusals: ClassVar[RefusalLog]

    # Slots, not the instance dict: uvicorn's protocol already keeps 28 attributes there,
    # and past 30 CPython stops sharing the dict's keys, which slows every attribute access
    # of every request (measured: a third of this class's cost without them).
    __slots__ = (
        "_body_pending",
        "_close_when_read",
        "_deadline",
        "_discarded",
        "_done_headers",
        "_head_bytes",
        "_head_pending",
        "_lingering",
        "_refusal",
        "_whole",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_pending = True  # waiting for (the rest of) a request head
        # uvicorn's headers list of the last complete request: while the head is pending,
        # ``self.headers is not self._done_headers`` once a byte of the next one was parsed.
        self._done_headers: list[tuple[bytes, bytes]] | None = None
        self._whole = False  # every read holding that head was counted in _head_bytes
        self._head_bytes = 0
        self._body_pending = False  # the head is in, the body is not
        self._deadline: asyncio.TimerHandle | None = None  # head, body or linger deadline
        self._close_when_read = False  # close once the body is in (the cycle closed early)
        self._lingering = False  # refused: the parser is done; bytes are dropped until close
        self._discarded = 0
        self._refusal: tuple[int, str] | None = None

    # Connection lifetime

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.open_connections.opened(self)
        if not transport.is_closing():
            self._arm_idle_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        self._unset_keepalive_if_required()
        self.open_connections.closed(self)
        super().connection_lost(exc)

    def close_idle(self) -> bool:
        """Close to make room under MAX_CONNECTIONS; False while a request is in the app."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and not cycle.disconnected:
            return False
        self.transport.close()
        return True

    def close_after_request(self, cycle: RequestResponseCycle) -> None:
        """What ``cycle``'s ``transport.close()`` does: wait for the rest of its body when
        the response is complete but the request is not."""
        if cycle is self.cycle and self._body_pending and cycle.response_complete:
            self._close_when_read = True
        else:
            self.transport.close()

    # Bytes in

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        # After a refusal, or an answer sent before the body was in (then the parser
        # still reads the body, and drops it), count what arrives.
        if (
            self._lingering or (self._body_pending and self.cycle.response_complete)
        ) and self._dropped(len(data)):
            return
        if self._head_pending:
            if self.headers is self._done_headers:
                self._whole = True
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError:
            if self._refusal is not None:
                self._refuse(*self._refusal)
            else:  # uvicorn's answer to a malformed request
                msg = "Invalid HTTP request received."
                self.logger.warning(msg)
                self.send_400_response(msg)
            return
        # A request that arrives in one read (the usual case) leaves nothing to do here.
        if self._head_pending:
            if self._head_bytes or self.headers is not self._done_headers:
                self._partial_head()
        elif self._body_pending and self._deadline is None:
            self._partial_body()

    def _partial_head(self) -> None:
        limits = self.limits
        if self._head_bytes > limits.max_header_bytes:
            self._refuse(431, too_large_head(limits))
        elif self._deadline is None:
            self._deadline = self.loop.call_later(limits.header_timeout, self._head_late)

    def _partial_body(self) -> None:
        self._deadline = self.loop.call_later(self.limits.body_timeout, self._body_late)
        # The cycle may close the connection only once the body is all in.
        self.cycle.transport = cast(asyncio.Transport, _CycleTransport(self, self.cycle))

    # Parser callbacks: uvicorn's, with bookkeeping. (Base methods are called by name, not
    # through super(): cheaper on the path every request takes.)

    def on_headers_complete(self) -> None:
        self._head_pending = False
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        limits = self.limits
        headers = self.headers
        # _head_bytes counts whole reads: exact unless the head shared a read with the
        # previous request (then it is measured) or with its body (then it may be).
        if (
            len(headers) > limits.max_headers
            or not self._whole
            or self._head_bytes > limits.max_header_bytes
        ):
            self._refusal = check_head(self.url, headers, limits)
        else:
            self._refusal = None
            for name, _ in headers:
                if name == TRANSFER_ENCODING:
                    self._refusal = transfer_coding_problem(headers)
        if self._refusal is not None:
            raise _RefusedError
        HttpToolsProtocol.on_headers_complete(self)
        self._body_pending = True
        self.open_connections.active(self)

    def on_message_complete(self) -> None:
        self._body_pending = False
        self._head_pending = True
        self._done_headers = self.headers
        self._whole = False
        self._head_bytes = 0
        self._discarded = 0
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self.cycle.response_complete:
            # The response went out before this body was in; uvicorn arms no keep-alive
            # timer for the time after it.
            if self._close_when_read:
                self.transport.close()
            else:
                self._arm_idle_timer()
            return
        HttpToolsProtocol.on_message_complete(self)

    # Limits

    def _head_late(self) -> None:
        self._deadline = None
        seconds = self.limits.header_timeout
        self._refuse(408, f"Request head not received in {seconds:g} s (HEADER_TIMEOUT_SECONDS)")

    def _body_late(self) -> None:
        limits = self.limits
        if self.pipeline:
            # This request waits behind another (reading is paused meanwhile): not its fault.
            self._deadline = self.loop.call_later(limits.body_timeout, self._body_late)
            return
        self._deadline = None
        if self.cycle.response_started:  # answered (or answering): no 408 any more
            self.transport.close()
            return
        seconds = limits.body_timeout
        self._refuse(408, f"Request body not received in {seconds:g} s (BODY_TIMEOUT_SECONDS)")

    def _refuse(self, status: int, detail: str) -> None:
        """Answer ``status`` and close, unless a response is already under way."""
        transport = self.transport
        if transport.is_closing():
            return
        self._cancel_deadline()
        self._unset_keepalive_if_required()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if self._head_pending or not self._body_pending:
                # A pipelined head behind a request still in the app: that one finishes,
                # then the connection closes; this one gets no answer.
                cycle.keep_alive = False
                self._lingering = True
                return
            # This request's body timed out: its app call sees a disconnect from now on.
            cycle.disconnected = True
            cycle.message_event.set()
            if cycle.response_started:
                transport.close()
                return
        self.refusals.refused(_peer(self.client), status, detail)
        transport.write(error_response(status, detail, self.server_state.default_headers))
        self._linger()

    def _linger(self) -> None:
        """Half-close, then drop what the client still sends (up to the discard bound, for
        at most the body timeout), so that it reads the answer instead of a reset."""
        self._lingering = True
        self._discarded = 0
        transport = self.transport
        if transport.can_write_eof():
            transport.write_eof()
        self._deadline = self.loop.call_later(self.limits.body_timeout, transport.close)

    def _dropped(self, size: int) -> bool:
        """Count ``size`` bytes read after an early answer; True when they are not for the
        parser (lingering after a refusal, or the connection closed at the bound)."""
        self._discarded += size
        if self._discarded > self.limits.discard_bytes:
            self.transport.close()
            return True
        return self._lingering

    def _arm_idle_timer(self) -> None:
        self._unset_keepalive_if_required()
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


class _CycleTransport:
    """The transport a request's cycle sees while the request's body is still arriving:
    the connection's, except that ``close`` waits until the body is in. uvicorn closes
    right after the response when the client sent ``Connection: close``; closing a socket
    with unread data makes the kernel send a reset, which can destroy the response."""

    __slots__ = ("close", "is_closing", "write")

    def __init__(self, protocol: LimitedHttpToolsProtocol, cycle: RequestResponseCycle) -> None:
        transport = protocol.transport
        self.write: Callable[[bytes], None] = transport.write
        self.is_closing: Callable[[], bool] = transport.is_closing
        self.close: Callable[[], None] = functools.partial(protocol.close_after_request, cycle)


def protocol_class(limits: ConnectionLimits) -> type[LimitedHttpToolsProtocol]:
    """A protocol class for one server: ``limits`` and its own count of open connections."""

    class Protocol(LimitedHttpToolsProtocol):
        pass

    Protocol.limits = limits
    Protocol.open_connections = OpenConnections(limits.max_connections)
    Protocol.refusals = RefusalLog()
    return Protocol


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "client"
