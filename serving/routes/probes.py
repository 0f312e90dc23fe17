"""GET /health (liveness) and GET /ready (readiness), honest about why not."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from serving.deps import StateDep
from serving.errors import json_response
from serving.schemas import Health, Readiness

router = APIRouter(tags=["probes"])


@router.get("/health", response_model=Health, summary="Liveness: the process serves HTTP")
async def health() -> Response:
    return json_response(200, {"status": "ok"})


@router.get(
    "/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready; `reasons` says why."}},
    summary="Readiness: a verified, warmed model is loaded and the log accepts records",
)
async def ready(state: StateDep) -> Response:
    reasons = []
    model = state.model
    if model is None:
        reasons.append(f"no model loaded: {state.load_error or 'loading'}")
    if state.draining:
        reasons.append("draining: shutting down")
    log = state.log.status()
    if not log.accepting:
        reasons.append(f"prediction log not accepting records: {log.reason}")
    body = {
        "status": "not ready" if reasons else "ready",
        "reasons": reasons,
        "model": model.ref if model is not None else None,
        "draining": state.draining,
        "log": {
            "store": log.store,
            "accepting": log.accepting,
            "store_reachable": log.store_reachable,
            "spooled_bytes": log.spooled_bytes,
            "oldest_unwritten_age_s": log.oldest_unwritten_age_s,
        },
    }
    return json_response(503 if reasons else 200, body)
