"""The effective spec: the user's document plus the responses the runtime itself may give.

Served at /openapi.yaml and /openapi.json, so that clients and conformance tools
(schemathesis' status and schema checks) know about the runtime's 400, 401, 404, 413 ...
Its servers list the serving instance first, so that "Try it out" calls this server.
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
# NOTE: the effective spec adds all of those (conformance tools put an answer given before
# the operation is reached, a 404 or a 431, down to the operation they called). What an
# operation's own stages and actor answer is narrower: `operation_statuses`.
ANY_HANDLER = (500, 503, 504)  # the handler failed; its mailbox is full; its deadline passed
# The description of the serving instance in the effective spec's servers.
THIS_SERVER = "This server (the one serving this document)"


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


def operation_statuses(operation: Operation) -> tuple[int, ...]:
    """Return the statuses `operation`'s own stages and actor may answer, whatever its handler.

    What a spec should declare for the operation (the pet store's does): 400 with parameters
    or a body, 401 when it is secured, 403 when it needs scopes, 413 and 415 with a body,
    and 500, 503 and 504 always.
    """
    statuses: list[int] = list(ANY_HANDLER)
    if operation.parameters or operation.request_body is not None:
        statuses.append(400)
    if operation.security and all(operation.security):
        statuses.append(401)
        if any(scopes for group in operation.security for scopes in group.values()):
            statuses.append(403)
    if operation.request_body is not None:
        statuses.extend(WITH_BODY)
    return tuple(sorted(statuses))


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


def _has_url(server: Any, url: str) -> bool:
    return isinstance(server, dict) and server.get("url") == url


def _this_server_first(servers: Any, url: str) -> Any:
    """`servers` with the serving instance (`url`, relative) first, the declared ones after.

    A declared server of that very URL moves to the front instead of being repeated.
    """
    if not isinstance(servers, list) or not servers:
        return servers  # NOTE: none declared means "/" (OpenAPI): already this server
    this = next((server for server in servers if _has_url(server, url)),
                {"url": url, "description": THIS_SERVER})
    return [this, *(server for server in servers if not _has_url(server, url))]


def _serve_from_here(document: dict[str, Any], base_path: str) -> None:
    # NOTE: a relative URL resolves against the page that loaded the document (Swagger UI,
    # ReDoc), so "Try it out" calls the instance that served it, whatever its host and port;
    # the declared servers (a developer's localhost:8081, production) stay selectable after it.
    url = base_path or "/"
    if "servers" in document:
        document["servers"] = _this_server_first(document["servers"], url)
    for item in (document.get("paths") or {}).values():
        if not isinstance(item, dict):
            continue
        for node in (item, *(op for op in item.values() if isinstance(op, dict))):
            if "servers" in node:
                node["servers"] = _this_server_first(node["servers"], url)


def effective_document(spec: Spec) -> dict[str, Any]:
    """Return a copy of the spec's document with the runtime's responses added.

    Every `servers` list of it starts with the serving instance: a relative URL, the base path.
    """
    document = copy.deepcopy(spec.document)
    _serve_from_here(document, spec.base_path)
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
