"""Typed dependencies, so route signatures read like prose."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from serving.auth import check_admin, client_for, presented_token
from serving.state import AppState

# Dependencies are `async def` on purpose: FastAPI runs plain `def` dependencies in a
# thread pool, which costs more than the whole prediction on the hot path.


async def get_state(request: Request) -> AppState:
    return cast(AppState, request.state.app)


StateDep = Annotated[AppState, Depends(get_state)]


async def get_client(request: Request, state: StateDep) -> str | None:
    """The calling client's id when API keys are configured; None when access is open."""
    keys = state.settings.api_keys
    return client_for(presented_token(request), keys) if keys else None


ClientDep = Annotated[str | None, Depends(get_client)]


async def require_admin(request: Request, state: StateDep) -> None:
    check_admin(presented_token(request), state.settings.admin_token)


AdminDep = Annotated[None, Depends(require_admin)]
