"""Coercion of decoded strings to schema types (shared by parameters and form bodies)."""
from __future__ import annotations

from typing import Any

import pytest

from brrt_actors.coercion import (
    InvalidValue,
    ObjectCoercer,
    coerce_items,
    compile_coercer,
    loads_json,
    resolve,
    schema_types,
)


@pytest.mark.parametrize(("schema", "expected"), [
    (None, []),
    ({}, []),
    ({"type": "integer"}, ["integer"]),
    ({"type": ["null", "number"]}, ["null", "number"]),
    ({"allOf": [{"minimum": 1}, {"type": "integer"}]}, ["integer"]),
    ({"anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "integer"}]},
     ["integer", "string"]),
    ({"oneOf": [{"type": "boolean"}, {"type": "null"}]}, ["boolean", "null"]),
    ({"enum": ["a", 1, 1.5, True, None, [1], {"a": 1}]},
     ["string", "integer", "number", "boolean", "null", "array", "object"]),
    ({"const": 3}, ["integer"]),
    ({"$ref": "#/definitions/A", "definitions": {"A": {"$ref": "#/definitions/B"},
                                                 "B": {"type": "boolean"}}}, ["boolean"]),
    ({"$ref": "#/definitions/Missing"}, []),
    ({"$ref": "other.json#/A"}, []),
])
def test_schema_types(schema: dict[str, Any] | None, expected: list[str]) -> None:
    assert schema_types(schema) == expected


def test_resolve_escaped_pointer() -> None:
    root = {"definitions": {"a/b~c": {"type": "string"}}}
    assert resolve({"$ref": "#/definitions/a~1b~0c"}, root) == {"type": "string"}


@pytest.mark.parametrize(("schema", "raw", "expected"), [
    ({"type": "integer"}, "+7", 7),
    ({"type": "number"}, "-0.25", -0.25),
    ({"type": "object"}, '{"a": [1]}', {"a": [1]}),
    ({"type": "array"}, "[1, 2]", [1, 2]),
    ({"type": "null"}, "null", None),
    ({"type": ["boolean", "integer"]}, "1", True),
    ({"type": ["integer", "boolean"]}, "1", 1),
    ({"type": ["string", "integer"]}, "1", "1"),
    ({"type": "something-else"}, "x", "x"),
    ({"anyOf": [{"type": "integer"}, {"type": "null"}]}, "", None),
])
def test_compile_coercer(schema: dict[str, Any], raw: str, expected: Any) -> None:
    value = compile_coercer(schema)(raw)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(("schema", "raw", "message"), [
    ({"type": "integer"}, "1" * 5000, "not a valid integer"),
    ({"type": "number"}, "1" * 5000, "not a valid number"),
    ({"type": "object"}, "[1]", "not a JSON object"),
    ({"type": "array"}, "{}", "not a JSON array"),
    ({"type": "object"}, "{", "malformed JSON"),
    ({"type": "null"}, "x", "not null"),
    ({"type": ["integer", "boolean"]}, "x", "not a valid integer or boolean"),
])
def test_compile_coercer_failures(schema: dict[str, Any], raw: str, message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        compile_coercer(schema)(raw)


@pytest.mark.parametrize("text", ["NaN", "[1, Infinity]", '{"a": {"b": -Infinity}}', b"[NaN]"])
def test_json_has_no_nan_or_infinity(text: str | bytes) -> None:
    with pytest.raises(InvalidValue, match="malformed JSON"):
        loads_json(text)


def test_json_words_inside_strings_are_fine() -> None:
    assert loads_json('{"NaN": "Infinity", "n": 1.5}') == {"NaN": "Infinity", "n": 1.5}


def test_coerce_items_names_the_bad_item() -> None:
    with pytest.raises(InvalidValue, match=r"'b' is not a valid integer \(at /1\)"):
        coerce_items(compile_coercer({"type": "integer"}), ["1", "b"])


def test_object_coercer() -> None:
    schema = {"type": "object",
              "properties": {"n": {"type": "integer"}, "tags": {"$ref": "#/definitions/Tags"},
                             "junk": True},
              "additionalProperties": {"type": "boolean"},
              "definitions": {"Tags": {"type": "array", "items": {"type": "integer"}}}}
    build = ObjectCoercer(schema)
    assert build.names == {"n", "tags"}
    assert build([("n", "1"), ("tags", "2"), ("tags", "3"), ("x", "true")]) == {
        "n": 1, "tags": [2, 3], "x": True}
    with pytest.raises(InvalidValue, match="at /x"):
        build([("x", "maybe")])
    assert ObjectCoercer(None)([("a", "1")]) == {"a": "1"}
