"""Exact-type predicates compiled from simple schemas: a cheaper "valid" for the usual value.

The response stage checks every JSON body with the schema's fastjsonschema function, which
accepts a value or raises at its first error. For the plain schemas most APIs declare (objects
of typed properties, arrays of them, string enums, bounds), `compile_exact_check` builds one
Python expression instead: ``type(v) is dict and "id" in v and type(v["id"]) is int and ...``,
with no call per property or item and no error names built on the way.

The predicate is *one-sided*: True means the fastjsonschema function accepts the value (it
tests exact built-in types, a subset of what fastjsonschema's ``isinstance`` accepts, and the
same bounds); False means only "not sure". The caller then takes its usual path (the compiled
validator, the error listing), so any value gets the answer it got before. A schema with a
keyword outside the small set below gets no predicate at all (None).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

__all__ = ["ExactCheck", "compile_exact_check"]

#: ``check(value) -> bool``: True only for a value the schema's validator accepts.
ExactCheck = Callable[[Any], bool]

# Keywords that assert nothing (draft-07 annotations, as `brrt_actors.spec.schema` keeps them).
_ANNOTATIONS = frozenset({"title", "description", "default", "examples", "example",
                          "readOnly", "writeOnly", "deprecated", "$comment"})
# The expression of each JSON type over exact built-in types ({v}: the value's expression).
# NOTE: exact types: a bool is no integer, a dict subclass or a tuple is "not sure".
_TYPE_TESTS = {
    "object": "type({v}) is dict",
    "array": "type({v}) is list",
    "string": "type({v}) is str",
    "integer": "type({v}) is int",
    "number": "(type({v}) is int or type({v}) is float)",
    "boolean": "type({v}) is bool",
    "null": "{v} is None",
}
# The keywords that apply to each type (draft-07), besides `type` and `enum`.
_TYPE_KEYWORDS = {
    "object": frozenset({"properties", "required", "additionalProperties"}),
    "array": frozenset({"items", "minItems", "maxItems"}),
    "string": frozenset({"minLength", "maxLength"}),
    "integer": frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}),
    "number": frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}),
    "boolean": frozenset(),
    "null": frozenset(),
}
_KNOWN = frozenset({"type", "enum"}).union(*_TYPE_KEYWORDS.values())
_BOUNDS = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
_REF_PREFIX = "#/definitions/"
# NOTE: a deeper or larger schema is rare and gains little; the bounds keep the source small
# (a $ref is written out at each use).
_MAX_DEPTH = 16
_MAX_NODES = 500


class _Unsupported(Exception):
    """The schema uses something the exact predicate does not cover."""


def compile_exact_check(schema: dict[str, Any]) -> ExactCheck | None:
    """Compile `schema` (translated draft-07, self-contained) into an exact-type predicate.

    Returns:
        ``check(value) -> bool``, True only for values the schema's fastjsonschema function
        accepts; None when the schema uses a keyword this module does not cover (``$ref``
        other than ``#/definitions/<name>``, cycles, ``allOf``, ``pattern``, ``format`` ...).
    """
    writer = _Writer(schema)
    try:
        expression = writer.expression(schema, "v", 0, root=True)
    except _Unsupported:
        return None
    source = "".join(writer.helpers) + f"def check(v):\n    return {expression}\n"
    namespace: dict[str, Any] = dict(writer.constants)
    exec(compile(source, "<exact_check>", "exec"), namespace)  # NOTE: as fastjsonschema does
    check: ExactCheck = namespace["check"]
    return check


class _Writer:
    """Writes the predicate's expression; sets and numbers go to named constants."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.constants: dict[str, Any] = {}
        self._resolving: set[str] = set()
        self._nodes = 0
        #: The source of one function per array's items (a loop: cheaper than all(...)).
        self.helpers: list[str] = []

    def constant(self, value: Any) -> str:
        name = f"_c{len(self.constants)}"
        self.constants[name] = value
        return name

    def expression(self, schema: Any, v: str, depth: int, *, root: bool = False) -> str:
        self._nodes += 1
        if depth > _MAX_DEPTH or self._nodes > _MAX_NODES or not isinstance(schema, dict):
            raise _Unsupported
        keys = {key for key in schema if key not in _ANNOTATIONS}
        if root:
            keys -= {"definitions", "$schema"}
        if "$ref" in schema:
            if keys != {"$ref"}:
                raise _Unsupported  # NOTE: siblings of a $ref: left to the validator
            return self._ref(schema["$ref"], v, depth)
        if not keys <= _KNOWN:
            raise _Unsupported
        if "type" not in schema:
            if keys - {"enum"}:
                raise _Unsupported  # NOTE: keywords guarded by isinstance: left as they are
            return self._enum(schema["enum"], v, guarded=True) if "enum" in keys else "True"
        types = schema["type"]
        types = [types] if isinstance(types, str) else types
        if not isinstance(types, list) or not types or not all(t in _TYPE_TESTS for t in types):
            raise _Unsupported
        branches = [self._branch(kind, schema, keys, v, depth) for kind in types]
        tests = branches[0] if len(branches) == 1 else "(" + " or ".join(branches) + ")"
        if "enum" in keys:
            # NOTE: a str is hashable: after the string type test, `in` needs no guard.
            tests += " and " + self._enum(schema["enum"], v, guarded=types != ["string"])
        return tests

    def _ref(self, ref: Any, v: str, depth: int) -> str:
        if not isinstance(ref, str) or not ref.startswith(_REF_PREFIX):
            raise _Unsupported
        name = ref[len(_REF_PREFIX):]
        definitions = self.root.get("definitions")
        if (not name or any(ch in name for ch in "/~%") or not isinstance(definitions, dict)
                or name not in definitions or name in self._resolving):
            raise _Unsupported  # NOTE: a cycle (recursive schema) included
        self._resolving.add(name)
        try:
            return self.expression(definitions[name], v, depth + 1)
        finally:
            self._resolving.discard(name)

    def _enum(self, values: Any, v: str, *, guarded: bool) -> str:
        if not isinstance(values, list) or not all(type(value) is str for value in values):
            raise _Unsupported
        test = f"{v} in {self.constant(frozenset(values))}"
        return f"type({v}) is str and {test}" if guarded else test

    def _branch(self, kind: str, schema: dict[str, Any], keys: set[str], v: str,
                depth: int) -> str:
        parts = [_TYPE_TESTS[kind].format(v=v)]
        applicable = keys & _TYPE_KEYWORDS[kind]
        if kind == "object":
            parts.extend(self._object(schema, applicable, v, depth))
        elif kind == "array":
            parts.extend(self._array(schema, applicable, v, depth))
        elif kind == "string":
            for key, operator in (("minLength", ">="), ("maxLength", "<=")):
                if key in applicable:
                    parts.append(f"len({v}) {operator} {self._count(schema[key])}")
        else:
            for key in sorted(applicable):
                parts.append(f"{v} {_BOUNDS[key]} {self._number(schema[key])}")
        return "(" + " and ".join(parts) + ")" if len(parts) > 1 else parts[0]

    def _object(self, schema: dict[str, Any], keys: set[str], v: str,
                depth: int) -> list[str]:
        parts: list[str] = []
        required = schema.get("required", []) if "required" in keys else []
        properties = schema.get("properties", {}) if "properties" in keys else {}
        if (not isinstance(required, list) or not all(isinstance(k, str) for k in required)
                or not isinstance(properties, dict)):
            raise _Unsupported
        # NOTE: each key appears in the source through repr(): a str literal, never code.
        parts.extend(f"{name!r} in {v}" for name in dict.fromkeys(required))
        for name, subschema in properties.items():
            if not isinstance(name, str):
                raise _Unsupported
            test = self.expression(subschema, f"{v}[{name!r}]", depth + 1)
            if test == "True":
                continue
            parts.append(f"({test})" if name in required else f"({name!r} not in {v} or {test})")
        if "additionalProperties" in keys:
            extra = schema["additionalProperties"]
            if extra is False:
                # PERF: issuperset(dict) walks the keys: ~30% less than `keys() <= set`.
                parts.append(f"{self.constant(frozenset(properties))}.issuperset({v})")
            elif extra is not True and extra != {}:
                raise _Unsupported
        return parts

    def _array(self, schema: dict[str, Any], keys: set[str], v: str, depth: int) -> list[str]:
        parts: list[str] = []
        if "minItems" in keys:
            parts.append(f"len({v}) >= {self._count(schema['minItems'])}")
        if "maxItems" in keys:
            parts.append(f"len({v}) <= {self._count(schema['maxItems'])}")
        if "items" in keys:
            test = self.expression(schema["items"], "item", depth + 1)
            if test != "True":
                name = f"_items{len(self.helpers)}"
                self.helpers.append(f"def {name}(v):\n    for item in v:\n"
                                    f"        if not ({test}):\n            return False\n"
                                    f"    return True\n")
                parts.append(f"{name}({v})")
        return parts

    @staticmethod
    def _count(value: Any) -> str:
        if type(value) is not int or value < 0:
            raise _Unsupported
        return repr(value)

    def _number(self, value: Any) -> str:
        if type(value) is int or (type(value) is float and math.isfinite(value)):
            return self.constant(value)
        raise _Unsupported
