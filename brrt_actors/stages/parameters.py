"""Path, query, header and cookie parameters: style parsing, percent-decoding, coercion.

A `ParameterDecoder` is built once per operation at start: every declared parameter becomes a
small compiled reader (style and explode fixed, coercers for its schema's types chosen, its
validator compiled). Per request the decoder parses the query string and the Cookie header once
and runs the readers; errors are collected as items, never raised.

Order of work for one raw value: split by the style's delimiters first, percent-decode each
piece after (so an encoded ``%2C`` stays a literal comma inside a value), then coerce each
piece to its schema type, then validate.

Choices (the coercion rules themselves are in `coercion`):

- a value that cannot be coerced is reported at once (``'abc' is not a valid integer``) and is
  not validated again, so each bad parameter gives exactly one error item.
- a repeated query key for a non-array parameter: the last one wins (as in FastAPI); a
  repeated cookie: the first one wins (RFC 6265 sends the most specific first).
- header parameters named Accept, Content-Type or Authorization are ignored, as OpenAPI says.
- spaceDelimited / pipeDelimited split on ``%20``, ``+``, `` `` / ``|``, ``%7C`` (the encoded
  forms too: a client cannot send a raw space or pipe); form and simple split on a raw comma.
- declared cookies are percent-decoded (form style); undeclared ones are passed on as sent.
  A cookie array is always comma-separated (cookie names cannot repeat reliably).
- an exploded form object with no named properties takes every query key that no other
  parameter claims.
"""
from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import unquote, unquote_plus

from brrt_actors.coercion import (
    InvalidValue,
    ObjectCoercer,
    coerce_items,
    compile_coercer,
    items_coercer,
    loads_json,
    resolve,
    schema_types,
)
from brrt_actors.errors import SpecError
from brrt_actors.spec.model import MISSING, JSONSchema, Parameter
from brrt_actors.validation import SchemaValidator, ValidatorCache

if TYPE_CHECKING:
    from brrt_actors.context import BuildContext
    from brrt_actors.handler import Request
    from brrt_actors.spec.model import Operation

__all__ = ["ParameterDecoder", "parse_cookies", "parse_query"]


# Reads one parameter from its source (path dict, query dict, environ, cookie jar).
_Reader = Callable[[Any], Any]
# Percent-decodes one raw piece (or strips it, for headers).
_Decode = Callable[[str], str]

# Returned by a reader when the parameter is not in the request at all.
_ABSENT: Any = type("Absent", (), {"__repr__": lambda self: "ABSENT"})()

# NOTE: `|` and space are not allowed raw in a URI, so a conforming client always sends them
# percent-encoded: the encoded forms are the delimiters. A comma is a legal raw sub-delimiter,
# so for form style only a raw comma splits and an encoded %2C is data.
_SPACE_SPLIT = re.compile(r"%20|\+| ").split
_PIPE_SPLIT = re.compile(r"%7[cC]|\|").split
_ANNOTATIONS = frozenset({"title", "description", "example", "examples", "default",
                          "deprecated", "readOnly", "writeOnly", "$comment"})
_PRIMITIVES = frozenset({"string", "integer", "number", "boolean"})
# OpenAPI: "If in is header and the name is Accept, Content-Type or Authorization, the
# parameter definition SHALL be ignored."
_IGNORED_HEADERS = frozenset({"accept", "content-type", "authorization"})
_STYLES = {
    "path": frozenset({"simple", "label", "matrix"}),
    "query": frozenset({"form", "spaceDelimited", "pipeDelimited", "deepObject"}),
    "header": frozenset({"simple"}),
    "cookie": frozenset({"form", "cookie"}),
}


# --- request-side parsing ---------------------------------------------------------------

def _wsgi_text(raw: str) -> str:
    # NOTE: PEP 3333 hands URL parts over as latin-1-decoded bytes; undo that for raw UTF-8.
    try:
        return raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return raw


def unquote_query(raw: str) -> str:
    """Decode one name or value of a query string (``+`` is a space; WSGI text fixed)."""
    if not raw.isascii():
        raw = _wsgi_text(raw)
    return unquote_plus(raw) if ("%" in raw or "+" in raw) else raw


def _unquote_path(raw: str) -> str:
    if not raw.isascii():
        raw = _wsgi_text(raw)
    return unquote(raw)


def _strip(raw: str) -> str:
    return raw.strip()


def parse_query(query_string: str) -> dict[str, list[str]]:
    """Split a query string into {decoded name: [raw, still percent-encoded values]}.

    Blank values are kept (``a=&b`` gives ``{"a": [""], "b": [""]}``).
    """
    out: dict[str, list[str]] = {}
    if not query_string:
        return out
    for pair in query_string.split("&"):
        if not pair:
            continue
        key, _, value = pair.partition("=")
        if "%" in key or "+" in key or not key.isascii():
            key = unquote_query(key)
        values = out.get(key)
        if values is None:
            out[key] = [value]
        else:
            values.append(value)
    return out


def parse_cookies(header: str) -> dict[str, list[str]]:
    """Split a Cookie header into {name: [raw values in order]} (surrounding quotes removed)."""
    out: dict[str, list[str]] = {}
    for chunk in header.split(";"):
        name, sep, value = chunk.partition("=")
        name = name.strip()
        if not sep or not name:
            continue
        value = value.strip()
        if len(value) > 1 and value[0] == value[-1] == '"':
            value = value[1:-1]
        values = out.get(name)
        if values is None:
            out[name] = [value]
        else:
            values.append(value)
    return out


def _pairs(pieces: list[str], decode: _Decode) -> list[tuple[str, str]]:
    # Non-exploded object: "R,100,G,200" split into pieces already.
    if len(pieces) % 2:
        raise InvalidValue("expected comma-separated name,value pairs")
    return [(decode(pieces[i]), decode(pieces[i + 1])) for i in range(0, len(pieces), 2)]


def _assignments(pieces: list[str], decode: _Decode) -> list[tuple[str, str]]:
    # Exploded object: "R=100,G=200" split into pieces already.
    out: list[tuple[str, str]] = []
    for piece in pieces:
        key, _, value = piece.partition("=")
        out.append((decode(key), decode(value)))
    return out


class _Compiled:
    __slots__ = ("copy_default", "default", "key", "location", "name", "read", "required",
                 "validator")

    def __init__(self, param: Parameter, read: _Reader,
                 validator: SchemaValidator | None) -> None:
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
                read = _build_reader(param, query_names)
            except _Unsupported as ex:
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
        if value is _ABSENT:
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


# --- building one parameter's reader ---------------------------------------------------

class _Unsupported(Exception):
    pass


def _build_reader(param: Parameter, query_names: set[str]) -> _Reader:
    location = param.location
    if location not in _STYLES:
        raise _Unsupported(f"unsupported parameter location {location!r}")
    if param.content_type is not None:
        return _content_reader(param)
    style = param.style
    if style not in _STYLES[location]:
        allowed = ", ".join(sorted(_STYLES[location]))
        raise _Unsupported(f"style {style!r} cannot be used in {location}; use one of: {allowed}")
    schema = param.schema or {}
    types = [t for t in schema_types(schema) if t != "null"]
    shape = types[0] if types and types[0] in ("array", "object") else "primitive"
    if location == "path":
        return _path_reader(param, shape, schema)
    if location == "header":
        return _header_reader(param, shape, schema)
    if location == "cookie":
        return _multi_reader(param, shape, schema, 0, unquote, query_names=None)
    if style in ("spaceDelimited", "pipeDelimited") and shape == "primitive":
        raise _Unsupported(f"style {style!r} applies to arrays and objects only")
    if style == "deepObject":
        if shape != "object":
            raise _Unsupported("style 'deepObject' applies to objects only")
        return _deep_object_reader(param, schema)
    return _multi_reader(param, shape, schema, -1, unquote_query, query_names)


def _content_reader(param: Parameter) -> _Reader:
    media = (param.content_type or "").split(";", 1)[0].strip().lower()
    is_json = media == "application/json" or media.endswith("+json")
    name = param.name
    location = param.location
    if location == "path":
        def raw_value(source: Any) -> Any:
            raw = source.get(name)
            return _ABSENT if raw is None else _unquote_path(raw)
    elif location == "header":
        env_key = _environ_key(name)

        def raw_value(source: Any) -> Any:
            return source.get(env_key, _ABSENT)
    else:
        index, decode = (-1, unquote_query) if location == "query" else (0, unquote)

        def raw_value(source: Any) -> Any:
            values = source.get(name)
            return _ABSENT if values is None else decode(values[index])

    if not is_json:
        return raw_value

    def read(source: Any) -> Any:
        raw = raw_value(source)
        return raw if raw is _ABSENT else loads_json(raw)

    return read


def _environ_key(name: str) -> str:
    key = name.upper().replace("-", "_")
    return key if key == "CONTENT_LENGTH" else "HTTP_" + key


def _path_reader(param: Parameter, shape: str, schema: JSONSchema) -> _Reader:
    name, style, explode = param.name, param.style, param.explode
    decode = _unquote_path
    # What the value starts with, and the delimiters of arrays / exploded objects.
    if style == "simple":
        prefix, array_sep, object_sep = "", ",", ","
    elif style == "label":
        prefix = "."
        array_sep = object_sep = "." if explode else ","
    else:  # matrix
        prefix, array_sep, object_sep = ";" + name + "=", ",", ";"
        if explode and shape != "primitive":
            prefix = ";"
    bare = prefix[:-1] if prefix.endswith("=") else None  # ";id" alone: an empty value
    hint = f"expected a {style}-style value starting with {prefix!r}"

    def body_of(raw: str) -> str:
        if raw.startswith(prefix):
            return raw[len(prefix):]
        if raw == bare:
            return ""
        raise InvalidValue(hint)

    if shape == "primitive":
        coerce = compile_coercer(schema)

        def read_primitive(source: Any) -> Any:
            raw = source.get(name)
            return _ABSENT if raw is None else coerce(decode(body_of(raw)))

        return read_primitive
    if shape == "array":
        items = items_coercer(schema, schema)
        if style == "matrix" and explode:
            item_prefix = name + "="

            def pieces_of(body: str) -> list[str]:
                if body == name:  # ";id" alone: the empty array
                    return []
                pieces = []
                for piece in body.split(";"):
                    if not piece.startswith(item_prefix) and piece != name:
                        raise InvalidValue(f"expected ';{name}=<value>' for every item")
                    pieces.append(piece[len(item_prefix):])
                return pieces
        else:
            def pieces_of(body: str) -> list[str]:
                return body.split(array_sep)

        def read_array(source: Any) -> Any:
            raw = source.get(name)
            if raw is None:
                return _ABSENT
            body = body_of(raw)
            return coerce_items(items, map(decode, pieces_of(body))) if body else []

        return read_array
    build = ObjectCoercer(schema)

    def read_object(source: Any) -> Any:
        raw = source.get(name)
        if raw is None:
            return _ABSENT
        body = body_of(raw)
        if not body:
            return {}
        if explode:
            return build(_assignments(body.split(object_sep), decode))
        return build(_pairs(body.split(","), decode))

    return read_object


def _header_reader(param: Parameter, shape: str, schema: JSONSchema) -> _Reader:
    env_key = _environ_key(param.name)
    if shape == "primitive":
        coerce = compile_coercer(schema)

        def read_primitive(environ: Any) -> Any:
            raw = environ.get(env_key)
            return _ABSENT if raw is None else coerce(raw.strip())

        return read_primitive
    if shape == "array":
        items = items_coercer(schema, schema)

        def read_array(environ: Any) -> Any:
            raw = environ.get(env_key)
            if raw is None:
                return _ABSENT
            return coerce_items(items, map(_strip, raw.split(","))) if raw.strip() else []

        return read_array
    build = ObjectCoercer(schema)
    explode = param.explode

    def read_object(environ: Any) -> Any:
        raw = environ.get(env_key)
        if raw is None:
            return _ABSENT
        if not raw.strip():
            return {}
        pieces = raw.split(",")
        return build(_assignments(pieces, _strip) if explode else _pairs(pieces, _strip))

    return read_object


def _multi_reader(param: Parameter, shape: str, schema: JSONSchema, index: int,
                  decode: _Decode, query_names: set[str] | None) -> _Reader:
    """Query (form, spaceDelimited, pipeDelimited) and cookie (form) parameters.

    `index` picks the value of a repeated key for non-arrays: -1 last (query), 0 first
    (cookie).
    """
    name, style, explode = param.name, param.style, param.explode
    if shape == "primitive":
        coerce = compile_coercer(schema)

        def read_primitive(source: Any) -> Any:
            values = source.get(name)
            return _ABSENT if values is None else coerce(decode(values[index]))

        return read_primitive
    split: Callable[[str], list[str]]
    if style == "spaceDelimited":
        split = _SPACE_SPLIT
    elif style == "pipeDelimited":
        split = _PIPE_SPLIT
    else:
        split = _split_comma
    if shape == "array":
        items = items_coercer(schema, schema)
        # NOTE: cookies cannot repeat a name reliably, so a cookie array is always read
        # comma-separated (every occurrence is split).
        spread = explode and query_names is not None

        def read_array(source: Any) -> Any:
            values = source.get(name)
            if values is None:
                return _ABSENT
            if values == [""]:
                return []
            if spread:
                return coerce_items(items, map(decode, values))
            pieces = [piece for value in values for piece in split(value)]
            return coerce_items(items, map(decode, pieces))

        return read_array
    build = ObjectCoercer(schema)
    if not explode:
        def read_object(source: Any) -> Any:
            values = source.get(name)
            if values is None:
                return _ABSENT
            value = values[index]
            return build(_pairs(split(value), decode)) if value else {}

        return read_object
    # Exploded object: its properties are separate keys (R=100&G=200).
    names = build.names
    # No properties named: every key no other parameter claims belongs to the object.
    open_ended = not names and resolve(schema, schema).get("additionalProperties") is not False
    others = query_names if query_names is not None else set()

    def read_spread(source: Any) -> Any:
        pairs: list[tuple[str, str]] = []
        for key, values in source.items():
            if key in names or (open_ended and key != name
                                and key.partition("[")[0] not in others):
                if key in build.arrays:
                    pairs.extend((key, decode(value)) for value in values)
                else:
                    pairs.append((key, decode(values[index])))
        return build(pairs) if pairs else _ABSENT

    return read_spread


def _split_comma(value: str) -> list[str]:
    return value.split(",")


def _deep_object_reader(param: Parameter, schema: JSONSchema) -> _Reader:
    name = param.name
    opening = name + "["
    build = ObjectCoercer(schema)

    def read(source: Any) -> Any:
        pairs: list[tuple[str, str]] = []
        for key, values in source.items():
            if key.startswith(opening) and key.endswith("]"):
                prop = key[len(opening):-1]
                if prop in build.arrays:
                    pairs.extend((prop, unquote_query(value)) for value in values)
                else:
                    pairs.append((prop, unquote_query(values[-1])))
        return build(pairs) if pairs else _ABSENT

    return read


class ParameterStage:
    """Decode the operation's parameters onto the request; problems are collected."""

    __slots__ = ("_decode",)

    def __init__(self, decoder: ParameterDecoder) -> None:
        self._decode = decoder.decode

    def __call__(self, request: Request) -> None:
        decoded = self._decode(request.raw_path_params, request.environ)
        request.path_params = decoded.path
        request.query = decoded.query
        request.header_params = decoded.headers
        request.cookies = decoded.cookies
        if decoded.errors:
            request.add_problems(decoded.errors)


def build(operation: Operation, context: BuildContext) -> ParameterStage | None:
    """Return the parameter stage, or None when the operation declares no parameter.

    Raises:
        SpecError: a parameter's style does not fit its location or schema type.
    """
    if not operation.parameters:
        return None
    return ParameterStage(ParameterDecoder(operation.parameters, context.validators))
