"""The effective spec: the user's document plus the responses the runtime itself may give.

Served at /openapi.yaml and /openapi.json, so that clients and conformance tools
(schemathesis' status and schema checks) know about the runtime's 400, 401, 404, 413 ...
"""
from __future__ import annotations

import copy
from typing import Any

from brrt_actors.errors import status_title
from brrt_actors.spec.model import Operation, Spec

PROBLEM_SCHEMA_NAME = "BrrtProblem"

# Statuses the runtime can answer for any operation; the others depend on the operation.
ALWAYS = (400, 404, 405, 414, 429, 431, 500, 503, 504)
WITH_SECURITY = (401, 403)
WITH_BODY = (413, 415)
RUNTIME_STATUSES = frozenset((*ALWAYS, *WITH_SECURITY, *WITH_BODY))


def problem_schema() -> dict[str, Any]:
    """The problem+json (RFC 9457) schema of every error the runtime answers."""
    return {
        "type": "object",
        "required": ["type", "title", "status"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "request_id": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["message"],
                    "properties": {
                        "in": {"type": "string"},
                        "name": {"type": "string"},
                        "pointer": {"type": "string"},
                        "message": {"type": "string"},
                    },
                },
            },
        },
    }


def runtime_statuses_for(operation: Operation) -> tuple[int, ...]:
    """Return the statuses the runtime may answer for `operation` on its own."""
    statuses: list[int] = list(ALWAYS)
    if operation.security and all(operation.security):
        statuses.extend(WITH_SECURITY)
    if operation.request_body is not None:
        statuses.extend(WITH_BODY)
    return tuple(sorted(statuses))


def _response_name(status: int) -> str:
    return f"Brrt{status}"


def effective_document(spec: Spec) -> dict[str, Any]:
    """Return a copy of the spec's document with the runtime's responses added."""
    document = copy.deepcopy(spec.document)
    components = document.setdefault("components", {})
    components.setdefault("schemas", {})[PROBLEM_SCHEMA_NAME] = problem_schema()
    responses = components.setdefault("responses", {})
    used: set[int] = set()
    paths = document.get("paths") or {}
    for operation in spec.operations:
        # Operations are found by template as written (without the base path).
        template = operation.path[len(spec.base_path):] or "/"
        op_doc = (paths.get(template) or {}).get(operation.method.lower())
        if not isinstance(op_doc, dict):
            continue
        declared = op_doc.setdefault("responses", {})
        if "default" in declared:
            continue
        for status in runtime_statuses_for(operation):
            key = str(status)
            if key in declared or f"{key[0]}XX" in declared:
                continue
            declared[key] = {"$ref": f"#/components/responses/{_response_name(status)}"}
            used.add(status)
    for status in sorted(used):
        entry: dict[str, Any] = {
            "description": f"{status_title(status)} (answered by the runtime)",
            "content": {"application/problem+json": {
                "schema": {"$ref": f"#/components/schemas/{PROBLEM_SCHEMA_NAME}"}}},
        }
        if status in (503, 429):
            entry["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
        if status == 405:
            entry["headers"] = {"Allow": {"schema": {"type": "string"}}}
        if status == 401:
            entry["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        responses.setdefault(_response_name(status), entry)
    return document
