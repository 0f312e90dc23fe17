"""The uvicorn internals serving/connections/protocol.py relies on are still there.

uvicorn is pinned (0.54.0); when it changes, these fail before the limits silently stop
working. Review the subclass against the new HttpToolsProtocol, then update them.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import re
from pathlib import Path
from typing import cast

import uvicorn
from uvicorn._types import HTTPScope
from uvicorn.config import Config
from uvicorn.protocols.http import httptools_impl
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from serving.connections.protocol import LimitedHttpToolsProtocol

# sha256 of uvicorn/protocols/http/httptools_impl.py as reviewed.
REVIEWED = {"0.54.0": "1d4e1c579df4168433a61a01f10c628b31c1790e72dd9769d2b8633b22214033"}


async def _app(scope: object, receive: object, send: object) -> None:
    return None


def test_the_reviewed_httptools_protocol_is_installed() -> None:
    source = Path(inspect.getfile(httptools_impl)).read_bytes()
    assert REVIEWED.get(uvicorn.__version__) == hashlib.sha256(source).hexdigest(), (
        f"uvicorn {uvicorn.__version__}'s httptools_impl.py is not the one "
        "serving/connections/protocol.py was reviewed against"
    )


def test_the_methods_the_subclass_overrides_or_calls_exist() -> None:
    names = [
        "connection_made",
        "connection_lost",
        "data_received",
        "on_message_begin",
        "on_headers_complete",
        "on_message_complete",
        "on_response_complete",
        "timeout_keep_alive_handler",
        "_unset_keepalive_if_required",
        "send_400_response",
        "_should_upgrade",
        "handle_websocket_upgrade",
        "_unsupported_upgrade_warning",
    ]
    for name in names:
        assert callable(getattr(HttpToolsProtocol, name, None)), name
    overridden = {
        name
        for name, value in vars(LimitedHttpToolsProtocol).items()
        if callable(value) and not name.startswith("_")
    }
    assert overridden <= {*names, "close_idle", "close_after_request"}


def test_the_protocol_attributes_exist() -> None:
    loop = asyncio.new_event_loop()
    try:
        config = Config(_app, log_config=None)
        protocol = HttpToolsProtocol(config, ServerState(), {}, _loop=loop)
    finally:
        loop.close()
    for name in [
        "parser",
        "transport",
        "cycle",
        "pipeline",
        "headers",
        "loop",
        "server_state",
        "timeout_keep_alive",
        "timeout_keep_alive_task",
        "client",
    ]:
        assert hasattr(protocol, name), name
    assert hasattr(protocol.server_state, "default_headers")
    begin = inspect.getsource(HttpToolsProtocol.on_message_begin)
    assert "self.url = " in begin
    assert "self.headers = []" in begin  # a new list per request: the subclass relies on it


def test_the_cycle_attributes_exist_and_it_uses_only_write_close_is_closing() -> None:
    cycle = RequestResponseCycle(
        scope=cast(HTTPScope, {}),
        transport=cast(asyncio.Transport, None),
        flow=cast(FlowControl, None),
        logger=logging.getLogger("test"),
        access_logger=logging.getLogger("test"),
        access_log=False,
        default_headers=[],
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=True,
        on_response=lambda: None,
    )
    for name in ["transport", "keep_alive", "response_started", "response_complete"]:
        assert hasattr(cycle, name), name
    for name in ["disconnected", "message_event", "more_body"]:
        assert hasattr(cycle, name), name
    used = set(re.findall(r"self\.transport\.(\w+)", inspect.getsource(RequestResponseCycle)))
    assert used <= {"write", "close", "is_closing"}, used
