"""One live server for the connection tests, with short timeouts so that they run fast."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live import LiveServer, live_server

TIMEOUT = 1.0  # HEADER_TIMEOUT_SECONDS, BODY_TIMEOUT_SECONDS, KEEPALIVE_TIMEOUT_SECONDS
MAX_BODY_BYTES = 2048


@pytest.fixture(scope="package")
def limited_server(
    models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    env = {
        "HEADER_TIMEOUT_SECONDS": str(TIMEOUT),
        "BODY_TIMEOUT_SECONDS": str(TIMEOUT),
        "KEEPALIVE_TIMEOUT_SECONDS": str(int(TIMEOUT)),
        "MAX_BODY_BYTES": str(MAX_BODY_BYTES),
        "LOG_LEVEL": "warning",
    }
    with live_server(models_dir, tmp_path_factory.mktemp("connections"), env=env) as server:
        yield server
