"""The response headers of a mock answer: the header's example, else a value that means something.

In order: the header's ``example``, its first named example, the schema's ``example`` /
``default`` / first ``enum`` member, then a value fitting the header's name when the schema
accepts it (``Allow`` lists the methods of the path, ``Location`` a path of the API,
``ETag`` a quoted tag, dates are HTTP dates ...), and last a value generated from the schema.
Headers the runtime or the HTTP engine write themselves (framing, ``Content-Type``,
``X-Request-ID``, CORS) are never mocked.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from brrt_actors.mock.values import MockError, generate_value
from brrt_actors.spec.model import MISSING, Operation, ResponseSpec
from brrt_actors.validation import ValidatorCache

__all__ = ["mock_headers"]

# Written by the runtime or the engine, never by a mock answer.
_NOT_MOCKED: Final = frozenset({
    "content-type", "content-length", "transfer-encoding", "connection", "content-encoding",
    "x-request-id", "keep-alive", "trailer", "upgrade"})
_HTTP_DATE: Final = "Thu, 01 Jan 2026 00:00:00 GMT"


def _meaningful(name: str, operation: Operation, allow: str) -> str | None:
    lower = name.lower()
    if lower.startswith("access-control-"):
        return None
    path = _example_path(operation.path)
    by_name: Mapping[str, str] = {
        "allow": allow,
        "location": path,
        "content-location": path,
        "link": f'<{path}>; rel="self"',
        "etag": '"mock-etag-1"',
        "last-modified": _HTTP_DATE,
        "date": _HTTP_DATE,
        "expires": _HTTP_DATE,
        "retry-after": "1",
        "cache-control": "no-cache",
        "content-language": "en",
        "content-disposition": 'attachment; filename="mock.bin"',
        "vary": "Accept",
        "www-authenticate": 'Bearer realm="api"',
        "set-cookie": "session=mock; Path=/; HttpOnly; SameSite=Lax",
        "age": "0",
    }
    return by_name.get(lower)


def _example_path(template: str) -> str:
    return re.sub(r"\{[^{}]*\}", "1", template)


def _declared_example(header: Mapping[str, Any]) -> Any:
    if "example" in header:
        return header["example"]
    examples = header.get("examples")
    if isinstance(examples, dict):
        for example in examples.values():
            if isinstance(example, dict) and "value" in example:
                return example["value"]
    schema = header.get("schema")
    if isinstance(schema, dict):
        for key in ("example", "default"):
            if key in schema:
                return schema[key]
        listed = schema.get("examples")
        if isinstance(listed, list) and listed:
            return listed[0]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return enum[0]
    return MISSING


def mock_headers(spec: ResponseSpec, operation: Operation, allow: str,
                 validators: ValidatorCache, notes: list[str]) -> dict[str, str]:
    """Return the headers a mock answer of response `spec` sends.

    Args:
        allow: the methods of the operation's path, as an ``Allow`` header would list them.
        notes: receives a line per header no value could be found for.
    """
    headers: dict[str, str] = {}
    for name, header in spec.headers.items():
        if name.lower() in _NOT_MOCKED or not isinstance(header, dict):
            continue
        schema = header.get("schema")
        value = _declared_example(header)
        if value is MISSING:
            fitting = _meaningful(name, operation, allow)
            if fitting is not None and (not isinstance(schema, dict) or _accepts(
                    validators, schema, fitting)):
                value = fitting
        if value is MISSING and isinstance(schema, dict):
            try:
                value = generate_value(schema, notes=[])
            except MockError as ex:
                notes.append(f"{spec.pointer}/headers/{name}: cannot generate a value ({ex})")
                continue
        if value is not MISSING:
            headers[name] = header_text(value)
    return headers


def _accepts(validators: ValidatorCache, schema: dict[str, Any], value: str) -> bool:
    try:
        return not validators.compile(schema).errors(value)
    except ValueError:  # NOTE: a schema the validators refuse was reported at load
        return False


def header_text(value: Any) -> str:
    """Return `value` as a header's text (``simple`` style: lists and objects comma-joined)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(header_text(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k},{header_text(v)}" for k, v in value.items())
    return str(value)
