"""The mock handler: answer an operation from its spec alone.

It serves the operation's first success response with the declared example — only when that
example validates against the response schema, otherwise with a generated value and a note
(logged once at start) saying so.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import ujson

from brrt_actors.handler import Response
from brrt_actors.mock.values import MockError, generate_value
from brrt_actors.spec.model import MISSING, MediaType, Operation, ResponseSpec
from brrt_actors.validation import ValidatorCache

if TYPE_CHECKING:
    from brrt_actors.handler import Request

MockHandler = Callable[["Request"], Response]

# A 1x1 transparent PNG: the placeholder for image/png bodies.
_TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000b4944415478da636000020000050001e9fadcd80000000049454e44ae426082")
_PLACEHOLDER_BYTES = b"brrt_actors mock body\n"


def build_mock_handler(operation: Operation, validators: ValidatorCache | None = None
                       ) -> tuple[MockHandler, list[str]]:
    """Return a handler answering `operation` from its spec, and notes to log once.

    The handler serves the first 2xx response (in declared order; ``2XX`` counts, else
    ``default``) with its declared example when the example validates against the response
    schema, otherwise with a value built by `generate_value`. A JSON media type is preferred;
    other types get a placeholder (an SSE response streams one event). `validators` is the
    app's validator cache (a private one by default).
    """
    validators = ValidatorCache() if validators is None else validators
    notes: list[str] = []
    spec = _success_response(operation, notes)
    if spec is None:
        return (lambda request: Response(204)), notes
    status = int(spec.status.upper().replace("XX", "00")) if spec.status[0].isdigit() else 200
    headers = _mock_headers(spec, notes)
    if not spec.content:
        return (lambda request: Response(status, None, headers)), notes
    media = _pick_media(spec.content)
    kind = _media_kind(media.content_type)
    value = _media_value(media, kind, notes, validators)
    if kind == "json":
        content_type = media.content_type if "*" not in media.content_type else "application/json"

        def answer_json(request: Request) -> Response:
            # PERF: the value is built once at start; it is shared, never mutated.
            return Response(status, value, headers, content_type)
        return answer_json, notes
    if kind == "sse":
        data = value if isinstance(value, str) else ujson.dumps(value)
        event = ("event: message\n" + "".join(f"data: {line}\n" for line in data.splitlines())
                 + "\n").encode()

        def answer_sse(request: Request) -> Response:
            chunks: Iterator[bytes] = iter((event,))  # a fresh, finite stream per request
            return Response(status, chunks, headers, "text/event-stream")
        return answer_sse, notes
    if kind == "text":
        content_type = media.content_type if "*" not in media.content_type else "text/plain"
        text = value if isinstance(value, str) else ujson.dumps(value)
        return (lambda request: Response(status, text, headers, content_type)), notes
    if isinstance(value, (bytes, str)) and value is not MISSING:
        body = value.encode() if isinstance(value, str) else value
    else:
        body = _TINY_PNG if media.content_type == "image/png" else _PLACEHOLDER_BYTES
    content_type = (media.content_type if "*" not in media.content_type
                    else "application/octet-stream")
    return (lambda request: Response(status, body, headers, content_type)), notes


def _success_response(operation: Operation, notes: list[str]) -> ResponseSpec | None:
    for status, spec in operation.responses.items():
        if status.startswith("2"):
            return spec
    if "default" in operation.responses:
        return operation.responses["default"]
    if operation.responses:
        spec = next(iter(operation.responses.values()))
        notes.append(f"{operation.pointer}: no 2xx or default response: mocking {spec.status}")
        return spec
    notes.append(f"{operation.pointer}: no responses declared: mocking 204")
    return None


def _pick_media(content: dict[str, MediaType]) -> MediaType:
    for media in content.values():
        if media.content_type == "application/json":
            return media
    for media in content.values():
        if media.content_type.endswith("+json"):
            return media
    return next(iter(content.values()))


def _media_kind(content_type: str) -> str:
    if content_type in ("application/json", "*/*") or content_type.endswith("+json"):
        return "json"
    if content_type == "text/event-stream":
        return "sse"
    if content_type.startswith("text/") or content_type.endswith(("/xml", "+xml")):
        return "text"
    return "binary"


def _media_value(media: MediaType, kind: str, notes: list[str],
                 validators: ValidatorCache) -> Any:
    """The example when it validates, else a generated value (a note says which)."""
    schema = media.schema
    if media.example is not MISSING:
        if schema is None:
            return media.example
        errors = validators.compile(schema).errors(media.example)
        if not errors:
            return media.example
        notes.append(f"{media.pointer}: example does not match its schema "
                      f"({_describe(errors)}): serving a generated value")
    if schema is None:
        return {} if kind == "json" else (
            "mock event" if kind == "sse" else "mock" if kind == "text" else MISSING)
    if kind == "binary" and schema.get("format") == "binary":
        return MISSING  # placeholder bytes
    generated: list[str] = []
    try:
        value = generate_value(schema, notes=generated)
    except MockError as ex:
        notes.append(f"{media.pointer}: cannot generate a value ({ex}): serving no body")
        return None
    notes.extend(f"{media.pointer}: {note}" for note in generated)
    errors = validators.compile(schema).errors(value)
    if errors:
        notes.append(f"{media.pointer}: the generated value does not match the schema either "
                     f"({_describe(errors)})")
    return value


def _mock_headers(spec: ResponseSpec, notes: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, header in spec.headers.items():
        if name.lower() == "content-type" or not isinstance(header, dict):
            continue
        value = header.get("example", MISSING)
        if value is MISSING and isinstance(header.get("schema"), dict):
            try:
                value = generate_value(header["schema"], notes=[])
            except MockError as ex:
                notes.append(f"{spec.pointer}/headers/{name}: cannot generate a value ({ex})")
                continue
        if value is not MISSING:
            headers[name] = _header_text(value)
    return headers


def _header_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_header_text(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k},{_header_text(v)}" for k, v in value.items())
    return str(value)


def _describe(errors: list[tuple[str, str]]) -> str:
    shown = "; ".join(f"{pointer or '/'}: {message}" for pointer, message in errors[:3])
    return shown + (f"; and {len(errors) - 3} more" if len(errors) > 3 else "")
