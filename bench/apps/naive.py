"""``naive``: the app every "serve your scikit-learn model with FastAPI" tutorial writes.

A pydantic body ``instances: list[list[float]]``, the pickled pipeline loaded with
``joblib.load`` at startup, a plain ``def`` endpoint (FastAPI runs it in its threadpool, as
its docs advise for blocking calls), one ``predict_proba`` per request, predictions and
probabilities returned as a dict that FastAPI encodes. No logging, no request ids.
The model file comes from ``NAIVE_MODEL_PATH``; the factory loads it, so importing this
module does no I/O.

    NAIVE_MODEL_PATH=naive/bench_logreg.joblib uvicorn bench.apps.naive:create_app --factory
"""

from __future__ import annotations

import os
from typing import Any

import joblib
import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel


class PredictRequest(BaseModel):
    instances: list[list[float]]


def create_app() -> FastAPI:
    model = joblib.load(os.environ["NAIVE_MODEL_PATH"])
    classes = [str(c) for c in model.classes_]
    app = FastAPI(title="naive")

    @app.post("/predict")
    def predict(request: PredictRequest) -> dict[str, Any]:
        X = np.array(request.instances)
        probabilities = model.predict_proba(X)
        predictions = [classes[i] for i in probabilities.argmax(axis=1)]
        return {
            "predictions": predictions,
            "probabilities": [
                dict(zip(classes, row, strict=True)) for row in probabilities.tolist()
            ],
        }

    @app.get("/ready")
    def ready() -> dict[str, str]:
        return {"status": "ready"}

    return app
