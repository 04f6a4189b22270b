"""Python types for translated schemas: the TypedDict models `brrt gen` writes.

Handlers receive plain validated values (dicts, lists, strings ...), so the models only
*describe* them: TypedDicts and type aliases, which cost nothing per request. They are built
from the draft-07 schemas of `brrt_actors.spec.schema` (OpenAPI 3.0 and 3.1 alike, ``nullable``
and type lists already rewritten, every ``$ref`` a key of ``definitions``):

- an object with properties is a TypedDict; a property is `NotRequired` unless required (and
  neither readOnly nor writeOnly: one model serves both directions);
- ``allOf`` of objects is one TypedDict holding every part's properties;
- ``oneOf`` / ``anyOf`` and type lists are unions, ``enum`` / ``const`` `Literal`s;
- a map (``additionalProperties`` only) is ``dict[str, T]``, a free-form object
  ``dict[str, Any]``; what has no Python type (``not``, ``if``) is `Any`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from brrt_actors.codegen.names import class_name

__all__ = ["Field", "Model", "ModelBuilder", "PyType", "fits", "render_type"]

_DEFS_PREFIX = "#/definitions/"
_ANNOTATIONS = frozenset({"title", "description", "default", "examples", "example",
                          "readOnly", "writeOnly", "deprecated", "$comment"})
# Names the generated modules import: no model may take them.
RESERVED_NAMES = frozenset({"Any", "Literal", "NotRequired", "Protocol", "TypeAlias",
                            "TypedDict", "Principal", "Operation", "BaseRequest", "annotations"})


@dataclass(frozen=True, slots=True)
class PyType:
    """A Python type: ``kind`` is any, none, str, int, float, bool, literal (``args``: the
    values), list / dict (``args``: the item type), ref (``args``: a model's name) or
    union (``args``: the members)."""

    kind: str
    args: tuple[Any, ...] = ()


ANY = PyType("any")
NONE = PyType("none")
_SCALARS = {"string": PyType("str"), "integer": PyType("int"), "number": PyType("float"),
            "boolean": PyType("bool"), "null": NONE}


@dataclass(slots=True)
class Field:
    key: str
    type: PyType
    required: bool


@dataclass(slots=True)
class Model:
    """A TypedDict (``fields``) or a type alias (``alias``), with a one-line description."""

    name: str
    doc: str = ""
    fields: list[Field] | None = None
    alias: PyType | None = None
    # NOTE: a model is registered before it is built, so recursion finds its name.
    built: bool = field(default=False, repr=False)

    @property
    def class_syntax(self) -> bool:
        """Whether every key is an identifier (class syntax), else the functional syntax."""
        return self.fields is not None and all(
            f.key.isidentifier() and f.key not in _KEYWORDS for f in self.fields)


_KEYWORDS = frozenset(__import__("keyword").kwlist)


def render_type(t: PyType, qualifier: str = "") -> str:
    """Return the Python expression of `t`, its model names prefixed by `qualifier`."""
    kind = t.kind
    if kind == "any":
        return "Any"
    if kind == "none":
        return "None"
    if kind == "literal":
        return "Literal[" + ", ".join(_literal_text(v) for v in t.args) + "]"
    if kind == "list":
        return f"list[{render_type(t.args[0], qualifier)}]"
    if kind == "dict":
        return f"dict[str, {render_type(t.args[0], qualifier)}]"
    if kind == "ref":
        return qualifier + str(t.args[0])
    if kind == "union":
        return " | ".join(render_type(member, qualifier) for member in t.args)
    return kind


def _literal_text(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def union(members: list[PyType]) -> PyType:
    """Return the union of `members`: nested unions flattened, duplicates dropped, `Any`
    absorbing everything, one member as itself."""
    flat: dict[str, PyType] = {}
    literals: list[Any] = []
    for member in members:
        for item in member.args if member.kind == "union" else (member,):
            if item.kind == "any":
                return ANY
            if item.kind == "literal":
                literals.extend(v for v in item.args if v not in literals)
            else:
                flat.setdefault(render_type(item), item)
    items = list(flat.values())
    if literals:
        items.insert(0, PyType("literal", tuple(literals)))
    if not items:
        return ANY
    return items[0] if len(items) == 1 else PyType("union", tuple(items))


class ModelBuilder:
    """Build models for the schemas of one spec, sharing one set of definitions.

    Args:
        definitions: definition key -> translated schema, as the translated roots hold them.
    """

    def __init__(self, definitions: dict[str, Any]) -> None:
        self.definitions = definitions
        self.models: dict[str, Model] = {}
        self._names: dict[str, str] = {}  # definition key -> model name
        self._used: set[str] = set(RESERVED_NAMES)

    def unique(self, wanted: str) -> str:
        """Reserve and return a model name based on `wanted`."""
        base = class_name(wanted)
        name, number = base, 2
        while name in self._used:
            name, number = f"{base}{number}", number + 1
        self._used.add(name)
        return name

    def named(self, key: str, wanted: str) -> PyType:
        """Return the type of definition `key`, as a model called `wanted` (if unnamed yet)."""
        key = self._target(key)
        name = self._names.get(key)
        if name is not None:
            return PyType("ref", (name,))
        name = self.unique(wanted)
        self._names[key] = name
        schema = self.definitions.get(key, {})
        model = Model(name, doc=_doc(schema))
        self.models[name] = model
        if self._object_like(schema):
            self._fill(model, schema)
        else:
            model.alias = self.type_of(schema, name, top=True)
        model.built = True
        return PyType("ref", (name,))

    def type_of(self, schema: Any, hint: str, *, top: bool = False) -> PyType:
        """Return the type of `schema`; an inline object becomes a model named after `hint`.

        With `top`, the schema itself is being named (its object is not wrapped again).
        """
        if not isinstance(schema, dict) or not schema.keys() - _ANNOTATIONS:
            return ANY
        if "$ref" in schema:
            key = _key_of(schema["$ref"])
            return self.named(key, key) if key is not None else ANY
        if "const" in schema:
            return _literal([schema["const"]]) or self._plain(schema, hint, top)
        if isinstance(schema.get("enum"), list):
            return _literal(schema["enum"]) or self._plain(schema, hint, top)
        if "allOf" in schema:
            return self._all_of(schema, hint, top)
        for word in ("oneOf", "anyOf"):
            variants = schema.get(word)
            if isinstance(variants, list) and not schema.get("properties"):
                rest = {k: v for k, v in schema.items() if k != word}
                return union([self._variant(rest, v, f"{hint}Option{i + 1}")
                              for i, v in enumerate(variants)])
        return self._plain(schema, hint, top)

    # -- the parts ---------------------------------------------------------------------------

    def _plain(self, schema: dict[str, Any], hint: str, top: bool) -> PyType:
        kind = schema.get("type")
        if isinstance(kind, list):
            return union([self._plain({**schema, "type": k}, hint, top) for k in kind])
        if kind is None:
            if "properties" in schema or "additionalProperties" in schema:
                kind = "object"
            elif "items" in schema:
                kind = "array"
            else:
                return ANY
        if kind in _SCALARS:
            return _SCALARS[kind]
        if kind == "array":
            items = schema.get("items")
            if isinstance(items, list):
                return PyType("list", (union([self.type_of(item, f"{hint}Item")
                                              for item in items]),))
            return PyType("list", (self.type_of(items, f"{hint}Item"),))
        if kind == "object":
            if schema.get("properties"):
                if top:
                    return ANY  # `named` fills object models itself
                model = Model(self.unique(hint), doc=_doc(schema))
                self.models[model.name] = model
                self._fill(model, schema)
                model.built = True
                return PyType("ref", (model.name,))
            extra = schema.get("additionalProperties")
            value = self.type_of(extra, f"{hint}Value") if isinstance(extra, dict) else ANY
            return PyType("dict", (value,))
        return ANY

    def _variant(self, rest: dict[str, Any], variant: Any, hint: str) -> PyType:
        if isinstance(variant, dict) and "$ref" not in variant and "type" not in variant \
                and "type" in rest:
            variant = {**rest, **variant}
        return self.type_of(variant, hint)

    def _all_of(self, schema: dict[str, Any], hint: str, top: bool) -> PyType:
        own = {k: v for k, v in schema.items() if k != "allOf"}
        parts = list(schema["allOf"])
        if own.keys() - _ANNOTATIONS:
            parts.insert(0, own)
        if len(parts) == 1:
            return self.type_of(parts[0], hint, top=top)
        if any(self._object_like(self._resolve(part)) for part in parts):
            if top:
                return ANY
            model = Model(self.unique(hint), doc=_doc(schema))
            self.models[model.name] = model
            self._fill(model, schema)
            model.built = True
            return PyType("ref", (model.name,))
        for part in parts:
            resolved = self._resolve(part)
            if isinstance(resolved, dict) and "type" in resolved:
                return self.type_of(part, hint)
        return ANY

    def _fill(self, model: Model, schema: dict[str, Any]) -> None:
        properties: dict[str, Any] = {}
        required: set[str] = set()
        self._collect(schema, properties, required, set())
        model.fields = [
            Field(key, self.type_of(prop, f"{model.name}{class_name(key)}"),
                  key in required and not (isinstance(prop, dict) and (
                      prop.get("readOnly") is True or prop.get("writeOnly") is True)))
            for key, prop in properties.items()
        ]

    def _collect(self, schema: Any, properties: dict[str, Any], required: set[str],
                 seen: set[str]) -> None:
        """Gather the properties and required names of `schema` and of its allOf parts."""
        if not isinstance(schema, dict):
            return
        if "$ref" in schema:
            key = _key_of(schema["$ref"])
            if key is None or key in seen:
                return
            seen.add(key)
            self._collect(self.definitions.get(key), properties, required, seen)
            return
        for key, prop in (schema.get("properties") or {}).items():
            properties.setdefault(key, prop)
        names = schema.get("required")
        if isinstance(names, list):
            required.update(name for name in names if isinstance(name, str))
        for part in schema.get("allOf", ()):
            self._collect(part, properties, required, seen)

    def _object_like(self, schema: Any) -> bool:
        if not isinstance(schema, dict):
            return False
        if schema.get("properties"):
            return True
        parts = schema.get("allOf")
        return isinstance(parts, list) and any(
            self._object_like(self._resolve(part)) for part in parts)

    def _resolve(self, schema: Any) -> Any:
        seen: set[str] = set()
        while isinstance(schema, dict) and "$ref" in schema:
            key = _key_of(schema["$ref"])
            if key is None or key in seen:
                return {}
            seen.add(key)
            schema = self.definitions.get(key, {})
        return schema

    def _target(self, key: str) -> str:
        """Follow definitions that only name another definition."""
        seen = {key}
        while True:
            body = self.definitions.get(key)
            if not (isinstance(body, dict) and "$ref" in body
                    and not body.keys() - _ANNOTATIONS - {"$ref"}):
                return key
            following = _key_of(body["$ref"])
            if following is None or following in seen:
                return key
            seen.add(following)
            key = following


def _key_of(ref: Any) -> str | None:
    if isinstance(ref, str) and ref.startswith(_DEFS_PREFIX):
        return ref[len(_DEFS_PREFIX):]
    return None


def _literal(values: list[Any]) -> PyType | None:
    members: list[PyType] = []
    literals: list[Any] = []
    for value in values:
        if value is None:
            members.append(NONE)
        elif isinstance(value, (str, bool, int)) and not isinstance(value, float):
            literals.append(value)
        else:
            return None
    if literals:
        members.insert(0, PyType("literal", tuple(literals)))
    return union(members) if members else None


def _doc(schema: Any) -> str:
    if not isinstance(schema, dict):
        return ""
    text = schema.get("description") or schema.get("title") or ""
    return text.strip().splitlines()[0].strip() if isinstance(text, str) and text.strip() else ""


def fits(value: Any, t: PyType, models: dict[str, Model]) -> bool:
    """Tell whether mypy accepts the literal `value` where `t` is expected."""
    kind = t.kind
    if kind == "any":
        return True
    if kind == "none":
        return value is None
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int)
    if kind == "float":
        return isinstance(value, (int, float))
    if kind == "literal":
        return any(type(value) is type(v) and value == v for v in t.args)
    if kind == "list":
        return isinstance(value, list) and all(fits(v, t.args[0], models) for v in value)
    if kind == "dict":
        return isinstance(value, dict) and all(fits(v, t.args[0], models)
                                               for v in value.values())
    if kind == "union":
        matching = [m for m in t.args if fits(value, m, models)]
        # NOTE: mypy calls a dict literal matching two TypedDicts of a union ambiguous.
        typed_dicts = [m for m in matching if m.kind == "ref"
                       and models[m.args[0]].fields is not None]
        return bool(matching) and len(typed_dicts) <= 1
    if kind == "ref":
        model = models[t.args[0]]
        if model.alias is not None:
            return fits(value, model.alias, models)
        if not isinstance(value, dict) or model.fields is None:
            return False
        by_key = {f.key: f for f in model.fields}
        return (value.keys() <= by_key.keys()
                and all(f.key in value for f in model.fields if f.required)
                and all(fits(v, by_key[k].type, models) for k, v in value.items()))
    return False
