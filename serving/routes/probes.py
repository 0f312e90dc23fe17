"""GET /health (liveness) and GET /ready (readiness), honest about why not."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from serving.catalog import ServedModel
from serving.deps import StateDep
from serving.errors import json_response
from serving.schemas import Health, Readiness
from serving.state import AppState

router = APIRouter(tags=["probes"])


@router.get("/health", response_model=Health, summary="Liveness: the process serves HTTP")
async def health() -> Response:
    return json_response(200, {"status": "ok"})


@router.get(
    "/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready; `reasons` says why."}},
    summary="Readiness: verified, warmed models are loaded and the log accepts records",
)
async def ready(state: StateDep) -> Response:
    body = readiness(state)
    return json_response(503 if body["reasons"] else 200, body)


def readiness(state: AppState) -> dict[str, Any]:
    """Ready when not draining, the log accepts records, and at least one model serves.
    A model that failed to load is listed (with why) and makes only itself unready, unless
    it is the default model (POST /predict would fail) or no model serves at all."""
    reasons = []
    catalog = state.catalog
    # Probes are open to anyone; with API keys set (a protected deployment) why a model did
    # not load (paths, digests) is told only behind a key, in GET /models.
    detail = (lambda m: m.error) if not state.settings.api_keys else _withheld
    served = [m for m in catalog.models.values() if m.model is not None]
    default = catalog.default
    if not served:
        why = "; ".join(f"{m.name}: {detail(m)}" for m in catalog.models.values()) or "loading"
        reasons.append(f"no model loaded: {why}")
    elif default is not None and default.model is None:
        reasons.append(f"default model {default.name!r} not loaded: {detail(default)}")
    if state.draining:
        reasons.append("draining: shutting down")
    log = state.log.status()
    if not log.accepting:
        reasons.append(f"prediction log not accepting records: {log.reason}")
    if log.store_problem is not None:
        reasons.append(f"prediction store misconfigured: {log.store_problem}; see the server log")
    default_model = default.model if default is not None else None
    return {
        "status": "not ready" if reasons else "ready",
        "reasons": reasons,
        "model": default_model.ref if default_model is not None else None,
        "models": [
            {
                "name": m.name,
                "version": m.model.version if m.model is not None else None,
                "ready": m.model is not None,
                "error": detail(m),
            }
            for _, m in sorted(catalog.models.items())
        ],
        "draining": state.draining,
        "log": {
            "store": log.store,
            "accepting": log.accepting,
            "store_reachable": log.store_reachable,
            "spooled_bytes": log.spooled_bytes,
            "oldest_unwritten_age_s": log.oldest_unwritten_age_s,
        },
    }


def _withheld(model: ServedModel) -> str | None:
    return None if model.error is None else "see GET /models (needs a key)"
