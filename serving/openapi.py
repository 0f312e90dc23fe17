"""OpenAPI for a newcomer: the predict routes documented, specialised to the default model.

The predict routes of both protocols are plain ASGI endpoints (serving/routes/predict.py,
serving/v2/routes.py), so their operations are described here from the same pydantic
models. The /predict body lists the default model's features with their types, training
ranges and categories, and carries a ready-to-send example, so "Try it out" in /docs works
without reading any code. With API keys configured, the schema declares the two ways to
send one (fastapi.security's models) and that every operation but the probes needs it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.security import APIKeyHeader, HTTPBearer
from pydantic.json_schema import models_json_schema

from serving.artifact import FeatureSpec
from serving.catalog import ModelCatalog
from serving.features import MAX_ABS_VALUE
from serving.model import LoadedModel
from serving.pipeline import PROBES
from serving.schemas import (
    ERROR_RESPONSES,
    ErrorBody,
    PredictRequest,
    PredictResponse,
    V2Error,
    ValidationErrorBody,
)

_SECURITY = {
    "bearer": HTTPBearer().model.model_dump(mode="json", by_alias=True, exclude_none=True),
    "apiKey": APIKeyHeader(name="X-API-Key").model.model_dump(
        mode="json", by_alias=True, exclude_none=True
    ),
}


def install(app: FastAPI, catalog: ModelCatalog, max_rows: int, *, has_keys: bool) -> None:
    """Replace ``app.openapi``; the catalog resets ``app.openapi_schema`` when models change."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            default = catalog.default
            model = default.model if default is not None else None
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(_COMPONENTS)
            components["PredictRequest"] = (
                predict_request_schema(model, max_rows)
                if model is not None
                else PredictRequest.model_json_schema()
            )
            schema["paths"] = {**_PREDICT_PATHS, **schema["paths"]}
            if has_keys:
                _declare_security(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _declare_security(schema: dict[str, Any]) -> None:
    schema["components"]["securitySchemes"] = _SECURITY
    schema["security"] = [{"bearer": []}, {"apiKey": []}]
    for path in PROBES:
        for operation in schema["paths"].get(path, {}).values():
            operation["security"] = []


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


_COMPONENTS = models_json_schema(
    [(m, "serialization") for m in (PredictResponse, ErrorBody, ValidationErrorBody, V2Error)],
    ref_template="#/components/schemas/{model}",
)[1]["$defs"]
_CLIENT_REQUEST_ID = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[ -~]+$"}
_ID_HEADER = {
    "name": "X-Request-ID",
    "in": "header",
    "required": False,
    "schema": _CLIENT_REQUEST_ID,
    "description": "Your correlation id (1-128 printable ASCII characters).",
}
_ID_RESPONSE_HEADER = {
    "X-Request-ID": {
        "schema": _CLIENT_REQUEST_ID,
        "description": "Your X-Request-ID, or the server's request id when you sent none.",
    }
}
_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_VERSION = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}


def _predict_operation(operation_id: str, summary: str, params: list[Any]) -> dict[str, Any]:
    return {
        "tags": ["predict"],
        "summary": summary,
        "description": (
            "Instances keyed by feature name, or arrays in the model's feature order (see "
            "GET /models/{name}). Values: numbers, strings for categories, true/false for "
            "booleans, null where a feature is nullable. Every answer gets its own "
            "`request_id` (a UUIDv7), the key of its rows in the prediction log; an "
            "`X-Request-ID` you send is your correlation id, stored as `client_request_id`."
        ),
        "operationId": operation_id,
        "parameters": [*params, _ID_HEADER],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ref("PredictRequest")}},
        },
        "responses": {
            "200": {
                **_json("PredictResponse", "Predictions, logged before this response was sent."),
                "headers": _ID_RESPONSE_HEADER,
            },
            "404": _json("ErrorBody", "No such model is served."),
            **{
                str(status): _json(
                    "ValidationErrorBody" if status == 422 else "ErrorBody", spec["description"]
                )
                for status, spec in ERROR_RESPONSES.items()
            },
        },
    }


_V2_TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype", "data"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"type": "string"},
        "parameters": {"type": "object"},
        "data": {"type": "array"},
    },
}
_V2_INFER_BODY = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "inputs": {"type": "array", "minItems": 1, "items": _V2_TENSOR},
        "outputs": {
            "type": "array",
            "items": {"type": "object", "properties": {"name": {"type": "string"}}},
        },
    },
    "example": {
        "id": "my-request-1",
        "inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}],
    },
}


def _infer_operation(operation_id: str, params: list[Any]) -> dict[str, Any]:
    return {
        "tags": ["open inference protocol"],
        "summary": "Infer (Open Inference Protocol)",
        "description": (
            "One [n, n_features] tensor in feature order (numeric models) or one tensor per "
            "feature named by the feature. Outputs `predict` and `predict_proba`. The "
            "server's request id is in the response's `parameters.request_id`."
        ),
        "operationId": operation_id,
        "parameters": [*params, _ID_HEADER],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _V2_INFER_BODY}},
        },
        "responses": {
            "200": {
                "description": "Output tensors, logged before this response was sent.",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            **{
                str(status): _json("V2Error", description)
                for status, description in {
                    400: "Invalid request, naming the input and row.",
                    404: "No such model or version.",
                    413: "Body larger than MAX_BODY_BYTES.",
                    415: "Content-Type is not application/json.",
                    503: "The model is not loaded, or the log is full (Retry-After).",
                }.items()
            },
        },
    }


_PREDICT_PATHS: dict[str, Any] = {
    "/predict": {"post": _predict_operation("predict", "Predict with the default model", [])},
    "/models/{name}/predict": {
        "post": _predict_operation("model_predict", "Predict with a named model", [_NAME])
    },
    "/v2/models/{name}/infer": {"post": _infer_operation("v2_infer", [_NAME])},
    "/v2/models/{name}/versions/{version}/infer": {
        "post": _infer_operation("v2_version_infer", [_NAME, _VERSION])
    },
}


def predict_request_schema(model: LoadedModel, max_rows: int) -> dict[str, Any]:
    specs = model.features.specs
    by_name = {
        "type": "object",
        "title": "Instance by feature name",
        "additionalProperties": False,
        "required": [f.name for f in specs],
        "properties": {f.name: _value_schema(f) for f in specs},
    }
    positional = {
        "type": "array",
        "title": "Instance as values in feature order",
        "minItems": len(specs),
        "maxItems": len(specs),
        "prefixItems": [_value_schema(f) for f in specs],
        "description": "Values in this order: " + ", ".join(f.name for f in specs),
    }
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
        "example": {"instances": [{f.name: _example(f) for f in specs}]},
        "description": f"Instances for {model.name} version {model.version}.",
    }


def _value_schema(spec: FeatureSpec) -> dict[str, Any]:
    if spec.type == "number":
        schema: dict[str, Any] = {
            "type": "number",
            "minimum": -MAX_ABS_VALUE,
            "maximum": MAX_ABS_VALUE,
            "description": f"training range [{spec.min:g}, {spec.max:g}]",
        }
    elif spec.type == "category":
        seen = ", ".join(spec.categories or [])
        schema = {"type": "string", "maxLength": 1000, "description": f"seen in training: {seen}"}
    else:
        schema = {"type": "boolean"}
    if spec.nullable:
        return {"anyOf": [schema, {"type": "null"}]}
    return schema


def _example(spec: FeatureSpec) -> Any:
    if spec.type == "number":
        return round(spec.mean or 0.0, 4)
    if spec.type == "category":
        return (spec.categories or [""])[0]
    return False
