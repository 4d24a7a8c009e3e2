"""OpenAPI 3.1 document of the API, generated from the endpoint table and its models."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter

from acd import __version__
from acd.api.endpoints import Endpoint, ErrorOut

REF = "#/components/schemas/{model}"
_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")
_REASONS = {
    401: "not logged in",
    403: "the account's role may not do this",
    404: "not found",
    409: "not possible in the current state",
    422: "invalid input; ``problems`` names each field",
    429: "too many failed logins for this name; try again later",
    503: "the ACD runs without queues, or the database is unavailable",
}


class _Schemas:
    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def of(self, tp: Any, mode: str) -> dict[str, Any]:
        schema: dict[str, Any] = TypeAdapter(tp).json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
        self.components.update(schema.pop("$defs", {}))
        title = schema.get("title")
        if schema.get("type") == "object" and isinstance(title, str) and hasattr(tp, "__name__"):
            self.components[tp.__name__] = schema
            return {"$ref": REF.format(model=tp.__name__)}
        return schema


def _operation(item: Endpoint, schemas: _Schemas) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": item.handler.__name__,
        "summary": item.summary,
        "tags": [item.tag],
    }
    if item.description:
        op["description"] = item.description
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAM.findall(item.path)
    ]
    if item.query is not None:
        query = item.query.model_json_schema(ref_template=REF)
        schemas.components.update(query.pop("$defs", {}))
        required = set(query.get("required", []))
        for name, prop in query.get("properties", {}).items():
            param: dict[str, Any] = {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": {k: v for k, v in prop.items() if k != "title"},
            }
            if "description" in prop:
                param["description"] = prop["description"]
            params.append(param)
    if params:
        op["parameters"] = params
    if item.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schemas.of(item.body, "validation")}},
        }
    responses: dict[str, Any] = {}
    if item.response is not None:
        content: dict[str, Any] = {
            "application/json": {"schema": schemas.of(item.response, "serialization")}
        }
        for media in item.media:
            content[media] = {"schema": {"type": "string"}}
        responses[str(item.status)] = {"description": "OK", "content": content}
    else:
        responses["204" if item.status == 200 else str(item.status)] = {"description": "done"}
    codes = set(item.errors)
    if item.roles is not None:
        codes |= {401, 403}
        op["security"] = [{"bearer": []}, {"cookie": []}]
        op["x-roles"] = sorted(role.value for role in item.roles)
    else:
        op["security"] = []
    if item.body is not None or item.query is not None:
        codes.add(422)
    if _PARAM.search(item.path):
        codes.add(404)  # whatever the path names may not exist
    error = schemas.of(ErrorOut, "serialization")
    for code in sorted(codes):
        responses[str(code)] = {
            "description": _REASONS.get(code, "error"),
            "content": {"application/json": {"schema": error}},
        }
    op["responses"] = responses
    return op


def openapi_document(endpoints: Sequence[Endpoint], prefix: str) -> dict[str, Any]:
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for item in endpoints:
        path = _PARAM.sub(lambda m: "{" + m.group(1) + "}", prefix + item.path)
        paths.setdefault(path, {})[item.method.lower()] = _operation(item, schemas)
    paths[prefix + "/openapi.json"] = {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "tags": ["meta"],
            "security": [],
            "responses": {
                "200": {
                    "description": "OpenAPI 3.1",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "acd HTTP API",
            "version": __version__,
            "description": (
                "Live queues, agents and waiting calls; agent state; reports; IVR flows. "
                "Log in with POST /api/v1/login: a session cookie for pages, a bearer "
                "token for scripts. Roles: supervisor, agent (own state only), viewer."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "acd_session"},
            },
        },
    }
