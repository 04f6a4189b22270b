"""Schema translation (brrt_actors.spec.schema) and the validator cache (brrt_actors.validation)."""
from __future__ import annotations

import gc
from typing import Any

import pytest
from fastjsonschema import JsonSchemaValueException
from jsonschema import Draft7Validator

from brrt_actors import validation
from brrt_actors.errors import SpecError
from brrt_actors.spec.schema import RESPONSE, translate_schema
from brrt_actors.validation import MAX_ERRORS, ValidatorCache, compile_validator

UUID = "123e4567-e89b-12d3-a456-426614174000"


def check(schema: dict[str, Any], version: str = "3.1.0", direction: str = "request") -> Any:
    return compile_validator(translate_schema(schema, openapi_version=version,
                                              direction=direction))


def problems(schema: dict[str, Any], version: str = "3.1.0") -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        translate_schema(schema, openapi_version=version)
    return dict(info.value.problems)


# -- OpenAPI 3.0 ------------------------------------------------------------------------------

def test_nullable_with_a_type() -> None:
    schema = translate_schema({"type": "string", "nullable": True}, openapi_version="3.0.3")
    assert schema == {"type": ["string", "null"]}
    validator = compile_validator(schema)
    assert validator.is_valid(None) and validator.is_valid("x") and not validator.is_valid(1)


def test_nullable_with_an_enum() -> None:
    schema = translate_schema({"type": "string", "enum": ["a", "b"], "nullable": True},
                              openapi_version="3.0.3")
    assert schema == {"type": ["string", "null"], "enum": ["a", "b", None]}
    assert compile_validator(schema).is_valid(None)


@pytest.mark.parametrize("schema", [
    {"$ref": "#/components/schemas/A", "nullable": True},
    {"allOf": [{"$ref": "#/components/schemas/A"}], "nullable": True, "description": "d"},
])
def test_nullable_with_only_a_ref(schema: dict[str, Any]) -> None:
    schema["components"] = {"schemas": {"A": {"type": "object", "required": ["a"]}}}
    translated = translate_schema(schema, openapi_version="3.0.3")
    assert translated["anyOf"][1] == {"type": "null"}
    validator = compile_validator(translated)
    assert validator.errors(None) == []
    assert validator.errors({"a": 1}) == []
    assert validator.errors({}) == [("/a", "is required")]
    assert validator.errors("x") == [("", "must be of type object or null")]


def test_boolean_exclusive_bounds() -> None:
    schema = translate_schema({"type": "number", "minimum": 0, "exclusiveMinimum": True,
                               "maximum": 10, "exclusiveMaximum": False},
                              openapi_version="3.0.3")
    assert schema == {"type": "number", "exclusiveMinimum": 0, "maximum": 10}
    validator = compile_validator(schema)
    assert validator.errors(0) == [("", "must be > 0")]
    assert validator.errors(10) == []


def test_openapi_annotations_are_dropped() -> None:
    schema = translate_schema({
        "type": "object", "discriminator": {"propertyName": "kind"}, "xml": {"name": "x"},
        "externalDocs": {"url": "http://x"}, "example": {}, "deprecated": True,
        "x-extra": {"$ref": "#/nowhere"}}, openapi_version="3.0.3")
    assert schema == {"type": "object", "example": {}, "deprecated": True}


def test_ref_siblings_are_ignored_in_30() -> None:
    schema = {"properties": {"a": {"$ref": "#/$defs/A", "maxLength": 1}},
              "$defs": {"A": {"type": "string"}}}
    validator = check(schema, version="3.0.3")
    assert validator.errors({"a": "long"}) == []
    assert check(schema).errors({"a": "long"}) == [("/a", "must be at most 1 characters long")]


# -- OpenAPI 3.1 / JSON Schema 2020-12 ---------------------------------------------------------

def test_type_arrays_and_const() -> None:
    validator = check({"type": "object", "properties": {
        "n": {"type": ["integer", "null"]}, "kind": {"const": "pet"}}})
    assert validator.errors({"n": None, "kind": "pet"}) == []
    assert validator.errors({"n": "1", "kind": "cat"}) == [
        ("/kind", 'must be "pet"'), ("/n", "must be of type integer or null")]


def test_defs_become_definitions() -> None:
    schema = translate_schema({"$ref": "#/$defs/Node", "$defs": {"Node": {
        "type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}}})
    assert schema["type"] == "object"
    assert schema["properties"]["next"] == {"$ref": "#/definitions/Node"}
    assert set(schema["definitions"]) == {"Node"}
    assert "$defs" not in schema
    validator = compile_validator(schema)
    assert validator.errors({"next": {"next": {}}}) == []
    assert validator.errors({"next": {"next": 1}}) == [("/next/next", "must be of type object")]


def test_prefix_items() -> None:
    schema = translate_schema({"type": "array", "prefixItems": [{"type": "string"},
                                                                {"type": "integer"}],
                               "items": {"type": "boolean"}})
    assert schema == {"type": "array", "items": [{"type": "string"}, {"type": "integer"}],
                      "additionalItems": {"type": "boolean"}}
    validator = compile_validator(schema)
    assert validator.errors(["a", 1, True, False]) == []
    assert validator.errors([1, 1, "x"]) == [("/0", "must be of type string"),
                                             ("/2", "must be of type boolean")]


def test_prefix_items_closed() -> None:
    validator = check({"prefixItems": [{"type": "string"}], "items": False})
    assert validator.errors(["a"]) == []
    assert validator.errors(["a", "b"]) == [("", "must not have more than 1 items")]


def test_dependent_required_and_schemas() -> None:
    schema = translate_schema({
        "type": "object",
        "dependentRequired": {"card": ["billing"]},
        "dependentSchemas": {"coupon": {"required": ["code"]}},
    })
    assert schema["dependencies"] == {"card": ["billing"], "coupon": {"required": ["code"]}}
    validator = compile_validator(schema)
    assert validator.errors({"card": 1, "billing": 2}) == []
    assert validator.errors({"card": 1, "coupon": 1}) == [
        ("/billing", "is required when 'card' is present"), ("/code", "is required")]


def test_unevaluated_properties_without_composition() -> None:
    schema = translate_schema({"type": "object", "properties": {"a": {"type": "string"}},
                               "unevaluatedProperties": False})
    assert schema["additionalProperties"] is False
    assert compile_validator(schema).errors({"a": "x", "b": 1}) == [
        ("/b", "is not an allowed property")]


@pytest.mark.parametrize(("schema", "where", "text"), [
    ({"allOf": [{"type": "object"}], "unevaluatedProperties": False},
     "/unevaluatedProperties", "beside allOf"),
    ({"type": "array", "contains": {"type": "string"}, "unevaluatedItems": False},
     "/unevaluatedItems", "beside contains"),
    ({"properties": {"tree": {"$dynamicRef": "#node"}}},
     "/properties/tree/$dynamicRef", "dynamic references"),
    ({"type": "string", "contentSchema": {"type": "object"}}, "/contentSchema", "encoded"),
    ({"type": "array", "contains": {"type": "string"}, "minContains": 2}, "/minContains",
     "no draft-07 equivalent"),
    ({"type": "string", "pattern": "("}, "/pattern", "not a valid regular expression"),
    ({"type": "file"}, "/type", "unknown type 'file'"),
    ({"properties": {"a": {"type": "string", "required": True}}}, "/properties/a/required",
     "required: [name, ...]"),
])
def test_untranslatable_keywords_are_reported(schema: dict[str, Any], where: str,
                                              text: str) -> None:
    found = problems(schema)
    assert text in found[where]


# -- readOnly / writeOnly ------------------------------------------------------------------------

def test_read_only_and_write_only_per_direction() -> None:
    schema = {
        "$ref": "#/$defs/User",
        "$defs": {
            "User": {"type": "object", "required": ["id", "name", "password"], "properties": {
                "id": {"$ref": "#/$defs/Id"},
                "name": {"type": "string"},
                "password": {"type": "string", "writeOnly": True}}},
            "Id": {"type": "integer", "readOnly": True},
        },
    }
    request = translate_schema(schema, direction="request")
    response = translate_schema(schema, direction=RESPONSE)
    assert request["required"] == ["name", "password"]
    assert response["required"] == ["id", "name"]
    assert compile_validator(request).errors({"name": "a"}) == [("/password", "is required")]
    assert compile_validator(response).errors({"name": "a"}) == [("/id", "is required")]


def test_read_only_reached_through_a_ref_definition() -> None:
    schema = {"type": "array", "items": {"$ref": "#/$defs/Pet"}, "$defs": {"Pet": {
        "type": "object", "required": ["id"],
        "properties": {"id": {"type": "integer", "readOnly": True}}}}}
    request = translate_schema(schema)
    response = translate_schema(schema, direction=RESPONSE)
    assert "required" not in request["definitions"]["Pet"]
    assert response["definitions"]["Pet"]["required"] == ["id"]


# -- formats --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("fmt", "good", "bad"), [
    ("uuid", UUID, "123e4567-e89b-12d3-a456-42661417400"),
    ("date", "2024-02-29", "2023-02-29"),
    ("date-time", "2024-01-31T23:59:60.5+01:00", "2024-01-31 10:00:00"),
    ("time", "10:00:00Z", "25:00:00Z"),
    ("email", "ann@example.com", "ann.example.com"),
    ("uri", "https://example.com/a?b#c", "/relative"),
    ("uri-reference", "/relative", "has space"),
    ("hostname", "api.example.com", "-bad-.com"),
    ("ipv4", "10.0.0.1", "10.0.0.256"),
    ("ipv6", "::1", "10.0.0.1"),
    ("regex", "^a+$", "("),
    ("json-pointer", "/a/~1b", "a/b"),
])
def test_formats(fmt: str, good: str, bad: str) -> None:
    validator = check({"type": "string", "format": fmt})
    assert validator.errors(good) == []
    assert validator.errors(bad) == [("", f"must be a valid {fmt}")]
    assert not validator.is_valid(bad)


def test_the_raw_check_returns_the_value_or_raises_at_the_first_error() -> None:
    validator = check({"type": "object", "properties": {
        "id": {"type": "string", "format": "uuid"}, "items": {"$ref": "#/$defs/Items"}},
        "$defs": {"Items": {"type": "array", "items": {"type": "integer"}}}})
    value = {"id": UUID, "items": [1, 2]}
    assert validator.check(value) is value
    bad_values: list[Any] = [{"id": UUID[:-1]}, {"items": [1, "2"]}, []]
    for bad in bad_values:
        with pytest.raises(JsonSchemaValueException):  # NOTE: formats apply without a partial
            validator.check(bad)
        assert not validator.is_valid(bad)


@pytest.mark.parametrize("fmt", ["byte", "binary", "password", "float", "double"])
def test_annotation_formats_are_accepted(fmt: str) -> None:
    assert check({"type": "string", "format": fmt}).errors("anything at all") == []


def test_integer_formats_check_ranges() -> None:
    int32 = check({"type": "integer", "format": "int32"})
    assert int32.errors(2**31 - 1) == []
    assert int32.errors(2**31) == [("", "must be <= 2147483647")]
    assert int32.errors(-(2**31) - 1) == [("", "must be >= -2147483648")]
    int64 = check({"type": "integer", "format": "int64", "minimum": 0})
    assert int64.errors(2**63) == [("", "must be <= 9223372036854775807")]
    assert int64.errors(-1) == [("", "must be >= 0")]


def test_both_validators_agree() -> None:
    schemas: list[dict[str, Any]] = [
        {"type": "integer"},
        {"type": "string", "format": "date-time"},
        {"type": "string", "format": "email"},
        {"type": "string", "format": "uri"},
        {"type": "string", "format": "iri"},
        {"type": "string", "format": "idn-email"},
        {"enum": [1, "a", None]},
        {"uniqueItems": True},
        {"type": "number", "multipleOf": 0.5},
    ]
    values: list[Any] = [1, 1.0, True, "a", "x@y", "2024-01-31T00:00:00Z", "http://x",
                         "not a date", None, [1, True], [1, 1.0], 2.5, 2.25, {}]
    for schema in schemas:
        validator = compile_validator(schema)
        lister = Draft7Validator(schema, format_checker=validation._format_checker())
        for value in values:
            assert validator.is_valid(value) == lister.is_valid(value), (schema, value)
            assert (validator.errors(value) == []) == validator.is_valid(value)


# -- the error listing -----------------------------------------------------------------------------

PERSON = {
    "type": "object",
    "required": ["name", "age", "email"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "age": {"type": "integer", "minimum": 0},
        "email": {"type": "string", "format": "email"},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
    },
}


def test_every_error_is_listed_sorted_by_pointer() -> None:
    validator = check(PERSON)
    assert validator.errors({"name": "", "age": -1, "email": "nope"}) == [
        ("/age", "must be >= 0"),
        ("/email", "must be a valid email"),
        ("/name", "must be at least 1 characters long"),
    ]
    assert validator.errors({"tags": [1, "a", 2]}) == [
        ("/age", "is required"),
        ("/email", "is required"),
        ("/name", "is required"),
        ("/tags", "must have at most 2 items"),
        ("/tags/0", "must be of type string"),
        ("/tags/2", "must be of type string"),
    ]


def test_array_pointers_sort_numerically() -> None:
    validator = check({"type": "array", "items": {"type": "integer"}})
    value: list[Any] = ["x"] * 12
    assert [pointer for pointer, _ in validator.errors(value)] == [f"/{i}" for i in range(12)]


def test_messages_never_quote_the_value() -> None:
    validator = check({"type": "object", "additionalProperties": False,
                       "properties": {"a": {"enum": ["x", "y"]}, "b": {"type": "integer"}}})
    secret = "s3cr3t-" * 1000
    errors = validator.errors({"a": secret, "b": secret, secret: 1})
    assert len(errors) == 3
    for pointer, message in errors:
        assert "s3cr3t" not in message
        assert len(pointer) < 80
    assert ("/a", 'must be one of ["x", "y"]') in errors


def test_the_error_list_is_bounded() -> None:
    validator = check({"type": "array", "items": {"type": "integer"}})
    errors = validator.errors(["x"] * (MAX_ERRORS * 3))
    assert len(errors) == MAX_ERRORS + 1
    assert errors[-1] == ("", f"more errors not listed (the first {MAX_ERRORS} are)")


def test_one_of_reports_the_branch_meant() -> None:
    schema = {"oneOf": [{"$ref": "#/$defs/Dog"}, {"$ref": "#/$defs/Cat"}], "$defs": {
        "Dog": {"type": "object", "required": ["kind", "bark"],
                "properties": {"kind": {"const": "dog"}, "bark": {"type": "boolean"}}},
        "Cat": {"type": "object", "required": ["kind", "meow"],
                "properties": {"kind": {"const": "cat"}, "meow": {"type": "boolean"}}}}}
    validator = check(schema)
    assert validator.errors({"kind": "dog", "bark": True}) == []
    assert validator.errors({"kind": "dog", "bark": 1}) == [("/bark", "must be of type boolean")]
    assert validator.errors({"kind": "bird"}) == [("", "must match one of the allowed schemas")]
    assert validator.errors([]) == [("", "must be of type object")]
    several = check({"oneOf": [{"type": "integer"}, {"minimum": 0}]})
    assert several.errors(1) == [
        ("", "must match exactly one of the allowed schemas, not several")]


def test_false_schema_and_not() -> None:
    validator = check({"properties": {"gone": False, "n": {"not": {"type": "null"}}}})
    assert validator.errors({"gone": 1, "n": None}) == [
        ("/gone", "is not allowed"), ("/n", "must not match the excluded schema")]


def test_deep_input_is_answered() -> None:
    validator = check({"$ref": "#/$defs/T", "$defs": {"T": {
        "type": "object", "properties": {"c": {"$ref": "#/$defs/T"}}}}})
    value: dict[str, Any] = {}
    for _ in range(5000):
        value = {"c": value}
    assert validator.errors(value) == [("", "is nested too deeply")]
    assert validator.is_valid(value) is False


# -- the cache ------------------------------------------------------------------------------------

def test_validators_are_cached_by_content() -> None:
    cache = ValidatorCache()
    first = cache.compile({"type": "object", "properties": {"a": {"type": "string"}}})
    again = cache.compile({"properties": {"a": {"type": "string"}}, "type": "object"})
    assert first is again
    assert cache.compile({"type": "string"}) is not first
    assert len(cache) == 2


def test_validators_are_found_again_by_identity() -> None:
    cache = ValidatorCache()
    schema = {"type": "integer"}
    assert cache.compile(schema) is cache.compile(schema)


def test_each_cache_belongs_to_its_app() -> None:
    schema = {"type": "string"}
    assert ValidatorCache().compile(schema) is not ValidatorCache().compile(schema)


def test_the_cache_is_bounded() -> None:
    cache = ValidatorCache(max_entries=2)
    for kind in ("string", "integer", "boolean", "number"):
        assert cache.compile({"type": kind}).is_valid(True) is (kind == "boolean")
    assert len(cache) == 2


def test_translation_is_memoized_per_component() -> None:
    schema = {"type": "object", "properties": {
        "a": {"$ref": "#/$defs/Pet"}, "b": {"$ref": "#/$defs/Pet"},
        "c": {"type": "array", "items": {"$ref": "#/$defs/Pet"}}},
        "$defs": {"Pet": {"type": "object", "properties": {"name": {"type": "string"}}}}}
    translated = translate_schema(schema)
    assert list(translated["definitions"]) == ["Pet"]


def test_compile_failures_name_the_pointer() -> None:
    with pytest.raises(SpecError) as info:
        compile_validator({"type": "string", "pattern": "("}, pointer="/components/schemas/X")
    assert info.value.problems[0][0] == "/components/schemas/X"
    assert "cannot be compiled" in info.value.problems[0][1]


def test_warm_up_prepares_the_error_listing() -> None:
    validation.warm_up()
    assert validation._format_checker() is validation._format_checker()


# -- refs inlined for the fast path -------------------------------------------------------------

TREE = {
    "$ref": "#/$defs/Node",
    "$defs": {
        "Node": {"type": "object", "required": ["label"], "properties": {
            "label": {"$ref": "#/$defs/Label"},
            "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}},
        "Label": {"type": "string", "minLength": 1},
    },
}


def test_recursive_schemas_still_validate_at_every_depth() -> None:
    validator = check(TREE)
    leaf = {"label": "leaf"}
    assert validator.is_valid({"label": "root", "children": [{"label": "a", "children": [leaf]}]})
    bad = {"label": "root", "children": [{"label": "a", "children": [{"label": ""}]}]}
    assert validator.errors(bad) == [("/children/0/children/0/label",
                                      "must be at least 1 characters long")]


def test_refs_under_property_names_that_are_keywords_are_followed() -> None:
    # A property named like a data keyword ("enum", "const") holds a schema, not data.
    schema = {"type": "object", "properties": {
        "enum": {"$ref": "#/$defs/Small"}, "const": {"$ref": "#/$defs/Small"}},
        "$defs": {"Small": {"type": "integer", "maximum": 3}}}
    validator = check(schema)
    assert validator.is_valid({"enum": 1, "const": 2})
    assert not validator.is_valid({"enum": 9})
    assert not validator.is_valid({"const": 9})


def test_data_that_looks_like_a_ref_still_compiles() -> None:
    validator = compile_validator({
        "type": "object", "properties": {"a": {"$ref": "#/definitions/A"}},
        "default": {"$ref": "#/definitions/A"},
        "definitions": {"A": {"type": "integer"}}})
    assert validator.is_valid({"a": 1})
    assert not validator.is_valid({"a": "x"})


def test_shared_definitions_past_the_budget_keep_their_refs(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    monkeypatch.setattr(validation, "_INLINE_BUDGET", 5)
    validator = check({"type": "array", "items": {"$ref": "#/$defs/Pet"}, "$defs": {
        "Pet": {"type": "object", "required": ["name"],
                "properties": {"name": {"type": "string"}}}}})
    assert validator.is_valid([{"name": "Rex"}])
    assert not validator.is_valid([{"name": 1}])


@pytest.mark.parametrize(("items", "unique"), [
    (["a", "b"], True), (["a", "a"], False), ([1, True], True), ([1, 1.0], False),
    ([{"a": [1, 2]}, {"a": [2, 1]}], True), ([{"a": [1, {"b": None}]}, {"a": [1, {"b": None}]}],
                                            False),
    ([[1, "x"], [1, "x"]], False), ([False, 0, None, ""], True),
])
def test_unique_items(items: list[Any], unique: bool) -> None:
    validator = compile_validator({"type": "array", "uniqueItems": True})
    assert validator.is_valid(items) is unique
    lister = Draft7Validator({"type": "array", "uniqueItems": True})
    assert lister.is_valid(items) is unique


def test_validating_leaves_no_reference_cycles_behind() -> None:
    # Cyclic garbage per request means cyclic-GC pauses under load.
    validator = check({"type": "object", "properties": {
        "tags": {"type": "array", "uniqueItems": True, "items": {"type": "string"}},
        "pets": {"type": "array", "items": {"$ref": "#/$defs/Pet"}}},
        "$defs": {"Pet": {"type": "object", "properties": {"name": {"type": "string"}}}}})
    value = {"tags": ["a", "b"], "pets": [{"name": "Rex"}, {"name": "Max"}]}
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(10):
            assert validator.is_valid(value)
        gc.collect()
        assert gc.garbage == []
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
