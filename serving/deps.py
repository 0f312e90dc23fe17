"""Typed dependencies, so route signatures read like prose."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from serving.state import AppState

# Dependencies are `async def` on purpose: FastAPI runs plain `def` dependencies in a
# thread pool, which costs more than a whole prediction.


async def get_state(request: Request) -> AppState:
    return cast(AppState, request.state.app)


StateDep = Annotated[AppState, Depends(get_state)]


async def get_client(request: Request) -> str | None:
    """The calling client's id (set by the request pipeline); None when access is open."""
    return cast(str | None, request.state.client_id)


ClientDep = Annotated[str | None, Depends(get_client)]
