"""The runtime's problem bodies shaped to the error schemas an operation declares.

The runtime's own answers (400, 401, 413, 503 ... and the `HTTPError`s handlers raise) are
RFC 9457 documents (`brrt_actors.problem`). When an operation declares a schema for such a
status, the answer must validate against it: BRRTRouter's ``ProblemDetails``, say, wants
``errors`` as an array of strings. At build time each operation gets, per status, a
`ProblemShape` that rewrites the document to fit; per error answer it costs one dict lookup
(nothing for an operation whose declared schemas take the document as it is). The answer
stays ``application/problem+json`` (RFC 9457), whatever JSON type is declared. A schema no
shape can satisfy is reported once, at start, as a WARNING naming its pointer; its answers
keep the closest shape.

What a shape does, from the schema:

- ``errors`` as strings: each item becomes ``"<in> <name or pointer>: <message>"``; as
  one string: those joined with ``"; "``; as objects: the members the item schema lacks are
  dropped when it forbids others (``field`` and ``msg`` are filled from name and message).
- ``status`` as a string when the schema says so; members the schema forbids
  (``additionalProperties: false``) are dropped; declared members the document lacks are
  filled from their usual synonyms (``message`` and ``error_description`` from ``detail``,
  ``error`` from ``title``, ``code`` from ``status``, ``trace_id`` from ``request_id`` ...).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from brrt_actors.coercion import resolve, schema_types
from brrt_actors.errors import HTTPError
from brrt_actors.problem import PROBLEM_CONTENT_TYPE, problem_answer
from brrt_actors.stages.response import Encoded

if TYPE_CHECKING:
    from brrt_actors.context import BuildContext
    from brrt_actors.spec.model import JSONSchema, MediaType, Operation, ResponseSpec

__all__ = ["ProblemShape", "compile_shape", "problem_shapes", "shaped_serve"]

logger = logging.getLogger("brrt_actors")

# The members of the runtime's document (`brrt_actors.problem.problem_document`).
_MEMBERS = ("type", "title", "status", "detail", "instance", "request_id", "errors")
# A declared member the document lacks -> the member it is filled from.
_SYNONYMS = {
    "message": "detail", "error_description": "detail", "description": "detail",
    "error": "title", "reason": "title",
    "code": "status", "status_code": "status", "statusCode": "status",
    "trace_id": "request_id", "traceId": "request_id", "requestId": "request_id",
    "correlation_id": "request_id", "path": "instance",
}
# The same, for the members of one error item.
_ITEM_SYNONYMS = {"field": ("name", "pointer"), "msg": ("message",), "location": ("in",),
                  "detail": ("message",)}

# A document with every member and every kind of error item, to check a shape against.
_SAMPLE_ERRORS = [{"in": "query", "name": "limit", "message": "must be <= 100"},
                  {"in": "body", "pointer": "/name", "message": "is required"},
                  {"in": "body", "message": "malformed JSON"}]


def _error_text(item: Any) -> str:
    if not isinstance(item, Mapping):
        return str(item)
    where = " ".join(str(part) for part in (item.get("in"), item.get("name", item.get("pointer")))
                     if part)
    message = str(item.get("message", ""))
    return f"{where}: {message}" if where else message


def _strings(errors: list[Any]) -> Any:
    return [_error_text(item) for item in errors]


def _joined(errors: list[Any]) -> Any:
    return "; ".join(_error_text(item) for item in errors)


class _Items:
    """Error items as objects the item schema accepts."""

    __slots__ = ("fill", "keep")

    def __init__(self, keep: frozenset[str] | None, fill: dict[str, tuple[str, ...]]) -> None:
        self.keep = keep
        self.fill = fill

    def __call__(self, errors: list[Any]) -> Any:
        out = []
        for item in errors:
            if not isinstance(item, Mapping):
                out.append(item)
                continue
            shaped = {key: value for key, value in item.items()
                      if self.keep is None or key in self.keep}
            for key, sources in self.fill.items():
                found = next((item[source] for source in sources if source in item), None)
                if key not in shaped and found is not None:
                    shaped[key] = found
            out.append(shaped)
        return out


class ProblemShape:
    """Turn the runtime's problem document into one a declared schema accepts.

    Attributes:
        pointer: where the schema is in the document.
    """

    __slots__ = ("_as_text", "_drop", "_errors", "_fill", "_needs_errors", "pointer")

    def __init__(self, pointer: str, *, drop: frozenset[str] = frozenset(),
                 errors: Callable[[list[Any]], Any] | None = None,
                 fill: Mapping[str, str] | None = None, as_text: frozenset[str] = frozenset(),
                 needs_errors: bool = False) -> None:
        self.pointer = pointer
        self._drop = drop
        self._errors = errors
        self._fill = dict(fill or {})
        self._as_text = as_text
        self._needs_errors = needs_errors

    @property
    def changes_nothing(self) -> bool:
        """True when the document goes out as it is."""
        return (not self._drop and self._errors is None and not self._fill
                and not self._as_text and not self._needs_errors)

    def apply(self, document: dict[str, Any]) -> dict[str, Any]:
        """Return `document` shaped to the schema (a new dict; `document` is left as it is)."""
        shaped = {key: value for key, value in document.items() if key not in self._drop}
        for key, source in self._fill.items():
            if source in document:
                shaped[key] = document[source]
        for key in self._as_text:
            value = shaped.get(key)
            if isinstance(value, int):
                shaped[key] = str(value)
        errors = document.get("errors")
        if errors is None and self._needs_errors:
            errors = []
        if errors is not None and "errors" not in self._drop:
            shaped["errors"] = self._errors(errors) if self._errors is not None else errors
        return shaped


def _json_media(spec: ResponseSpec) -> MediaType | None:
    """Pick the declared media type whose schema a problem must satisfy (None: no JSON one)."""
    by_name = {name.split(";", 1)[0].strip().lower(): media
               for name, media in spec.content.items()}
    if PROBLEM_CONTENT_TYPE in by_name:
        return by_name[PROBLEM_CONTENT_TYPE]
    for name, media in by_name.items():
        if name.endswith("+json") and "*" not in name:
            return media
    for name in ("application/json", "application/*+json", "application/*", "*/*"):
        if name in by_name:
            return by_name[name]
    return None


def _errors_shaper(prop: JSONSchema, root: JSONSchema,
                   problems: list[str]) -> Callable[[list[Any]], Any] | None:
    """How the error items become what `prop` wants (None: as they are)."""
    kinds = schema_types(prop, root)
    if not kinds or "array" in kinds:
        items = prop.get("items")
        if not isinstance(items, dict):
            return None
        item = resolve(items, root)
        item_kinds = schema_types(item, root)
        if item_kinds and "object" not in item_kinds:
            if "string" in item_kinds:
                return _strings
            problems.append(f"errors items must be {' or '.join(item_kinds)}")
            return None
        props = item.get("properties")
        names = props if isinstance(props, dict) else {}
        keep = frozenset(names) if item.get("additionalProperties") is False else None
        fill = {key: sources for key, sources in _ITEM_SYNONYMS.items() if key in names}
        return _Items(keep, fill) if keep is not None or fill else None
    if "string" in kinds:
        return _joined
    problems.append(f"errors must be {' or '.join(kinds)}")
    return None


def _text_only(schema: JSONSchema | None, root: JSONSchema) -> bool:
    kinds = schema_types(schema, root) if schema else []
    return "string" in kinds and "integer" not in kinds and "number" not in kinds


def compile_shape(spec: ResponseSpec) -> tuple[ProblemShape | None, list[str]]:
    """Compile the shape of problems answered under the declared response `spec`.

    Returns:
        The shape (None when the response declares no content), and what stops the shape
        from satisfying the schema as far as the schema's structure tells (the answer is
        also checked against the compiled schema: see `problem_shapes`).
    """
    if not spec.content:
        return None, []
    media = _json_media(spec)
    if media is None:
        return (ProblemShape(spec.pointer),
                [f"declares no JSON media type ({', '.join(spec.content)})"])
    pointer = media.pointer + "/schema"
    root = media.schema
    if not root:
        return ProblemShape(pointer), []
    schema = resolve(root, root)
    kinds = schema_types(schema, root)
    if kinds and "object" not in kinds:
        return ProblemShape(pointer), [f"must be {' or '.join(kinds)}"]
    problems: list[str] = []
    raw_props = schema.get("properties")
    props = ({name: resolve(sub, root) for name, sub in raw_props.items() if isinstance(sub, dict)}
             if isinstance(raw_props, dict) else {})
    closed = schema.get("additionalProperties") is False
    drop = frozenset(name for name in _MEMBERS if name not in props) if closed else frozenset()
    fill = {name: _SYNONYMS[name] for name in props
            if name not in _MEMBERS and name in _SYNONYMS}
    as_text = frozenset(name for name in ("status", *fill)
                        if name in props and _text_only(props[name], root))
    errors = _errors_shaper(props["errors"], root, problems) if "errors" in props else None
    listed = schema.get("required")
    required = listed if isinstance(listed, list) else []
    missing = [name for name in required if name not in _MEMBERS and name not in fill]
    if missing:
        problems.append(f"requires {', '.join(map(str, missing))}, which the runtime does "
                        "not give")
    return ProblemShape(pointer, drop=drop, errors=errors, fill=fill, as_text=as_text,
                        needs_errors="errors" in required), problems


def _rule(responses: Mapping[str, ResponseSpec], status: int) -> ResponseSpec | None:
    key = str(status)
    return (responses.get(key) or responses.get(f"{key[0]}XX") or responses.get(f"{key[0]}xx")
            or responses.get("default"))


def _checked_shape(spec: ResponseSpec, status: int, context: BuildContext) -> ProblemShape | None:
    """The shape of `spec`, checked against its schema; a misfit is reported once per schema."""
    shape, problems = compile_shape(spec)
    if shape is None:
        return None
    media = _json_media(spec)
    schema = media.schema if media is not None else None
    if schema:
        sample = {"type": "about:blank", "title": "Bad Request", "status": status,
                  "detail": "the request does not match the API description",
                  "instance": "/path", "request_id": "5f1c2a9e-0000002a",
                  "errors": _SAMPLE_ERRORS}
        validator = context.validators.compile(schema, pointer=shape.pointer)
        problems.extend(f"{where or '/'} {message}"
                        for where, message in validator.errors(shape.apply(sample))[:5])
    if problems:
        # NOTE: one schema ($ref'd by many responses) is one warning: keyed by its content.
        key = json.dumps(schema, sort_keys=True, default=repr) if schema else shape.pointer
        context.memo(("problem-shape-warning", key), partial(
            logger.warning, "%s: the runtime's problem answers cannot match this schema (%s); "
            "they go out shaped as near as they can be", shape.pointer,
            "; ".join(dict.fromkeys(problems))))
    return None if shape.changes_nothing else shape


def problem_shapes(operation: Operation, context: BuildContext) -> dict[int, ProblemShape]:
    """Return the shapes of `operation`'s problem answers, by status (only those that change).

    Each declared schema is compiled and checked once per app (`context.memo`), so a schema
    shared by many operations is reported at most once.
    """
    responses = {key if key[0].isdigit() else key.lower(): spec
                 for key, spec in operation.responses.items()}
    shapes: dict[int, ProblemShape] = {}
    for status in range(400, 600):
        spec = _rule(responses, status)
        if spec is None:
            continue
        shape = context.memo(("problem-shape", spec.pointer),
                             partial(_checked_shape, spec, status, context))
        if shape is not None:
            shapes[status] = shape
    return shapes


class Serve(Protocol):
    """An operation's ``serve`` (`brrt_actors.stages.OperationPipeline.serve`)."""

    def __call__(self, environ: dict[str, Any], path: str, raw_path_params: dict[str, str],
                 request_id: str) -> Encoded: ...


def shaped_serve(serve: Serve, shapes: Mapping[int, ProblemShape]) -> Serve:
    """Wrap an operation's ``serve`` so that its problem answers take the declared shapes."""
    lookup = shapes.get

    def serve_shaped(environ: dict[str, Any], path: str, raw_path_params: dict[str, str],
                     request_id: str) -> Encoded:
        try:
            return serve(environ, path, raw_path_params, request_id)
        except HTTPError as ex:
            shape = lookup(ex.status)
            if shape is None:
                raise
            answer: Encoded = problem_answer(ex, path, request_id, shape)
            return answer

    return serve_shaped
