"""The Python names and types `brrt gen` derives from a spec."""
from __future__ import annotations

from typing import Any

import pytest

from brrt_actors.codegen.names import class_name, handler_functions, module_name, python_name
from brrt_actors.codegen.types import ModelBuilder, PyType, fits, render_type
from brrt_actors.spec.model import Operation


@pytest.mark.parametrize(("name", "expected"), [
    ("get_pet", "get_pet"), ("getPet", "getPet"), ("get-pet", "get_pet"), ("class", "class_"),
    ("_private", "private"), ("2fa", "op_2fa"), ("pets.list", "pets_list"), ("-", "operation"),
])
def test_python_names(name: str, expected: str) -> None:
    assert python_name(name) == expected


def test_handler_functions_are_unique_and_shared_by_x_handler() -> None:
    def op(operation_id: str, handler: str | None = None) -> Operation:
        return Operation(operation_id, "GET", "/", "/x", handler or operation_id)

    functions = handler_functions([op("get_pet"), op("get-pet"), op("a", "shared"),
                                   op("b", "shared"), op("class")])
    assert functions == {"get_pet": "get_pet", "get-pet": "get_pet_2", "a": "shared",
                         "b": "shared", "class": "class_"}


def test_module_and_class_names() -> None:
    assert module_name("Pet Store") == "pet_store"
    assert module_name("models") == "models_api"  # the generated modules keep their names
    assert class_name("get_pet") == "GetPet"
    assert class_name("pet-item") == "PetItem"


def _builder(definitions: dict[str, Any]) -> ModelBuilder:
    return ModelBuilder(definitions)


def test_nullable_allof_recursion_is_the_model_or_none() -> None:
    ref = {"$ref": "#/definitions/Tree"}
    builder = _builder({"Tree": {"type": "object", "properties": {
        "parent": {"anyOf": [{"allOf": [ref]}, {"type": "null"}]},
        "kids": {"type": "array", "items": ref}}}})
    assert builder.named("Tree", "Tree") == PyType("ref", ("Tree",))
    fields = {f.key: render_type(f.type) for f in builder.models["Tree"].fields or []}
    assert fields == {"parent": "Tree | None", "kids": "list[Tree]"}


def test_read_only_and_write_only_properties_are_not_required() -> None:
    builder = _builder({"User": {"type": "object", "required": ["id", "password", "name"],
                                 "properties": {"id": {"type": "string", "readOnly": True},
                                                "password": {"type": "string",
                                                             "writeOnly": True},
                                                "name": {"type": "string"}}}})
    builder.named("User", "User")
    required = {f.key: f.required for f in builder.models["User"].fields or []}
    assert required == {"id": False, "password": False, "name": True}


def test_inline_objects_become_named_models() -> None:
    builder = _builder({})
    kind = builder.type_of({"type": "array", "items": {
        "type": "object", "required": ["x"], "properties": {"x": {"type": "integer"}}}},
        "Points")
    assert render_type(kind, "models.") == "list[models.PointsItem]"
    assert [f.key for f in builder.models["PointsItem"].fields or []] == ["x"]


def test_fits_tells_when_a_literal_needs_a_cast() -> None:
    builder = _builder({
        "Cat": {"type": "object", "required": ["meows"], "properties": {
            "meows": {"type": "boolean"}}},
        "Box": {"type": "object", "properties": {"a": {"type": "integer"}}}})
    cat = builder.named("Cat", "Cat")
    box = builder.named("Box", "Box")
    models = builder.models
    assert fits({"meows": True}, cat, models)
    assert not fits({"meows": True, "extra": 1}, cat, models)  # extra key: mypy refuses
    assert not fits({}, cat, models)  # a required key is missing
    assert fits([1, 2.5], PyType("list", (PyType("float"),)), models)
    assert not fits("blue", PyType("literal", ("red",)), models)
    # a dict literal two TypedDicts of a union accept is ambiguous to mypy
    assert not fits({}, PyType("union", (box, PyType("ref", ("Box",)))), models)
