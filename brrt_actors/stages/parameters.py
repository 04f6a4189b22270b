"""Path, query, header and cookie parameters: the stage that decodes them onto the request.

A `ParameterDecoder` is built once per operation at start: every declared parameter becomes a
small compiled reader (style and explode fixed, coercers for its schema's types chosen, its
validator compiled). Per request the decoder parses the query string and the Cookie header once
and runs the readers; errors are collected as items, never raised.

Where the rules live: the readers and the style rules (delimiters, percent-decoding, which of
repeated keys wins) in `brrt_actors.stages.parameter_styles`; splitting the query string and
the Cookie header in `brrt_actors.request_text`; the coercion rules in `coercion`.

An operation whose parameters are all path and query values read whole (`plain_coercer`)
gets a fast stage (`_plain_stage`) that reads them without the decoder's per-request
structures; a missing, malformed or invalid value sends the request through the decoder,
which lists the errors.

Choices made here:

- a value that cannot be coerced is reported at once (``'abc' is not a valid integer``) and is
  not validated again, so each bad parameter gives exactly one error item.
- header parameters named Accept, Content-Type or Authorization are ignored, as OpenAPI says.
- every cookie reaches the handler: the declared ones as their readers decode them, the
  undeclared ones as sent.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from fastjsonschema import JsonSchemaValueException

from brrt_actors.coercion import Coercer, InvalidValue
from brrt_actors.errors import SpecError
from brrt_actors.request_text import (
    decode_path_value,
    decode_query_value,
    parse_cookies,
    parse_query,
)
from brrt_actors.spec.model import MISSING, JSONSchema, Parameter
from brrt_actors.stages.parameter_styles import (
    ABSENT,
    Reader,
    Unsupported,
    build_reader,
    plain_coercer,
)
from brrt_actors.validation import SchemaValidator, ValidatorCache

if TYPE_CHECKING:
    from brrt_actors.context import BuildContext
    from brrt_actors.handler import Request
    from brrt_actors.spec.model import Operation
    from brrt_actors.stages import Stage

__all__ = ["DecodedParameters", "ParameterDecoder", "build"]


_ANNOTATIONS = frozenset({"title", "description", "example", "examples", "default",
                          "deprecated", "readOnly", "writeOnly", "$comment"})
_PRIMITIVES = frozenset({"string", "integer", "number", "boolean"})
# OpenAPI: "If in is header and the name is Accept, Content-Type or Authorization, the
# parameter definition SHALL be ignored."
_IGNORED_HEADERS = frozenset({"accept", "content-type", "authorization"})


class _Compiled:
    __slots__ = ("copy_default", "default", "key", "location", "name", "plain", "read",
                 "required", "validator")

    def __init__(self, param: Parameter, read: Reader,
                 validator: SchemaValidator | None) -> None:
        # The coercer of a parameter read as one whole value (see `plain_coercer`), or None.
        self.plain = plain_coercer(param)
        self.name = param.name
        self.location = param.location
        self.key = param.name.lower() if param.location == "header" else param.name
        self.read = read
        self.required = param.required or param.location == "path"
        self.default = param.default
        # NOTE: a mutable default is copied per use so a handler cannot change it for all.
        self.copy_default = isinstance(param.default, (dict, list))
        self.validator = validator


def _needs_validation(schema: JSONSchema | None) -> bool:
    """False when coercion alone guarantees the value fits (a bare primitive type)."""
    # PERF: `limit: {type: integer}` needs no validator call per request (~0.5 us each).
    if not schema:
        return False
    keys = schema.keys() - _ANNOTATIONS
    kind = schema.get("type")
    if keys == {"type"} and isinstance(kind, str) and kind in _PRIMITIVES:
        return False
    if keys == {"type", "items"} and kind == "array" and isinstance(schema["items"], dict):
        return _needs_validation(schema["items"])
    return True


class DecodedParameters(NamedTuple):
    """One request's parameters, decoded."""

    path: dict[str, Any]
    query: dict[str, Any]
    headers: dict[str, Any]
    """Declared header parameters, by lower-case name."""
    cookies: dict[str, Any]
    """Every cookie, the declared ones decoded."""
    errors: list[dict[str, Any]]


class ParameterDecoder:
    """Decode, coerce and validate one operation's declared parameters.

    Args:
        parameters: the operation's parameters (path-item ones merged in).
        validators: the app's validator cache (a private one by default).

    Raises:
        SpecError: a parameter's style does not fit its location or schema type.
    """

    __slots__ = ("_cookie", "_header", "_path", "_query")

    def __init__(self, parameters: list[Parameter],
                 validators: ValidatorCache | None = None) -> None:
        validators = ValidatorCache() if validators is None else validators
        compiled: dict[str, list[_Compiled]] = {"path": [], "query": [], "header": [],
                                                "cookie": []}
        problems: list[tuple[str, str]] = []
        query_names: set[str] = set()  # filled below; read by spread-out object readers
        for param in parameters:
            if param.location == "header" and param.name.lower() in _IGNORED_HEADERS:
                continue
            try:
                read = build_reader(param, query_names)
            except Unsupported as ex:
                problems.append((param.pointer, str(ex)))
                continue
            schema = param.schema
            validator = (validators.compile(schema, pointer=param.pointer + "/schema")
                         if schema is not None and _needs_validation(schema) else None)
            compiled[param.location].append(_Compiled(param, read, validator))
            if param.location == "query":
                query_names.add(param.name)
        if problems:
            raise SpecError(problems)
        self._path = tuple(compiled["path"])
        self._query = tuple(compiled["query"])
        self._header = tuple(compiled["header"])
        self._cookie = tuple(compiled["cookie"])

    def decode(self, raw_path_params: dict[str, str], environ: dict[str, Any]
               ) -> DecodedParameters:
        """Decode one request's parameters.

        Args:
            raw_path_params: the router's matched path segments (still percent-encoded).
            environ: the WSGI environ.

        Returns:
            The decoded values by location, and the error items.
        """
        errors: list[dict[str, Any]] = []
        path: dict[str, Any] = {}
        query: dict[str, Any] = {}
        headers: dict[str, Any] = {}
        cookies: dict[str, Any] = {}
        if self._path:
            _run(self._path, raw_path_params, path, errors)
        if self._query:
            _run(self._query, parse_query(environ.get("QUERY_STRING", "")), query, errors)
        if self._header:
            _run(self._header, environ, headers, errors)
        cookie_header = environ.get("HTTP_COOKIE")
        if cookie_header:
            # NOTE: the handler sees every cookie, so the header is parsed even when no cookie
            # parameter is declared; a request without cookies costs nothing here.
            jar = parse_cookies(cookie_header)
            for name, values in jar.items():
                cookies[name] = values[0]
            if self._cookie:
                _run(self._cookie, jar, cookies, errors)
        elif self._cookie:
            _run(self._cookie, {}, cookies, errors)
        return DecodedParameters(path, query, headers, cookies, errors)


def _run(params: tuple[_Compiled, ...], source: Any, out: dict[str, Any],
         errors: list[dict[str, Any]]) -> None:
    for param in params:
        try:
            value = param.read(source)
        except InvalidValue as ex:
            errors.append({"in": param.location, "name": param.name, "message": str(ex)})
            continue
        if value is ABSENT:
            if param.default is not MISSING:
                out[param.key] = (copy.deepcopy(param.default) if param.copy_default
                                  else param.default)
            elif param.required:
                errors.append({"in": param.location, "name": param.name,
                               "message": f"required {param.location} parameter is missing"})
            continue
        if param.validator is not None:
            problems = param.validator.errors(value)
            if problems:
                for pointer, message in problems:
                    errors.append({"in": param.location, "name": param.name,
                                   "message": f"{message} (at {pointer})" if pointer
                                   else message})
                continue
        out[param.key] = value


def build(operation: Operation, context: BuildContext) -> Stage | None:
    """Return the parameter stage, or None when the operation declares no parameter.

    Raises:
        SpecError: a parameter's style does not fit its location or schema type.
    """
    if not operation.parameters:
        return None
    decoder = ParameterDecoder(operation.parameters, context.validators)
    decode = decoder.decode

    # PERF: a closure, as every stage (see `brrt_actors.stages.actor`).
    def parameter_stage(request: Request) -> None:
        decoded = decode(request.raw_path_params, request.environ)
        request.path_params = decoded.path
        request.query = decoded.query
        request.header_params = decoded.headers
        request.cookies = decoded.cookies
        if decoded.errors:
            request.add_problems(decoded.errors)

    return _plain_stage(decoder, parameter_stage) or parameter_stage


# A parameter the fast path reads: (name, coercer, the validator's check or None, default,
# copy the default, required).
_Plain = tuple[str, Coercer, Callable[[Any], Any] | None, Any, bool, bool]


def _plain_stage(decoder: ParameterDecoder, full: Stage) -> Stage | None:
    """Return the fast path of an operation whose parameters are all plain, else None.

    Plain: path and query parameters, each read as one whole value (`plain_coercer`). A
    request whose values are all present (or defaulted) and valid gets exactly what
    `full` would give; for any other (a missing, malformed or invalid value), `full` runs
    from the start and lists the errors.
    """
    if decoder._header or decoder._cookie:
        return None
    path_plain = [_plain(param) for param in decoder._path]
    query_plain = [_plain(param) for param in decoder._query]
    if None in path_plain or None in query_plain:
        return None
    path_reads = tuple(read for read in path_plain if read is not None)
    query_reads = tuple(read for read in query_plain if read is not None)

    # PERF: no per-location dicts, readers or error lists: `?limit=10` 2.3 -> 1.1 us (the
    # pet store's stage timed alone, CPU time).
    def plain_parameter_stage(request: Request) -> None:
        environ = request.environ
        path: dict[str, Any] = {}
        query: dict[str, Any] = {}
        try:
            raw_params = request.raw_path_params
            for name, coerce, check, _, _, _ in path_reads:
                raw = raw_params.get(name)
                if raw is None:
                    full(request)
                    return
                if "%" in raw or not raw.isascii():
                    raw = decode_path_value(raw)
                value = coerce(raw)
                if check is not None:
                    check(value)
                path[name] = value
            if query_reads:
                source = parse_query(environ.get("QUERY_STRING", ""))
                for name, coerce, check, default, copy_default, required in query_reads:
                    values = source.get(name)
                    if values is None:
                        if default is not MISSING:
                            query[name] = copy.deepcopy(default) if copy_default else default
                        elif required:
                            full(request)
                            return
                        continue
                    raw = values[-1]
                    if "%" in raw or "+" in raw or not raw.isascii():
                        raw = decode_query_value(raw)
                    value = coerce(raw)
                    if check is not None:
                        check(value)
                    query[name] = value
        except (InvalidValue, JsonSchemaValueException):
            full(request)
            return
        request.path_params = path
        request.query = query
        cookie_header = environ.get("HTTP_COOKIE")
        if cookie_header:
            # NOTE: as `ParameterDecoder.decode`: the handler sees every cookie.
            request.cookies = {name: values[0]
                               for name, values in parse_cookies(cookie_header).items()}

    if len(path_reads) == 1 and not query_reads:
        return _one_path_stage(path_reads[0], plain_parameter_stage)
    return plain_parameter_stage


def _one_path_stage(read: _Plain, plain: Stage) -> Stage:
    """The fast path of an operation whose one parameter is a plain path parameter."""
    name, coerce, check = read[:3]

    # PERF: the usual `/things/{id}`, no loop: 2.0 -> 0.5 us for the pet store's id (the
    # stage timed alone, CPU time; `plain` takes 0.65).
    def path_parameter_stage(request: Request) -> None:
        raw = request.raw_path_params.get(name)
        if raw is None or "%" in raw or not raw.isascii() or "HTTP_COOKIE" in request.environ:
            plain(request)
            return
        try:
            value = coerce(raw)
            if check is not None:
                check(value)
        except (InvalidValue, JsonSchemaValueException):
            plain(request)
            return
        request.path_params = {name: value}

    return path_parameter_stage


def _plain(param: _Compiled) -> _Plain | None:
    if param.plain is None:
        return None
    check: Callable[[Any], Any] | None = None
    if param.validator is not None:
        # NOTE: the compiled validator itself raises JsonSchemaValueException at an error.
        check = _bounds_check(param.validator.schema) or param.validator.check
    return (param.name, param.plain, check, param.default, param.copy_default, param.required)


_BOUNDS = frozenset({"type", "minimum", "maximum"})


def _bounds_check(schema: JSONSchema) -> Callable[[Any], Any] | None:
    """Return a check of a number schema that says only `minimum` / `maximum`, else None.

    Its value comes from the schema type's coercer (an int, or a finite float), so the two
    comparisons are the whole validation; out of bounds it raises `InvalidValue`, and the
    full stage words the error.
    """
    if (schema.get("type") not in ("integer", "number")
            or not schema.keys() - _ANNOTATIONS <= _BOUNDS):
        return None
    low, high = schema.get("minimum", -math.inf), schema.get("maximum", math.inf)
    if type(low) not in (int, float) or type(high) not in (int, float):
        return None

    # PERF: two comparisons instead of a call of the compiled validator (~0.12 us).
    def within_bounds(value: int | float) -> None:
        if not low <= value <= high:
            raise InvalidValue("out of bounds")

    return within_bounds
