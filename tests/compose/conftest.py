"""The compose stack under test: built and started once per session, removed with ``down -v``.

Only tests marked ``compose`` use it (``make compose-test``); they need a Docker engine.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.compose.stack import ComposeStack


@pytest.fixture(scope="session")
def stack() -> Iterator[ComposeStack]:
    """`docker compose build` then `up -d` of this checkout, ready to serve; `down -v` after."""
    stack = ComposeStack()
    problem = stack.engine_problem()
    if problem is not None:
        pytest.fail(problem)
    started = time.monotonic()
    stack.run("build", timeout=1800)
    built = time.monotonic()
    try:
        stack.run("up", "-d", timeout=600)
        stack.wait_ready()
        print(
            f"\ncompose stack {stack.project}: build {built - started:.0f}s, "
            f"up to ready {time.monotonic() - built:.0f}s"
        )
        yield stack
    finally:
        stack.run("down", "-v", "--remove-orphans", check=False)
