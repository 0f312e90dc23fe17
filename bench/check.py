"""Before an app is measured, check that it answers ``200`` with the right predictions.

A sample of the workload's bodies is sent with httpx and every answer is compared with the
same pipeline run offline: predictions equal, probabilities equal to 1e-9. An app that
answers wrong is not measured: being fast at the wrong answer is not a result.
"""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np

from bench.apps.ceiling import CONSTANT
from bench.models import BenchModel, body
from bench.servers import App

TOLERANCE = 1e-9


class CheckError(AssertionError):
    """An app answered with a non-200 status, a wrong shape or a wrong prediction."""


def check(
    client: httpx.Client, url: str, app: App, model: BenchModel | None, samples: list[np.ndarray]
) -> int:
    """POST each sample and compare; returns the number of rows answered (and so served)."""
    rows = 0
    for X in samples:
        response = client.post(
            f"{url}/predict", content=body(X), headers={"Content-Type": "application/json"}
        )
        if response.status_code != 200:
            raise CheckError(
                f"{app.name}: POST /predict answered {response.status_code}: {response.text[:300]}"
            )
        answer = response.json()
        if app.kind == "ceiling":
            if answer != CONSTANT:
                raise CheckError(f"ceiling: expected {CONSTANT}, got {str(answer)[:200]}")
        else:
            assert model is not None
            _compare(app, model, X, answer)
        rows += X.shape[0]
    return rows


def _compare(app: App, model: BenchModel, X: np.ndarray, answer: dict[str, Any]) -> None:
    expected_predictions = [str(p) for p in model.pipeline.predict(X)]
    expected_probabilities = model.pipeline.predict_proba(X)
    if answer.get("predictions") != expected_predictions:
        raise CheckError(
            f"{app.name}: predictions differ from the offline pipeline: "
            f"{str(answer.get('predictions'))[:200]} != {str(expected_predictions)[:200]}"
        )
    probabilities = answer.get("probabilities")
    if not isinstance(probabilities, list) or len(probabilities) != X.shape[0]:
        raise CheckError(f"{app.name}: expected {X.shape[0]} probability rows")
    got = np.array([[row[c] for c in model.classes] for row in probabilities], dtype=np.float64)
    if not np.allclose(got, expected_probabilities, rtol=0, atol=TOLERANCE):
        worst = float(np.abs(got - expected_probabilities).max())
        raise CheckError(f"{app.name}: probabilities differ from offline by up to {worst:.3g}")
    if app.kind == "skship":
        expected_model = {"name": model.name, "version": model.version_dir.name}
        if answer.get("model") != expected_model or not answer.get("request_id"):
            raise CheckError(
                f"{app.name}: expected model {expected_model} and a request_id, got "
                f"model={answer.get('model')} request_id={answer.get('request_id')!r}"
            )
