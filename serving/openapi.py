"""OpenAPI for a newcomer: the /predict body specialised to the loaded model.

The generic schema says "objects of numbers"; this one lists the model's features with
their training ranges and carries a ready-to-send example (the training means), so
"Try it out" in /docs works without reading any code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from serving.model import LoadedModel
from serving.schemas import (
    ERROR_RESPONSES,
    ErrorBody,
    PredictRequest,
    PredictResponse,
    ValidationErrorBody,
)
from serving.validation import MAX_ABS_VALUE

_NUMBER = {"type": "number", "minimum": -MAX_ABS_VALUE, "maximum": MAX_ABS_VALUE}


def install(app: FastAPI, current_model: Callable[[], LoadedModel | None], max_rows: int) -> None:
    """Replace ``app.openapi``; reset ``app.openapi_schema`` when the model changes."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            model = current_model()
            request_schema = (
                predict_request_schema(model, max_rows)
                if model is not None
                else PredictRequest.model_json_schema()
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(_PREDICT_COMPONENTS)
            components["PredictRequest"] = request_schema
            schema["paths"] = {"/predict": {"post": _PREDICT_OPERATION}, **schema["paths"]}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


# POST /predict is served outside FastAPI's router (serving/predict_endpoint.py), so its
# operation is described here from the same pydantic models.
_PREDICT_COMPONENTS = models_json_schema(
    [(m, "serialization") for m in (PredictResponse, ErrorBody, ValidationErrorBody)],
    ref_template="#/components/schemas/{model}",
)[1]["$defs"]
_REQUEST_ID = {"type": "string", "format": "uuid"}
_CLIENT_REQUEST_ID = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[ -~]+$"}
_PREDICT_OPERATION: dict[str, Any] = {
    "summary": "Predict one or many instances",
    "description": (
        "Instances keyed by feature name, or arrays in the model's feature order (see "
        "GET /model). Every answer gets its own `request_id` (a UUIDv7), the key of its rows "
        "in the prediction log. An `X-Request-ID` you send is your correlation id: echoed in "
        "the response header and stored with the rows as `client_request_id`."
    ),
    "operationId": "predict",
    "parameters": [
        {
            "name": "X-Request-ID",
            "in": "header",
            "required": False,
            "schema": _CLIENT_REQUEST_ID,
            "description": "Your correlation id (1-128 printable ASCII characters).",
        }
    ],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _ref("PredictRequest")}},
    },
    "responses": {
        "200": {
            **_json("PredictResponse", "Predictions, logged before this response was sent."),
            "headers": {
                "X-Request-ID": {
                    "schema": _CLIENT_REQUEST_ID,
                    "description": "Your X-Request-ID, or the request_id when you sent none.",
                }
            },
        },
        **{
            str(status): _json(
                "ValidationErrorBody" if status == 422 else "ErrorBody", spec["description"]
            )
            for status, spec in ERROR_RESPONSES.items()
        },
    },
}


def predict_request_schema(model: LoadedModel, max_rows: int) -> dict[str, Any]:
    features = model.metadata.features
    by_name = {
        "type": "object",
        "title": "Instance by feature name",
        "additionalProperties": False,
        "required": [f.name for f in features],
        "properties": {
            f.name: {**_NUMBER, "description": f"training range [{f.min:g}, {f.max:g}]"}
            for f in features
        },
    }
    positional = {
        "type": "array",
        "title": "Instance as values in feature order",
        "minItems": len(features),
        "maxItems": len(features),
        "items": _NUMBER,
        "description": "Values in this order: " + ", ".join(f.name for f in features),
    }
    example = {f.name: round(f.mean or 0.0, 4) for f in features}
    return {
        "title": "PredictRequest",
        "type": "object",
        "additionalProperties": False,
        "required": ["instances"],
        "properties": {
            "instances": {
                "type": "array",
                "minItems": 1,
                "maxItems": max_rows,
                "items": {"anyOf": [by_name, positional]},
            }
        },
        "example": {"instances": [example]},
        "description": f"Instances for {model.name} version {model.version}.",
    }
