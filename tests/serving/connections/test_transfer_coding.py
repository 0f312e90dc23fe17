"""Transfer codings: chunked only (RFC 9112 §6.1: 501 for a coding the server does not
understand; §6.3: 400 when chunked is not the final one)."""

from __future__ import annotations

import pytest

from tests.live import LiveServer
from tests.serving.connections.raw import exchange, json_body, status_of

BODY = b'{"instances": []}'
CHUNKED = b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY)


def _post(*lines: bytes) -> bytes:
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    return head + b"".join(line + b"\r\n" for line in lines) + b"\r\n"


@pytest.mark.parametrize(
    "lines",
    [
        [b"Transfer-Encoding: gzip, chunked"],
        [b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked"],
        [b"Transfer-Encoding: identity, chunked"],
    ],
)
def test_a_coding_besides_chunked_is_501(limited_server: LiveServer, lines: list[bytes]) -> None:
    reply = exchange(limited_server.port, _post(*lines) + CHUNKED)
    assert status_of(reply) == 501
    assert "only chunked" in json_body(reply)["detail"]  # type: ignore[index]


def test_chunked_not_last_is_400(limited_server: LiveServer) -> None:
    reply = exchange(limited_server.port, _post(b"Transfer-Encoding: gzip") + BODY)
    assert status_of(reply) == 400


@pytest.mark.parametrize("coding", [b"chunked", b"CHUNKED", b" chunked "])
def test_plain_chunked_reaches_the_app(limited_server: LiveServer, coding: bytes) -> None:
    request = _post(b"Transfer-Encoding: " + coding, b"Connection: close") + CHUNKED
    reply = exchange(limited_server.port, request)
    assert status_of(reply) == 422  # the app's answer to an empty instances list
