"""The OpenAPI 3.1 document of a running server (``GET /openapi.json``)."""

from __future__ import annotations

from typing import Any

__all__ = ["openapi_document"]

_ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "the modelyard error class"},
        "message": {"type": "string"},
        "hint": {"type": "string"},
        "details": {"type": "object"},
        "request_id": {"type": "string"},
    },
}
_TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype", "data"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {
            "type": "string",
            "enum": [
                "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
                "FP16", "FP32", "FP64", "BYTES",
            ],
        },
        "parameters": {"type": "object"},
        "data": {"type": "array"},
    },
}  # fmt: skip


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "malformed body, wrong shape or type (names the field)",
        401: "missing or wrong bearer token",
        404: "unknown model or version",
        413: "body or instance count over the limit",
        422: "value out of the model's domain (names the field)",
        503: "overloaded, not ready or shutting down (Retry-After)",
        504: "the request timed out",
    }
    return {
        str(c): {
            "description": text[c],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for c in codes
    }


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _ok(schema: dict[str, Any] | None = None, description: str = "OK") -> dict[str, Any]:
    if schema is None:
        return {"200": {"description": description}}
    return {
        "200": {"description": description, "content": {"application/json": {"schema": schema}}}
    }


def openapi_document(model: str, version: str, metadata: dict[str, Any]) -> dict[str, Any]:
    """Describe every route of a server serving ``model`` at ``version``."""
    infer = {
        "post": {
            "summary": "Open Inference Protocol v2 inference",
            "requestBody": _json_body({"$ref": "#/components/schemas/InferRequest"}),
            "responses": {
                **_ok({"$ref": "#/components/schemas/InferResponse"}),
                **_errors(400, 404, 413, 422, 503, 504),
            },
        }
    }
    meta = {
        "get": {
            "summary": "model metadata",
            "responses": {**_ok({"type": "object"}), **_errors(404)},
        }
    }
    ready = {"get": {"summary": "model readiness", "responses": {**_ok(), **_errors(404, 503)}}}
    probe = {"get": {"summary": "probe", "responses": {**_ok(), **_errors(503)}}}
    live = {"get": {"summary": "liveness", "responses": _ok()}}
    mv = f"/v2/models/{model}/versions/{version}"
    paths: dict[str, Any] = {
        "/v2/health/live": live,
        "/healthz": live,
        "/v2/health/ready": probe,
        "/readyz": probe,
        "/v2": {"get": {"summary": "server metadata", "responses": _ok({"type": "object"})}},
        f"/v2/models/{model}": meta,
        mv: meta,
        f"/v2/models/{model}/ready": ready,
        f"{mv}/ready": ready,
        f"/v2/models/{model}/infer": infer,
        f"{mv}/infer": infer,
        f"/v1/models/{model}:predict": {
            "post": {
                "summary": "simple JSON prediction",
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "required": ["instances"],
                        "properties": {"instances": {"type": "array", "minItems": 1}},
                    }
                ),
                "responses": {
                    **_ok(
                        {
                            "type": "object",
                            "properties": {"predictions": {"type": "array"}},
                        }
                    ),
                    **_errors(400, 404, 413, 422, 503, 504),
                },
            }
        },
        "/v1/feedback": {
            "post": {
                "summary": "attach a label or outcome to a request id",
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "required": ["request_id"],
                        "properties": {
                            "request_id": {"type": "string", "minLength": 1, "maxLength": 200},
                            "label": {},
                            "outcome": {},
                        },
                    }
                ),
                "responses": {
                    "202": {"description": "accepted"},
                    **_errors(400, 401, 413, 503),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {"description": "text format 0.0.4", "content": {"text/plain": {}}}
                },
            }
        },
        "/openapi.json": {
            "get": {"summary": "this document", "responses": _ok({"type": "object"})}
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"modelyard serving: {model}",
            "version": version,
            "description": "Open Inference Protocol v2 and a simple JSON form. Model: "
            f"{metadata.get('inputs')} -> {metadata.get('outputs')}",
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Error": _ERROR,
                "Tensor": _TENSOR,
                "InferRequest": {
                    "type": "object",
                    "required": ["inputs"],
                    "properties": {
                        "id": {"type": "string"},
                        "parameters": {"type": "object"},
                        "inputs": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Tensor"},
                        },
                        "outputs": {"type": "array", "items": {"type": "object"}},
                    },
                },
                "InferResponse": {
                    "type": "object",
                    "required": ["model_name", "outputs"],
                    "properties": {
                        "model_name": {"type": "string"},
                        "model_version": {"type": "string"},
                        "id": {"type": "string"},
                        "outputs": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Tensor"},
                        },
                    },
                },
            }
        },
    }
