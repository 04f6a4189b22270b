from __future__ import annotations

import base64
import binascii
import logging
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from jsonschema import Draft7Validator, FormatChecker

from brrt_actors import create_app
from brrt_actors.handler import Request, Response, is_stream
from brrt_actors.mock import MockError, build_mock_handler, generate_value
from brrt_actors.spec import load_spec
from brrt_actors.spec.model import MediaType, Operation, ResponseSpec
from brrt_actors.testing import Client

FORMATS = FormatChecker()


@FORMATS.checks("date-time")
def _date_time(value: object) -> bool:
    return not isinstance(value, str) or re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", value) is not None


@FORMATS.checks("uri")
def _uri(value: object) -> bool:
    return not isinstance(value, str) or bool(urlsplit(value).scheme)


@FORMATS.checks("byte", raises=binascii.Error)
def _byte(value: object) -> bool:
    return not isinstance(value, str) or base64.b64decode(value, validate=True) is not None


@FORMATS.checks("int32")
def _int32(value: object) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


@FORMATS.checks("int64")
def _int64(value: object) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


def assert_valid(schema: dict[str, Any], value: Any) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}"
              for e in Draft7Validator(schema, format_checker=FORMATS).iter_errors(value)]
    assert not errors, (value, errors)


DEFINITIONS = {
    "Dog": {"type": "object", "required": ["type", "bark"],
            "properties": {"type": {"const": "dog"}, "bark": {"type": "boolean"}}},
    "Cat": {"type": "object", "required": ["type", "meow"],
            "properties": {"type": {"const": "cat"}, "meow": {"type": "boolean"}}},
    "Pet": {"type": "object", "required": ["id", "name"],
            "properties": {"id": {"type": "integer", "format": "int64", "minimum": 1},
                           "name": {"type": "string", "minLength": 1},
                           "tags": {"type": "array", "items": {"type": "string"}}}},
}

SCHEMAS: list[dict[str, Any]] = [
    {"type": "integer"},
    {"type": "integer", "minimum": 5, "maximum": 10, "multipleOf": 3},
    {"type": "integer", "exclusiveMinimum": 5, "exclusiveMaximum": 7},
    {"type": "integer", "maximum": -3},
    {"type": "integer", "multipleOf": 2.5},
    {"type": "number"},
    {"type": "number", "exclusiveMaximum": 0},
    {"type": "number", "minimum": 0.1, "maximum": 0.35, "multipleOf": 0.1},
    {"type": "number", "exclusiveMinimum": 1, "exclusiveMaximum": 1.5},
    {"type": "boolean"},
    {"type": "null"},
    {"type": "string"},
    {"type": "string", "minLength": 12, "maxLength": 14},
    {"type": "string", "maxLength": 2},
    {"type": "string", "format": "uuid"},
    {"type": "string", "format": "date"},
    {"type": "string", "format": "date-time"},
    {"type": "string", "format": "email"},
    {"type": "string", "format": "uri"},
    {"type": "string", "format": "byte"},
    {"type": "string", "format": "binary"},
    {"type": "integer", "format": "int32"},
    {"type": "integer", "format": "int64", "minimum": 1},
    {"type": "string", "pattern": "^post-[0-9]+$"},
    {"type": "string", "pattern": r"^[A-Z]{3}-\d{4}$"},
    {"type": "string", "pattern": "^[a-z]*$", "minLength": 5, "maxLength": 6},
    {"type": "string", "pattern": r"^(red|green|blue)(-\w+)?$"},
    {"type": "string", "pattern": r"^[^\s@]+@[^\s@]+\.[a-z]{2,}$"},
    {"type": "string", "pattern": "abc"},
    {"type": "string", "pattern": r"^(\w)x\1[^a-c]\W\s\S\D.[^\d]$"},
    {"type": "string", "pattern": r"^(?P<a>q)?(?(a)z|y)[xyz]+?$"},
    {"type": "string", "pattern": r"^(?>ab)c*+$", "minLength": 4},
    {"type": "string", "pattern": "^[^a]$"},
    {"type": "string", "pattern": "^id-[0-9]{3}$", "format": "custom"},
    {"format": "ipv4"},
    {"format": "int32"},
    {"minimum": 2.5},
    {"minItems": 1},
    {"properties": {"a": {"type": "integer"}}},
    {"type": "number", "minimum": 0, "exclusiveMaximum": 0.5},
    {"type": "number", "maximum": 10, "multipleOf": 0.25},
    {"type": "number", "exclusiveMinimum": 0, "multipleOf": 0.5},
    {"type": "array", "uniqueItems": True, "minItems": 3,
     "items": {"type": "string", "format": "date"}},
    {"type": "array", "uniqueItems": True, "minItems": 2,
     "items": {"type": "string", "format": "email"}},
    {"type": "array", "uniqueItems": True, "minItems": 2,
     "items": {"type": "string", "format": "uri"}},
    {"type": "array", "uniqueItems": True, "minItems": 2, "items": {"type": "boolean"}},
    {"type": "array", "uniqueItems": True, "minItems": 2, "items": {"enum": ["a", "b"]}},
    {"type": "object", "required": ["x-1"], "patternProperties": {"^x-": {"type": "integer"}}},
    {"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}},
                "additionalProperties": {"type": "string"}},
               {"additionalProperties": True, "patternProperties": {"^b": {"type": "string"}}},
               {"not": {"type": "string"}}, {"not": {"type": "array"}}]},
    {"allOf": [{"type": "array", "items": {"type": "integer"}},
               {"items": {"minimum": 3}, "maxItems": 4}]},
    {"allOf": [{"anyOf": [{"type": "integer"}, {"type": "string"}]},
               {"anyOf": [{"type": "string"}, {"type": "null"}]}]},
    {"allOf": [{"enum": [1, 2, 3]}, {"enum": [3, 2]}]},
    {"allOf": [{"type": "number", "multipleOf": 0.5}, {"multipleOf": 0.75}]},
    {"allOf": [True, {"allOf": [{"type": "string"}, {"maxLength": 3}]}]},
    {"if": {"type": "integer", "minimum": 10}, "then": {"multipleOf": 7},
     "else": {"type": "string"}},
    {"enum": ["Golden Retriever", "Labrador"]},
    {"type": "string", "enum": [1, "two"]},
    {"const": {"a": [1, 2]}},
    {"type": ["string", "null"]},
    {"type": ["null", "integer"], "minimum": 3},
    {"type": "array", "items": {"type": "integer"}},
    {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 3,
     "uniqueItems": True},
    {"type": "array", "items": {"type": "string", "format": "uuid"}, "minItems": 2,
     "uniqueItems": True},
    {"type": "array", "items": {"type": "string"}, "maxItems": 0},
    {"type": "array", "items": [{"type": "integer"}, {"type": "string"}],
     "additionalItems": False},
    {"type": "array", "items": {"type": "integer"}, "contains": {"const": 7}},
    {"type": "object"},
    {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a", "b"],
     "additionalProperties": {"type": "integer"}},
    {"type": "object", "properties": {"a": {"type": "string"}},
     "additionalProperties": False, "minProperties": 1},
    {"type": "object", "additionalProperties": {"type": "boolean"}},
    {"type": "object", "minProperties": 2, "maxProperties": 3},
    {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"},
                                      "c": {"type": "string"}}, "maxProperties": 2},
    {"type": "object", "properties": {"secret": {"type": "string", "writeOnly": True},
                                      "name": {"type": "string"}}},
    {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
     "dependencies": {"a": ["b"]}},
    {"type": "object", "required": ["email"],
     "properties": {"email": {"type": ["string", "null"], "format": "email"}}},
    {"allOf": [{"$ref": "#/definitions/Pet"},
               {"type": "object", "required": ["vaccinated"],
                "properties": {"vaccinated": {"type": "boolean"}, "id": {"maximum": 9}}}]},
    {"allOf": [{"type": "integer", "multipleOf": 4}, {"multipleOf": 6}, {"minimum": 13}]},
    {"allOf": [{"type": ["integer", "string"]}, {"type": ["number", "null"]}]},
    {"anyOf": [{"type": "string", "maxLength": 0, "minLength": 1}, {"type": "integer"}]},
    {"oneOf": [{"$ref": "#/definitions/Dog"}, {"$ref": "#/definitions/Cat"}]},
    {"oneOf": [{"type": "number"}, {"type": "integer"}]},  # 1 matches both: 1.5 only the first
    {"type": "object", "required": ["kind"], "properties": {"kind": {"type": "string"}},
     "oneOf": [{"properties": {"kind": {"const": "a"}}},
               {"properties": {"kind": {"const": "b"}}}]},
    {"if": {"properties": {"kind": {"const": "x"}}, "required": ["kind"]},
     "then": {"required": ["extra"]}, "type": "object",
     "properties": {"kind": {"enum": ["x", "y"]}, "extra": {"type": "integer"}},
     "required": ["kind"]},
    {"$ref": "#/definitions/Pet"},
    {"type": "array", "items": {"$ref": "#/definitions/Pet"}, "minItems": 2,
     "uniqueItems": True},
    {},
    True,
]


@pytest.mark.parametrize("schema", SCHEMAS, ids=[str(i) for i in range(len(SCHEMAS))])
def test_generate_value_is_valid(schema: Any) -> None:
    document = dict(schema, definitions=DEFINITIONS) if isinstance(schema, dict) else schema
    value = generate_value(document)
    assert_valid(document, value)


def test_generate_value_is_deterministic() -> None:
    schema = {"type": "array", "items": {"$ref": "#/definitions/Pet"}, "definitions": DEFINITIONS}
    assert generate_value(schema) == generate_value(schema)


def test_generate_value_prefers_readable_values() -> None:
    value = generate_value({"type": "object", "required": ["name"],
                            "properties": {"name": {"type": "string"},
                                           "id": {"type": "string", "format": "uuid"}}})
    assert value == {"name": "name", "id": "3fa85f64-5717-4562-b3fc-2c963f66afa6"}


def test_optional_recursion_stops() -> None:
    schema = {
        "$ref": "#/definitions/Node",
        "definitions": {"Node": {
            "type": "object", "required": ["name"],
            "properties": {"name": {"type": "string"},
                           "children": {"type": "array", "items": {"$ref": "#/definitions/Node"}},
                           "parent": {"$ref": "#/definitions/Node"}}}},
    }
    value = generate_value(schema)
    assert_valid(schema, value)
    assert value["children"] == [{"name": "name"}]
    assert value["parent"] == {"name": "name"}


def test_nullable_recursion_ends_with_null() -> None:
    schema = {
        "$ref": "#/definitions/List",
        "definitions": {"List": {
            "type": "object", "required": ["head", "tail"],
            "properties": {"head": {"type": "integer"},
                           "tail": {"anyOf": [{"$ref": "#/definitions/List"},
                                              {"type": "null"}]}}}},
    }
    value = generate_value(schema)
    assert_valid(schema, value)
    depth = 0
    while value is not None:
        value, depth = value["tail"], depth + 1
    assert depth < 10


def test_required_recursion_without_end_is_an_error() -> None:
    schema = {"$ref": "#/definitions/A",
              "definitions": {"A": {"type": "object", "required": ["a"],
                                    "properties": {"a": {"$ref": "#/definitions/A"}}}}}
    with pytest.raises(MockError, match="requires itself"):
        generate_value(schema)


def test_root_recursion_terminates() -> None:
    schema = {"type": "object", "properties": {"child": {"$ref": "#"}}}
    value = generate_value(schema)
    assert_valid(schema, value)


@pytest.mark.parametrize("schema", [
    False,
    {"type": "integer", "minimum": 5, "maximum": 4},
    {"type": "integer", "minimum": 1, "maximum": 2, "multipleOf": 5},
    {"type": "integer", "format": "int32", "minimum": 2**40},
    {"type": "string", "minLength": 3, "maxLength": 2},
    {"type": "array", "minItems": 3, "maxItems": 2},
    {"enum": []},
    {"allOf": [{"type": "string"}, {"type": "integer"}]},
    {"allOf": [{"const": 1}, {"const": 2}]},
    {"$ref": "#/definitions/Missing"},
    {"$ref": "other.json#/x"},
    {"type": "object", "additionalProperties": False, "minProperties": 1},
    {"type": "number", "minimum": 1.1, "maximum": 1.4, "multipleOf": 0.5},
    {"type": "number", "exclusiveMinimum": 1, "exclusiveMaximum": 1},
    {"allOf": [{"$ref": "#/definitions/A"}], "definitions": {"A": {"allOf": [{"$ref": "#"}]}}},
    {"allOf": [False]},
    {"anyOf": [False, {"type": "integer", "minimum": 2, "maximum": 1}]},
    {"anyOf": []},
    {"type": []},
    {"type": "array", "minItems": 1, "items": False},
])
def test_impossible_schemas_raise(schema: Any) -> None:
    with pytest.raises(MockError):
        generate_value(schema)


@pytest.mark.parametrize("pattern", ["^a(?!b)b$", "^[", r"^\p{L}+$", "^a{5}$"])
def test_unsatisfiable_pattern_is_reported(pattern: str) -> None:
    notes: list[str] = []
    value = generate_value({"type": "string", "pattern": pattern, "maxLength": 4}, notes=notes)
    assert isinstance(value, str)
    assert notes and "pattern" in notes[0]


def test_best_effort_choice_when_no_branch_validates() -> None:
    schema = {"oneOf": [{"type": "integer"}, {"type": "integer", "minimum": 0}]}
    assert generate_value(schema) == 1  # matches both branches: the first one's value


def test_optional_parts_that_cannot_be_generated_are_left_out() -> None:
    value = generate_value({"type": "object", "properties": {"never": False, "ok": {}},
                            "dependencies": {"ok": ["dep"]}})
    assert value == {"ok": {}, "dep": {}}
    assert generate_value({"type": "array", "items": [{"type": "integer"}, False]}) == [1]


# -- build_mock_handler ------------------------------------------------------------------------

def _operation(*responses: ResponseSpec) -> Operation:
    return Operation(operation_id="op", method="GET", path="/x", pointer="/paths/~1x/get",
                     handler_name="op", responses={r.status: r for r in responses})


def _response(status: str, *media: MediaType, headers: dict[str, Any] | None = None
              ) -> ResponseSpec:
    return ResponseSpec(status=status, pointer=f"/paths/~1x/get/responses/{status}",
                        content={m.content_type: m for m in media}, headers=headers or {})


def _media(content_type: str, schema: dict[str, Any] | None = None,
           example: Any = None, has_example: bool = False) -> MediaType:
    media = MediaType(content_type=content_type, schema=schema,
                      pointer=f"/paths/~1x/get/responses/200/content/{content_type}")
    if has_example:
        media.example = example
    return media


def _call(operation: Operation) -> tuple[Response, list[str]]:
    handler, notes = build_mock_handler(operation)
    request = Request({"REQUEST_METHOD": "GET", "PATH_INFO": "/x"}, operation, "req-1")
    return handler(request), notes


USER = {"type": "object", "required": ["id", "name"],
        "properties": {"id": {"type": "string", "format": "uuid"}, "name": {"type": "string"}}}


def test_valid_example_is_served() -> None:
    example = {"id": "0b6f1c9e-1b4e-4a47-9a8c-5a1f3c2e7d10", "name": "John"}
    response, notes = _call(_operation(
        _response("200", _media("application/json", USER, example, has_example=True))))
    assert response.status == 200
    assert response.body == example
    assert response.content_type == "application/json"
    assert notes == []


def test_invalid_example_is_replaced_by_a_generated_value() -> None:
    example = {"id": "abc-123", "name": "John"}  # not a uuid
    response, notes = _call(_operation(
        _response("200", _media("application/json", USER, example, has_example=True))))
    assert response.body != example
    assert_valid(USER, response.body)
    assert len(notes) == 1
    assert notes[0].startswith("/paths/~1x/get/responses/200/content/application/json: "
                               "example does not match its schema (")
    assert notes[0].endswith("): serving a generated value")


def test_schema_without_example_is_generated() -> None:
    response, notes = _call(_operation(_response("200", _media("application/json", USER))))
    assert_valid(USER, response.body)
    assert notes == []


def test_first_2xx_in_declared_order_wins() -> None:
    operation = _operation(
        _response("404", _media("application/json", {"type": "string"})),
        _response("201", _media("application/json", {"const": "created"})),
        _response("200", _media("application/json", {"const": "ok"})),
    )
    response, _ = _call(operation)
    assert (response.status, response.body) == (201, "created")


def test_2xx_range_answers_200() -> None:
    response, _ = _call(_operation(_response("2XX", _media("application/json", {"const": 1}))))
    assert (response.status, response.body) == (200, 1)


def test_default_is_the_fallback() -> None:
    operation = _operation(
        _response("400", _media("application/json", {"const": "bad"})),
        _response("default", _media("application/json", {"const": "default"})),
    )
    response, _ = _call(operation)
    assert (response.status, response.body) == (200, "default")


def test_no_content_answers_without_a_body() -> None:
    response, notes = _call(_operation(_response("204")))
    assert (response.status, response.body) == (204, None)
    assert notes == []


def test_json_media_type_is_preferred() -> None:
    operation = _operation(_response(
        "200",
        _media("image/png", {"type": "string", "format": "binary"}),
        _media("application/vnd.api+json", {"const": {"x": 1}}),
    ))
    response, _ = _call(operation)
    assert response.body == {"x": 1}
    assert response.content_type == "application/vnd.api+json"


def test_binary_gets_placeholder_bytes() -> None:
    response, _ = _call(_operation(_response(
        "200", _media("image/png", {"type": "string", "format": "binary"}))))
    assert isinstance(response.body, bytes) and response.body.startswith(b"\x89PNG")
    assert response.content_type == "image/png"
    response, _ = _call(_operation(_response("200", _media("application/octet-stream"))))
    assert isinstance(response.body, bytes) and response.body
    assert response.content_type == "application/octet-stream"


def test_text_gets_a_string() -> None:
    response, _ = _call(_operation(_response(
        "200", _media("text/plain", {"type": "string"}, "hello", has_example=True))))
    assert (response.body, response.content_type) == ("hello", "text/plain")


def test_event_stream_is_finite_and_fresh() -> None:
    operation = _operation(_response("200", _media("text/event-stream")))
    handler, _ = build_mock_handler(operation)
    request = Request({"REQUEST_METHOD": "GET", "PATH_INFO": "/x"}, operation, "req-1")
    for _ in range(2):
        response = handler(request)
        assert response.content_type == "text/event-stream"
        assert is_stream(response.body)
        chunks = list(response.body)
        assert chunks and b"".join(chunks).startswith(b"event: message\ndata: ")
        assert b"".join(chunks).endswith(b"\n\n")


def test_declared_headers_are_filled() -> None:
    operation = _operation(_response(
        "201", _media("application/json", {"const": 1}),
        headers={"Location": {"schema": {"type": "string", "format": "uri"}},
                 "X-Rate": {"example": 10}, "Content-Type": {"schema": {"type": "string"}}}))
    response, _ = _call(operation)
    assert response.headers == {"Location": "https://example.com/", "X-Rate": "10"}


def test_unsatisfiable_headers_are_left_out_with_a_note() -> None:
    operation = _operation(_response("204", headers={"X-Never": {"schema": {"enum": []}},
                                                     "X-Flag": {"schema": {"type": "boolean"}},
                                                     "X-List": {"example": [1, True]},
                                                     "X-Map": {"example": {"a": 1}}}))
    response, notes = _call(operation)
    assert response.headers == {"X-Flag": "true", "X-List": "1,true", "X-Map": "a,1"}
    assert notes and "X-Never" in notes[0]


def test_wildcard_and_schemaless_media_types() -> None:
    response, notes = _call(_operation(_response("200", _media("*/*"))))
    assert (response.body, response.content_type) == ({}, "application/json")
    response, _ = _call(_operation(_response("200", _media("text/*"))))
    assert (response.body, response.content_type) == ("mock", "text/plain")
    response, _ = _call(_operation(_response("200", _media("image/*"))))
    assert response.content_type == "application/octet-stream"
    response, _ = _call(_operation(_response(
        "200", _media("application/xml", {"type": "object"}))))
    assert (response.body, response.content_type) == ("{}", "application/xml")
    response, _ = _call(_operation(_response(
        "200", _media("application/pdf", None, "%PDF-1.4", has_example=True))))
    assert response.body == b"%PDF-1.4"
    response, _ = _call(_operation(_response(
        "200", _media("application/json", None, [1], has_example=True))))
    assert response.body == [1]
    response, _ = _call(_operation(_response(
        "200", _media("text/event-stream", {"type": "object"}))))
    assert b"".join(response.body) == b"event: message\ndata: {}\n\n"
    assert notes == []


def test_unsatisfiable_schema_serves_no_body_with_a_note() -> None:
    response, notes = _call(_operation(_response(
        "200", _media("application/json", {"enum": []}))))
    assert response.body is None
    assert notes and "cannot generate" in notes[0]
    response, notes = _call(_operation(_response(
        "200", _media("application/json", {"type": "string", "pattern": "^a(?!b)b$"}))))
    assert len(notes) == 2 and "does not match the schema either" in notes[1]


def test_no_responses_answers_204_with_a_note() -> None:
    response, notes = _call(_operation())
    assert response.status == 204
    assert notes and "no responses" in notes[0]


def test_no_2xx_nor_default_mocks_the_first_with_a_note() -> None:
    response, notes = _call(_operation(_response("302")))
    assert response.status == 302
    assert notes and "no 2xx or default" in notes[0]


# -- what a client asks of a mock (Prefer, Accept), headers, recursion, credentials --------

MOCK_SPEC = Path(__file__).resolve().parent / "specs" / "mock_prefer.yaml"


@pytest.fixture()
def mock_client(apps: list[object]) -> Client:
    app = create_app(MOCK_SPEC, mock=True, environ={})
    apps.append(app)
    return Client(app)


def test_without_preferences_the_first_success_and_its_first_example(
        mock_client: Client) -> None:
    response = mock_client.get("/pets/1")
    assert (response.status, response.json()) == (200, {"id": 1, "name": "Tom"})
    assert "preference-applied" not in response.headers


def test_prefer_code_serves_a_declared_status(mock_client: Client) -> None:
    response = mock_client.get("/pets/1", headers={"Prefer": "code=404"})
    assert (response.status, response.json()) == (404, {"code": 404, "message": "no such pet"})
    assert response.headers["preference-applied"] == "code=404"
    # A range (4XX) covers the codes it holds: a value generated from its schema.
    teapot = mock_client.get("/pets/1", headers={"Prefer": 'code="418"'})
    assert teapot.status == 418 and set(teapot.json()) == {"code", "message"}


def test_prefer_code_that_is_not_declared_is_a_client_error(mock_client: Client) -> None:
    response = mock_client.get("/pets/1", headers={"Prefer": "code=503"})
    assert response.status == 400
    assert response.json()["detail"] == ("Prefer: code=503: the operation declares no such "
                                         "response (it declares 200, 404, 4XX)")
    bad = mock_client.get("/pets/1", headers={"Prefer": "code=abc"})
    assert bad.status == 400 and "is not a status code" in bad.json()["detail"]


def test_prefer_example_picks_a_named_example(mock_client: Client) -> None:
    response = mock_client.get("/pets/1", headers={"Prefer": "example=dog"})
    assert response.json() == {"id": 2, "name": "Rex"}
    assert response.headers["preference-applied"] == "example=dog"
    both = mock_client.get("/pets/1", headers={"Prefer": "code=200, example=cat"})
    assert both.json() == {"id": 1, "name": "Tom"}
    assert both.headers["preference-applied"] == "code=200, example=cat"
    # An example that breaks its schema is not served (the response would fail validation).
    broken = mock_client.get("/pets/1", headers={"Prefer": "example=broken"})
    assert broken.status == 200 and isinstance(broken.json()["id"], int)
    unknown = mock_client.get("/pets/1", headers={"Prefer": "example=fish"})
    assert unknown.status == 400
    assert unknown.json()["detail"] == ("Prefer: example='fish': application/json of this "
                                        "response has no such example (it has cat, dog, "
                                        "broken)")


def test_accept_picks_among_the_declared_media_types(mock_client: Client) -> None:
    text = mock_client.get("/pets/1", headers={"Accept": "text/plain"})
    assert (text.status, text.text) == (200, "Tom the cat")
    assert text.headers["content-type"].startswith("text/plain")
    weighted = mock_client.get("/pets/1", headers={
        "Accept": "application/json;q=0.5, text/*;q=0.9"})
    assert weighted.text == "Tom the cat"
    anything = mock_client.get("/pets/1", headers={"Accept": "*/*"})
    assert anything.json() == {"id": 1, "name": "Tom"}


def test_accept_that_allows_no_declared_type_is_406(mock_client: Client) -> None:
    response = mock_client.get("/pets/1", headers={"Accept": "application/xml"})
    assert response.status == 406
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == ("this operation answers application/json, "
                                         "text/plain; the request's Accept header allows none "
                                         "of them")
    refused = mock_client.get("/pets/1", headers={"Accept": "application/json;q=0"})
    assert refused.status == 406


def test_mock_headers_mean_something(mock_client: Client) -> None:
    response = mock_client.get("/pets/1")
    assert response.headers["allow"] == "DELETE, GET, HEAD, OPTIONS"
    assert response.headers["etag"] == '"mock-etag-1"'
    assert response.headers["x-rate-limit"] == "10"
    assert response.headers["x-trace"] == "trace-123"
    created = mock_client.post("/pets")
    assert (created.status, created.headers["location"]) == (201, "/pets")


def test_self_recursive_allof_with_nullable_stops() -> None:
    schema = load_spec(MOCK_SPEC).operations[-1].responses["200"].content[
        "application/json"].schema
    assert schema is not None
    value = generate_value(schema)
    assert_valid(schema, value)
    assert value == {"name": "name", "parent": {"name": "name", "parent": {"name": "name"}}}


def test_mock_start_says_what_a_client_must_send(caplog: pytest.LogCaptureFixture,
                                                  apps: list[object]) -> None:
    spec = Path(__file__).resolve().parent / "specs" / "security_apikeys.yaml"
    with caplog.at_level(logging.INFO, logger="brrt_actors"):
        apps.append(create_app(spec, mock=True, environ={"BRRTR_API_KEY__HeaderKey": "k"}))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("mock: ")]
    assert "mock: security scheme 'HeaderKey': send the header 'X-API-Key: <the configured " \
           "credential>'" in lines
    assert any(line.startswith("mock: security scheme 'QueryKey': every request that needs "
                               "it gets 401 until it is configured: set BRRTR_API_KEY__QueryKey")
               and line.endswith("or serve with --dev and send the query parameter "
                                 "api_key=dev") for line in lines), lines
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="brrt_actors"):
        apps.append(create_app(spec, mock=True, environ={}, dev=True))
    assert "mock: security scheme 'QueryKey' (--dev): send the query parameter api_key=dev" \
        in [r.getMessage() for r in caplog.records]
