"""``ceiling``: the fastest a FastAPI endpoint on this stack can answer our requests.

It parses the JSON body, as any predict endpoint must, and returns a constant: no
validation, no model, no logging. Whatever skship does on top costs throughput from here.

    uvicorn bench.apps.ceiling:create_app --factory
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request

CONSTANT = {"predictions": ["benign"]}


def create_app() -> FastAPI:
    app = FastAPI(title="ceiling")

    @app.post("/predict")
    async def predict(request: Request) -> dict[str, Any]:
        await request.json()
        return CONSTANT

    @app.get("/ready")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    return app
