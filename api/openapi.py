"""The OpenAPI 3.1 document (GET /openapi.json): built from api.operations and
api.schemas, so what it says is what the server checks."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from api.operations import OPERATIONS, Operation
from api.problems import CONTENT_TYPE
from api.schemas import COMPONENTS

_PROBLEM = {"$ref": "#/components/schemas/Problem"}
_ERRORS = {
    400: "a bad parameter or body (`field` names it)",
    401: "no or a wrong bearer token",
    403: "not allowed (e.g. key export is off)",
    404: "no such SA, connection or path",
    408: "the body did not arrive in time",
    409: "the SA is in the wrong state, or the kernel refused",
    413: "the body is larger than api.max_body",
    415: "the body is not JSON",
    422: "the connection does not pass the configuration checks (`field`, `key`), or the "
         "local address to initiate from cannot be used here",
    429: "too many event streams",
    502: "the peer said no: the IKE SA failed to establish (initiate), the peer refused a "
         "MOBIKE handover, or the IKE SA was deleted while the command waited",
}


def _operation(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": op.op_id, "summary": op.summary, "tags": [op.tag]}
    if op.params:
        out["parameters"] = [
            {"name": p.name, "in": p.where, "required": p.required, "description": p.description,
             "schema": p.schema}
            for p in op.params
        ]
    if op.body:
        out["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": {
                "$ref": f"#/components/schemas/{op.body}"}}},
        }
    responses: dict[str, Any] = {}
    for a in op.answers:
        entry: dict[str, Any] = {"description": a.description}
        if a.schema is not None:
            entry["content"] = {a.media_type: {"schema": a.schema}}
        responses[str(a.status)] = entry
    for status, text in _ERRORS.items():
        responses.setdefault(str(status), {
            "description": text, "content": {CONTENT_TYPE: {"schema": _PROBLEM}}})
    responses["default"] = {"description": "an error",
                            "content": {CONTENT_TYPE: {"schema": _PROBLEM}}}
    out["responses"] = responses
    if not op.auth:
        out["security"] = []
    return out


@lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ikev2d API",
            "version": "1",
            "description": "IKE SAs, CHILD_SAs, connections and events of a running ikev2d "
                           "(docs/api.md). Errors are RFC 9457 problem details.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": COMPONENTS,
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "the token in api.token_file (not needed on the UNIX socket)"}},
        },
    }


@lru_cache(maxsize=1)
def document_json() -> str:
    return json.dumps(document(), separators=(",", ":"))
