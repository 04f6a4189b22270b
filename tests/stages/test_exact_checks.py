"""The exact-type predicates against the compiled validators they stand in for.

A predicate may say True only where the schema's fastjsonschema function accepts the value
(its "not sure" sends the value to that function). Generated schemas of the covered keywords
and generated values check that; hand-written cases check that the usual valid value is
recognised (else the fast path would never be taken) and that the rest gets no predicate.
``PROPERTY_EXAMPLES`` sets the examples per test.
"""
from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from brrt_actors.errors import SpecError
from brrt_actors.spec.model import MediaType, Operation, ResponseSpec
from brrt_actors.stages.exact_checks import compile_exact_check
from brrt_actors.stages.response import ResponseEncoder
from brrt_actors.validation import compile_validator

EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "200"))
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None)

WORDS = ("a", "b", "id", "name")
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(-3, 3),
                    st.just(float("nan")), st.just(1e300), st.sampled_from(["", "a", "b", "xyz"]))
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.tuples(inner),
                            st.dictionaries(st.sampled_from(WORDS), inner, max_size=4)),
    max_leaves=8)


def _leaf() -> st.SearchStrategy[dict[str, Any]]:
    bound = st.one_of(st.integers(-2, 2), st.floats(-2, 2, allow_nan=False))
    return st.one_of(
        st.just({}),
        st.fixed_dictionaries({"type": st.sampled_from(
            ["integer", "number", "string", "boolean", "null"])},
            optional={"minimum": bound, "maximum": bound, "exclusiveMinimum": bound,
                      "minLength": st.integers(0, 2), "maxLength": st.integers(0, 2),
                      "description": st.just("annotation")}),
        st.fixed_dictionaries({"enum": st.lists(st.sampled_from(["a", "b", ""]), min_size=1)},
                              optional={"type": st.sampled_from(["string", ["string", "null"]])}),
        st.fixed_dictionaries({"type": st.lists(st.sampled_from(
            ["integer", "number", "string", "null", "array", "object"]), min_size=1,
            max_size=3, unique=True)}),
    )


SCHEMAS = st.recursive(
    _leaf(),
    lambda inner: st.one_of(
        st.fixed_dictionaries({"type": st.just("array")},
                              optional={"items": inner, "minItems": st.integers(0, 2),
                                        "maxItems": st.integers(0, 2)}),
        st.fixed_dictionaries({"type": st.sampled_from(["object", ["object", "null"]])},
                              optional={"properties": st.dictionaries(
                                  st.sampled_from(WORDS), inner, max_size=3),
                                  "required": st.lists(st.sampled_from(WORDS), max_size=3,
                                                       unique=True),
                                  "additionalProperties": st.booleans()}),
    ),
    max_leaves=6)


@PROPERTY
@given(SCHEMAS, st.lists(VALUES, min_size=1, max_size=6))
def test_true_only_where_the_validator_accepts(schema: dict[str, Any],
                                               values: list[Any]) -> None:
    check = compile_exact_check(schema)
    assert check is not None  # every generated keyword is covered
    try:
        validator = compile_validator(schema)
    except SpecError:
        assume(False)  # NOTE: an app with this schema is refused at build time
        return
    for value in values:
        if check(value):
            assert validator.is_valid(value), (schema, value)


PET = {"type": "object", "required": ["id", "name", "tag", "status"],
       "properties": {"id": {"type": "integer", "minimum": 1}, "name": {"type": "string"},
                      "tag": {"type": "string", "description": "free text"},
                      "status": {"$ref": "#/definitions/Status"}},
       "additionalProperties": False}
DEFINITIONS = {"Pet": PET, "Status": {"type": "string", "enum": ["available", "sold"]}}
PETS = {"type": "array", "items": {"$ref": "#/definitions/Pet"}, "maxItems": 3,
        "definitions": DEFINITIONS}
REX = {"id": 7, "name": "Rex", "tag": "dog", "status": "sold"}


@pytest.mark.parametrize(("value", "expected"), [
    ([REX, REX], True),
    ([], True),
    ([REX] * 4, False),                               # maxItems
    ([{**REX, "id": 0}], False),                      # minimum
    ([{**REX, "id": True}], False),                   # a bool is no integer
    ([{**REX, "id": 7.0}], False),                    # valid, but "not sure": the validator says
    ([{**REX, "status": "lost"}], False),             # enum
    ([{**REX, "extra": 1}], False),                   # additionalProperties
    ([{k: v for k, v in REX.items() if k != "tag"}], False),  # required
    ((REX,), False),                                  # a tuple: "not sure"
    ({"id": 7}, False),
])
def test_the_usual_values(value: Any, expected: bool) -> None:
    check = compile_exact_check(PETS)
    assert check is not None
    assert check(value) is expected
    if expected:
        assert compile_validator(PETS).is_valid(value)


@pytest.mark.parametrize("schema", [
    {"type": "string", "pattern": "^a"},
    {"type": "string", "format": "uuid"},
    {"anyOf": [{"type": "string"}, {"type": "null"}]},
    {"type": "integer", "multipleOf": 2},
    {"type": "array", "items": [{"type": "string"}]},
    {"type": "object", "additionalProperties": {"type": "string"}},
    {"$ref": "#/definitions/Node", "definitions": {"Node": {
        "type": "object", "properties": {"next": {"$ref": "#/definitions/Node"}}}}},
    {"$ref": "#/definitions/Missing", "definitions": {}},
    {"$ref": "#/definitions/Pet", "type": "object", "definitions": DEFINITIONS},
    {"required": ["id"]},
    {"enum": [1, 2]},
    {"type": "number", "minimum": float("inf")},
])
def test_no_predicate_outside_the_covered_keywords(schema: dict[str, Any]) -> None:
    assert compile_exact_check(schema) is None


def test_a_key_is_quoted_never_run() -> None:
    name = "a'] or __import__('os') or v['"
    check = compile_exact_check({"type": "object", "required": [name],
                                 "properties": {name: {"type": "integer"}}})
    assert check is not None
    assert check({name: 1}) is True
    assert check({name: "1"}) is False


@pytest.mark.parametrize("mode", ["enforce", "log"])
@pytest.mark.parametrize("body", [
    [REX], [{**REX, "id": 7.0}], [{**REX, "status": "lost"}], [{**REX, "id": True}], []])
def test_the_lean_answer_is_the_full_one(mode: str, body: Any) -> None:
    media = MediaType("application/json", "/r/200/content/application~1json", PETS)
    operation = Operation("op", "GET", "/pets", "/paths/~1pets/get", "op", responses={
        "200": ResponseSpec("200", "/r/200", content={"application/json": media})})
    encoder = ResponseEncoder(operation, mode)
    assert encoder._lean_plan(200)[2] is not None  # type: ignore[index]
    try:
        full = encoder._encode_checked(body)
    except Exception as ex:  # NOTE: the same error is expected of both
        with pytest.raises(type(ex)):
            encoder.encode(body)
        return
    status, headers, chunks = encoder.encode(body)
    assert (status, headers, list(chunks)) == (full[0], full[1], list(full[2]))
