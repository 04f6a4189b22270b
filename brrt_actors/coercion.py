"""Turning decoded strings into values of a JSON Schema type (parameters and form fields).

Built at start: `compile_coercer(schema)` and `ObjectCoercer(schema)` pick the converters for
the schema's types once; per request they only convert.

Choices:

- booleans: ``true``/``false`` in any case, and ``1``/``0`` (connexion takes only true/false,
  FastAPI also yes/no/on/off; 1/0 is what HTML forms and most clients send).
- integers: ASCII digits with an optional sign; numbers: decimal or exponent notation, kept an
  `int` when written as one; non-finite numbers are refused.
- JSON text (`loads_json`): what JSON (RFC 8259) and Unicode allow, nothing more: NaN,
  Infinity, numbers beyond the float range (``1e400``) and text that is not Unicode (a lone
  surrogate escape such as ``"\\ud800"``) are refused, each named by its JSON pointer.
- a type list (``["integer", "null"]``) is tried in order; ``null`` matches ``""`` and ``null``.
- ``object`` and ``array`` (where a single string must become one) are read as JSON text.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import ujson

from brrt_actors.spec.model import JSONSchema
from brrt_actors.validation_errors import MAX_ERRORS, json_pointer

__all__ = [
    "Coercer",
    "InvalidValue",
    "ObjectCoercer",
    "coerce_items",
    "compile_coercer",
    "items_coercer",
    "loads_json",
    "printable_text",
    "resolve",
    "schema_types",
    "text_problem",
    "unencodable_parts",
]


class InvalidValue(ValueError):
    """A raw string that cannot become a value of its schema's type (the message says why).

    Attributes:
        problems: for JSON text, (JSON pointer inside the value, message) of each part that
            JSON or Unicode does not allow; empty otherwise.
    """

    def __init__(self, message: str, problems: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.problems: list[tuple[str, str]] = list(problems)


# Turns one decoded string into a value of the schema's type, or raises InvalidValue.
Coercer = Callable[[str], Any]

_INT_RE = re.compile(r"[-+]?[0-9]+")
_NUMBER_RE = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}


def _to_string(raw: str) -> str:
    return raw


def _to_integer(raw: str) -> int:
    # PERF: plain ASCII digits (the usual id) skip the regular expression: ~0.1 us.
    if (raw.isascii() and raw.isdigit()) or _INT_RE.fullmatch(raw) is not None:
        try:
            return int(raw)
        except ValueError:  # more digits than int() takes
            pass
    raise InvalidValue(f"{raw!r} is not a valid integer")


def _to_number(raw: str) -> int | float:
    if (raw.isascii() and raw.isdigit()) or _INT_RE.fullmatch(raw) is not None:
        try:
            return int(raw)
        except ValueError:
            pass
    elif _NUMBER_RE.fullmatch(raw) is not None:
        value = float(raw)
        if math.isfinite(value):
            return value
    raise InvalidValue(f"{raw!r} is not a valid number")


def _to_boolean(raw: str) -> bool:
    value = _BOOLEANS.get(raw.lower())
    if value is None:
        raise InvalidValue(f"{raw!r} is not a valid boolean (use true or false)")
    return value


def _to_null(raw: str) -> None:
    if raw and raw != "null":
        raise InvalidValue(f"{raw!r} is not null")


def _to_json_object(raw: str) -> dict[str, Any]:
    value = loads_json(raw)
    if not isinstance(value, dict):
        raise InvalidValue(f"{raw!r} is not a JSON object")
    return value


def _to_json_array(raw: str) -> list[Any]:
    value = loads_json(raw)
    if not isinstance(value, list):
        raise InvalidValue(f"{raw!r} is not a JSON array")
    return value


# What a JSON text must contain for ujson to read a value that JSON and Unicode do not allow:
# NaN or Infinity; an exponent of 3 digits or more, or 309 digits in a row (beyond the float
# range: ujson reads an infinity); a "\\uDxxx" escape or a UTF-8 encoded surrogate (\xed
# \xa0-\xbf), which ujson reads as a lone surrogate. Digits become "0", "E" "e", "D" "d" and
# "+" "e" ("e+400" holds "e000"), so that a few substring searches find each case.
_SUSPECT_TABLE = bytes.maketrans(b"123456789ED+", b"000000000ede")
_DIGITS_309 = "0" * 309
_NOT_FINITE = ("malformed JSON: NaN, Infinity and numbers beyond ±1.8e308 are not JSON "
               "numbers")


def loads_json(raw: str | bytes) -> Any:
    """Parse JSON text; raise `InvalidValue` when it is not JSON, or not Unicode text.

    NaN, Infinity, numbers beyond the float range and lone surrogates (``"\\ud800"``) are
    refused too: no encoder could write them back out as valid JSON. The exception's
    ``problems`` then name each by its JSON pointer (``("/name", "... not valid Unicode")``).
    """
    data = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")
    try:
        value = ujson.loads(data)
    except ValueError as ex:  # also ujson's depth limit and int() digit limit
        raise InvalidValue(f"malformed JSON: {ex}") from None
    # SECURITY: a lone surrogate or an infinity accepted here would reach the handler, be
    # stored, and break every later response that includes it (issue 9).
    # PERF: the exact check runs only when the raw text could hold one: substring searches,
    # the longer ones behind a one-character one (memchr), ~0.3 µs for a small body. In a
    # str, not bytes: `in` on bytes costs ~120 ns more (it tries the needle as an int first).
    folded = data.translate(_SUSPECT_TABLE).decode("latin-1")
    if ("\xed" in folded or ("\\" in folded and "\\ud" in folded) or "e000" in folded
            or (("N" in folded or "I" in folded) and ("NaN" in folded or "Infinity" in folded))
            or _DIGITS_309 in folded):
        _refuse_unencodable(value)
    return value


def _refuse_unencodable(value: Any) -> None:
    try:
        # NOTE: the exact check, at C speed: ujson refuses NaN and infinities, UTF-8 lone
        # surrogates.
        ujson.dumps(value, ensure_ascii=False, allow_nan=False).encode()
        return
    except (OverflowError, ValueError):  # UnicodeEncodeError is a ValueError
        pass
    problems = unencodable_parts(value)
    if problems:
        raise InvalidValue("; ".join(f"{message} (at {pointer})" if pointer else message
                                     for pointer, message in problems), problems)


def text_problem(text: str) -> str | None:
    """Return why `text` is not valid Unicode (a lone surrogate), or None when it is."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as ex:
        return (f"is not valid Unicode text (a lone surrogate, U+{ord(text[ex.start]):04X}, "
                f"at character {ex.start})")
    return None


def printable_text(text: str) -> str:
    """Return `text` with every lone surrogate written as an escape (``\\ud800``)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def unencodable_parts(value: Any) -> list[tuple[str, str]]:
    """List the parts of a JSON value no encoder can write: (JSON pointer, message).

    Lone surrogates in text or in member names, and non-finite numbers, in document order;
    at most `MAX_ERRORS` (and a last line saying there are more).
    """
    found: list[tuple[str, str]] = []
    stack: list[tuple[tuple[Any, ...], Any]] = [((), value)]
    while stack and len(found) <= MAX_ERRORS:
        path, item = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem is not None:
                found.append((_pointer(path), problem))
        elif isinstance(item, float):
            if not math.isfinite(item):
                found.append((_pointer(path), _NOT_FINITE))
        elif isinstance(item, dict):
            children: list[tuple[tuple[Any, ...], Any]] = []
            for key, child in item.items():
                if isinstance(key, str) and (problem := text_problem(key)) is not None:
                    found.append((_pointer((*path, key)), "the member name " + problem))
                children.append(((*path, key), child))
            stack.extend(reversed(children))
        elif isinstance(item, list | tuple):
            stack.extend(reversed([((*path, index), child) for index, child in enumerate(item)]))
    if len(found) > MAX_ERRORS:
        found[MAX_ERRORS:] = [("", f"more errors not listed (the first {MAX_ERRORS} are)")]
    return found


def _pointer(path: tuple[Any, ...]) -> str:
    return json_pointer(printable_text(part) if isinstance(part, str) else part for part in path)


_CONVERTERS: dict[str, Coercer] = {
    "string": _to_string, "integer": _to_integer, "number": _to_number,
    "boolean": _to_boolean, "null": _to_null, "object": _to_json_object,
    "array": _to_json_array,
}


def resolve(schema: JSONSchema, root: JSONSchema) -> JSONSchema:
    """Follow `schema`'s local ``$ref`` chain inside `root` (unresolvable refs stay as they are)."""
    seen = 0
    while "$ref" in schema and seen < 32:
        ref = schema["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#"):
            return schema
        target: Any = root
        for part in ref[1:].split("/")[1:]:
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            return schema
        schema, seen = target, seen + 1
    return schema


def schema_types(schema: JSONSchema | None, root: JSONSchema | None = None) -> list[str]:
    """Return the JSON types `schema` admits, in the order written ([] when it says none).

    Follows local ``$ref``s, ``allOf`` (first that says), ``anyOf``/``oneOf`` (union) and
    infers types from ``enum``/``const`` values.
    """
    if not schema:
        return []
    root = root or schema
    schema = resolve(schema, root)
    kind = schema.get("type")
    if isinstance(kind, str):
        return [kind]
    if isinstance(kind, list):
        return [k for k in kind if isinstance(k, str)]
    for sub in schema.get("allOf", ()):
        found = schema_types(sub, root) if isinstance(sub, dict) else []
        if found:
            return found
    types: list[str] = []
    for key in ("anyOf", "oneOf"):
        for sub in schema.get(key, ()):
            if isinstance(sub, dict):
                types.extend(t for t in schema_types(sub, root) if t not in types)
    if types:
        return types
    values = schema.get("enum", [schema["const"]] if "const" in schema else [])
    for value in values:
        inferred = _json_type(value)
        if inferred not in types:
            types.append(inferred)
    return types


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, dict):
        return "object"
    return "array" if isinstance(value, list) else "string"


def compile_coercer(schema: JSONSchema | None, root: JSONSchema | None = None) -> Coercer:
    """Return a function turning one decoded string into a value of `schema`'s type.

    Types are tried in the schema's order; ``object`` and ``array`` are read as JSON text.
    The function raises `InvalidValue` when no type fits.
    """
    converters: list[Coercer] = []
    for kind in schema_types(schema, root):
        converter = _CONVERTERS.get(kind)
        if converter is not None and converter not in converters:
            converters.append(converter)
        if converter is _to_string:
            break  # NOTE: every string fits; later types can never be reached
    if not converters:
        return _to_string
    if len(converters) == 1:
        return converters[0]
    names = " or ".join(schema_types(schema, root))
    chain = tuple(converters)

    def coerce(raw: str) -> Any:
        for converter in chain:
            try:
                return converter(raw)
            except InvalidValue:
                continue
        raise InvalidValue(f"{raw!r} is not a valid {names}")

    return coerce


def items_coercer(schema: JSONSchema | None, root: JSONSchema) -> Coercer:
    """Return the coercer of an array schema's ``items`` (strings when it has none)."""
    items = resolve(schema, root).get("items") if schema else None
    return compile_coercer(items, root) if isinstance(items, dict) else _to_string


def coerce_items(coerce: Coercer, pieces: Iterable[str]) -> list[Any]:
    """Coerce every piece; a failure names the item's index (``... (at /2)``)."""
    out: list[Any] = []
    for index, piece in enumerate(pieces):
        try:
            out.append(coerce(piece))
        except InvalidValue as ex:
            raise InvalidValue(f"{ex} (at /{index})") from None
    return out


class ObjectCoercer:
    """Build an object from decoded (name, value) pairs, coercing each by its property schema.

    A property whose schema is an array collects every value given for it.
    """

    __slots__ = ("additional", "arrays", "names", "properties")

    def __init__(self, schema: JSONSchema | None, root: JSONSchema | None = None) -> None:
        root = root or schema or {}
        schema = resolve(schema, root) if schema else {}
        self.properties: dict[str, Coercer] = {}
        self.arrays: dict[str, Coercer] = {}
        for name, sub in (schema.get("properties") or {}).items():
            if not isinstance(sub, dict):
                continue
            types = schema_types(sub, root)
            if types and types[0] == "array":
                self.arrays[name] = items_coercer(sub, root)
            else:
                self.properties[name] = compile_coercer(sub, root)
        additional = schema.get("additionalProperties")
        self.additional: Coercer = (compile_coercer(additional, root)
                                    if isinstance(additional, dict) else _to_string)
        # Every name that belongs to the object when its properties are spread as keys.
        self.names = frozenset(self.properties) | frozenset(self.arrays)

    def __call__(self, pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, raw in pairs:
            try:
                items = self.arrays.get(key)
                if items is None:
                    out[key] = self.properties.get(key, self.additional)(raw)
                elif key in out:
                    out[key].append(items(raw))
                else:
                    out[key] = [items(raw)]
            except InvalidValue as ex:
                raise InvalidValue(f"{ex} (at /{key})") from None
        return out
