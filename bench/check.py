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
    client: httpx.Client, url: str, app: App, model: BenchModel | None, samples: list[Any]
) -> int:
    """POST each sample and compare; returns the number of rows answered (and so served)."""
    rows = 0
    path = app.path(model)
    for X in samples:
        response = client.post(
            f"{url}{path}", content=body(X, app.protocol),
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        if response.status_code != 200:
            raise CheckError(
                f"{app.name}: POST {path} answered {response.status_code}: {response.text[:300]}"
            )
        answer = response.json()
        if app.kind == "ceiling":
            if answer != CONSTANT:
                raise CheckError(f"ceiling: expected {CONSTANT}, got {str(answer)[:200]}")
        elif model is None:
            raise CheckError(f"{app.name}: no model to check against")
        else:
            _compare(app, model, X, _as_rest(answer) if app.protocol == "v2" else answer)
        rows += len(X)
    return rows


def _as_rest(answer: dict[str, Any]) -> dict[str, Any]:
    """An Open Inference Protocol response in our REST shape, to compare one way."""
    outputs = {o["name"]: o for o in answer.get("outputs", [])}
    proba = outputs.get("predict_proba")
    classes_rows = []
    if proba is not None:
        rows, width = proba["shape"]
        flat = proba["data"]
        classes_rows = [flat[i * width : (i + 1) * width] for i in range(rows)]
    return {
        "predictions": outputs.get("predict", {}).get("data"),
        "probabilities_by_position": classes_rows,
        "model": {"name": answer.get("model_name"), "version": answer.get("model_version")},
        "request_id": (answer.get("parameters") or {}).get("request_id"),
    }


def _compare(app: App, model: BenchModel, X: Any, answer: dict[str, Any]) -> None:
    expected_predictions = [str(p) for p in model.pipeline.predict(X)]
    expected_probabilities = model.pipeline.predict_proba(X)
    if answer.get("predictions") != expected_predictions:
        raise CheckError(
            f"{app.name}: predictions differ from the offline pipeline: "
            f"{str(answer.get('predictions'))[:200]} != {str(expected_predictions)[:200]}"
        )
    if "probabilities_by_position" in answer:
        got = np.array(answer["probabilities_by_position"], dtype=np.float64)
    else:
        probabilities = answer.get("probabilities")
        if not isinstance(probabilities, list) or len(probabilities) != len(X):
            raise CheckError(f"{app.name}: expected {len(X)} probability rows")
        got = np.array([[row[c] for c in model.classes] for row in probabilities], np.float64)
    if got.shape != expected_probabilities.shape:
        raise CheckError(f"{app.name}: probabilities of shape {got.shape}")
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
