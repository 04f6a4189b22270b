"""How one parameter's raw value is read: by location and style (OpenAPI's style / explode).

`build_reader` turns one declared parameter into a reader, at start. Order of work for one
raw value: split by the style's delimiters first, percent-decode each piece after (so an
encoded ``%2C`` stays a literal comma inside a value), then coerce each piece to its schema
type; the parameter stage validates what the reader returns.

Choices (the coercion rules themselves are in `coercion`):

- a repeated query key for a non-array parameter: the last one wins (as in FastAPI); a
  repeated cookie: the first one wins (RFC 6265 sends the most specific first).
- spaceDelimited / pipeDelimited split on ``%20``, ``+``, `` `` / ``|``, ``%7C`` (the encoded
  forms too: a client cannot send a raw space or pipe); form and simple split on a raw comma.
- declared cookies are percent-decoded (form style). A cookie array is always
  comma-separated (cookie names cannot repeat reliably).
- an exploded form object with no named properties takes every query key that no other
  parameter claims.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from brrt_actors.coercion import (
    Coercer,
    InvalidValue,
    ObjectCoercer,
    coerce_items,
    compile_coercer,
    items_coercer,
    loads_json,
    resolve,
    schema_types,
)
from brrt_actors.request_text import (
    decode_cookie_value,
    decode_path_value,
    decode_query_value,
)
from brrt_actors.spec.model import JSONSchema, Parameter

__all__ = ["ABSENT", "Reader", "Unsupported", "build_reader", "plain_coercer"]


# Reads one parameter from its source (path dict, query dict, environ, cookie jar).
Reader = Callable[[Any], Any]
# Percent-decodes one raw piece (or strips it, for headers).
_Decode = Callable[[str], str]

# Returned by a reader when the parameter is not in the request at all.
ABSENT: Any = type("Absent", (), {"__repr__": lambda self: "ABSENT"})()

# NOTE: `|` and space are not allowed raw in a URI, so a conforming client always sends them
# percent-encoded: the encoded forms are the delimiters. A comma is a legal raw sub-delimiter,
# so for form style only a raw comma splits and an encoded %2C is data.
_SPACE_SPLIT = re.compile(r"%20|\+| ").split
_PIPE_SPLIT = re.compile(r"%7[cC]|\|").split
_STYLES = {
    "path": frozenset({"simple", "label", "matrix"}),
    "query": frozenset({"form", "spaceDelimited", "pipeDelimited", "deepObject"}),
    "header": frozenset({"simple"}),
    "cookie": frozenset({"form", "cookie"}),
}


def _strip(raw: str) -> str:
    return raw.strip()


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


# --- building one parameter's reader ---------------------------------------------------

class Unsupported(Exception):
    """The parameter's location or style cannot be read (a spec mistake, found at start)."""


def build_reader(param: Parameter, query_names: set[str]) -> Reader:
    """Return the reader of one declared parameter.

    Args:
        param: the parameter.
        query_names: the names of the operation's query parameters; filled by the caller as
            it goes, and read per request by an open-ended exploded object.

    Raises:
        Unsupported: the style does not fit the location or the schema's type.
    """
    location = param.location
    if location not in _STYLES:
        raise Unsupported(f"unsupported parameter location {location!r}")
    if param.content_type is not None:
        return _content_reader(param)
    style = param.style
    if style not in _STYLES[location]:
        allowed = ", ".join(sorted(_STYLES[location]))
        raise Unsupported(f"style {style!r} cannot be used in {location}; use one of: {allowed}")
    schema = param.schema or {}
    types = [t for t in schema_types(schema) if t != "null"]
    shape = types[0] if types and types[0] in ("array", "object") else "primitive"
    if location == "path":
        return _path_reader(param, shape, schema)
    if location == "header":
        return _header_reader(param, shape, schema)
    if location == "cookie":
        return _multi_reader(param, shape, schema, 0, decode_cookie_value, query_names=None)
    if style in ("spaceDelimited", "pipeDelimited") and shape == "primitive":
        raise Unsupported(f"style {style!r} applies to arrays and objects only")
    if style == "deepObject":
        if shape != "object":
            raise Unsupported("style 'deepObject' applies to objects only")
        return _deep_object_reader(param, schema)
    return _multi_reader(param, shape, schema, -1, decode_query_value, query_names)


_PLAIN_TYPES = frozenset({"string", "integer", "number", "boolean", "null"})


def plain_coercer(param: Parameter) -> Coercer | None:
    """Return the coercer of a parameter read as one whole value, or None for any other.

    Such a parameter (a path parameter of style simple, or a query parameter of style form,
    without ``content``, whose schema admits only primitive types) is read exactly as its
    reader does: the raw value (the last one of a repeated query key), percent-decoded by
    its location's rule (`decode_path_value`, `decode_query_value`), then coerced by the
    returned function. The parameter stage's fast path reads those itself.
    """
    if param.content_type is not None:
        return None
    if (param.location, param.style) not in (("path", "simple"), ("query", "form")):
        return None
    schema = param.schema or {}
    if not set(schema_types(schema)) <= _PLAIN_TYPES:
        return None
    return compile_coercer(schema)


def _content_reader(param: Parameter) -> Reader:
    media = (param.content_type or "").split(";", 1)[0].strip().lower()
    is_json = media == "application/json" or media.endswith("+json")
    name = param.name
    location = param.location
    if location == "path":
        def raw_value(source: Any) -> Any:
            raw = source.get(name)
            return ABSENT if raw is None else decode_path_value(raw)
    elif location == "header":
        env_key = _environ_key(name)

        def raw_value(source: Any) -> Any:
            return source.get(env_key, ABSENT)
    else:
        index, decode = ((-1, decode_query_value) if location == "query"
                         else (0, decode_cookie_value))

        def raw_value(source: Any) -> Any:
            values = source.get(name)
            return ABSENT if values is None else decode(values[index])

    if not is_json:
        return raw_value

    def read(source: Any) -> Any:
        raw = raw_value(source)
        return raw if raw is ABSENT else loads_json(raw)

    return read


def _environ_key(name: str) -> str:
    key = name.upper().replace("-", "_")
    return key if key == "CONTENT_LENGTH" else "HTTP_" + key


def _path_reader(param: Parameter, shape: str, schema: JSONSchema) -> Reader:
    name, style, explode = param.name, param.style, param.explode
    decode = decode_path_value
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
            return ABSENT if raw is None else coerce(decode(body_of(raw)))

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
                return ABSENT
            body = body_of(raw)
            return coerce_items(items, map(decode, pieces_of(body))) if body else []

        return read_array
    build = ObjectCoercer(schema)

    def read_object(source: Any) -> Any:
        raw = source.get(name)
        if raw is None:
            return ABSENT
        body = body_of(raw)
        if not body:
            return {}
        if explode:
            return build(_assignments(body.split(object_sep), decode))
        return build(_pairs(body.split(","), decode))

    return read_object


def _header_reader(param: Parameter, shape: str, schema: JSONSchema) -> Reader:
    env_key = _environ_key(param.name)
    if shape == "primitive":
        coerce = compile_coercer(schema)

        def read_primitive(environ: Any) -> Any:
            raw = environ.get(env_key)
            return ABSENT if raw is None else coerce(raw.strip())

        return read_primitive
    if shape == "array":
        items = items_coercer(schema, schema)

        def read_array(environ: Any) -> Any:
            raw = environ.get(env_key)
            if raw is None:
                return ABSENT
            return coerce_items(items, map(_strip, raw.split(","))) if raw.strip() else []

        return read_array
    build = ObjectCoercer(schema)
    explode = param.explode

    def read_object(environ: Any) -> Any:
        raw = environ.get(env_key)
        if raw is None:
            return ABSENT
        if not raw.strip():
            return {}
        pieces = raw.split(",")
        return build(_assignments(pieces, _strip) if explode else _pairs(pieces, _strip))

    return read_object


def _multi_reader(param: Parameter, shape: str, schema: JSONSchema, index: int,
                  decode: _Decode, query_names: set[str] | None) -> Reader:
    """Query (form, spaceDelimited, pipeDelimited) and cookie (form) parameters.

    `index` picks the value of a repeated key for non-arrays: -1 last (query), 0 first
    (cookie).
    """
    name, style, explode = param.name, param.style, param.explode
    if shape == "primitive":
        coerce = compile_coercer(schema)

        def read_primitive(source: Any) -> Any:
            values = source.get(name)
            return ABSENT if values is None else coerce(decode(values[index]))

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
                return ABSENT
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
                return ABSENT
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
        return build(pairs) if pairs else ABSENT

    return read_spread


def _split_comma(value: str) -> list[str]:
    return value.split(",")


def _deep_object_reader(param: Parameter, schema: JSONSchema) -> Reader:
    name = param.name
    opening = name + "["
    build = ObjectCoercer(schema)

    def read(source: Any) -> Any:
        pairs: list[tuple[str, str]] = []
        for key, values in source.items():
            if key.startswith(opening) and key.endswith("]"):
                prop = key[len(opening):-1]
                if prop in build.arrays:
                    pairs.extend((prop, decode_query_value(value)) for value in values)
                else:
                    pairs.append((prop, decode_query_value(values[-1])))
        return build(pairs) if pairs else ABSENT

    return read
