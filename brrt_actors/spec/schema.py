"""Schema translation: OpenAPI 3.0 / 3.1 schemas into self-contained JSON Schema draft-07.

Both validators (fastjsonschema for the fast path, jsonschema for listing every error) read
draft-07, so every schema of the document is rewritten once, at start:

- ``$ref`` targets are translated once per (location, direction) and gathered into the root's
  ``definitions`` under readable keys (``Pet``, ``Pet_2`` ...); recursion stays a ``$ref``.
- OpenAPI 3.0: ``nullable``, boolean ``exclusiveMinimum``/``exclusiveMaximum``.
- JSON Schema 2020-12 (OpenAPI 3.1): ``prefixItems``, ``dependentRequired``,
  ``dependentSchemas``, ``unevaluatedProperties``/``unevaluatedItems`` where they have a
  draft-07 equivalent; what has none is a start error, never silently dropped.
- ``readOnly`` properties are not required in requests, ``writeOnly`` ones not in responses.
- ``format: int32|int64`` become ``minimum``/``maximum``.

The translated schemas share their nested objects (and definitions): treat them as read-only.
"""
from __future__ import annotations

import os
import re
from typing import Any

from brrt_actors.spec.formats import INTEGER_RANGES, is_known
from brrt_actors.spec.model import JSONSchema
from brrt_actors.spec.problems import Problems
from brrt_actors.spec.refs import Documents, Location, child, unescape

DRAFT07 = "http://json-schema.org/draft-07/schema#"
REQUEST = "request"
RESPONSE = "response"

_DEFS_PREFIX = "#/definitions/"
_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object", "null"})
# Kept as written: annotations, harmless to both validators.
_ANNOTATIONS = frozenset({
    "title", "description", "default", "examples", "example", "readOnly", "writeOnly",
    "deprecated", "$comment",
})
# Kept as written: assertions draft-07 understands the same way (some checked below).
_ASSERTIONS = frozenset({
    "type", "enum", "const", "multipleOf", "maximum", "minimum", "exclusiveMaximum",
    "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems", "minItems",
    "uniqueItems", "maxProperties", "minProperties", "required", "format",
})
_NUMERIC = frozenset({
    "multipleOf", "maximum", "minimum", "exclusiveMaximum", "exclusiveMinimum", "maxLength",
    "minLength", "maxItems", "minItems", "maxProperties", "minProperties",
})
_SUBSCHEMA = frozenset({
    "additionalProperties", "additionalItems", "contains", "propertyNames", "not", "if", "then",
    "else",
})
_SUBSCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf"})
_SUBSCHEMA_MAPS = frozenset({"properties", "patternProperties"})
# Handled after the other keywords, from the original schema.
_POST = frozenset({
    "$ref", "nullable", "prefixItems", "dependencies", "dependentRequired", "dependentSchemas",
    "unevaluatedProperties", "unevaluatedItems",
})
# Dropped: OpenAPI-only annotations and containers (refs into them resolve by pointer).
_DROPPED = frozenset({
    "discriminator", "xml", "externalDocs", "$schema", "$defs", "definitions", "$anchor",
    "$dynamicAnchor", "$recursiveAnchor", "contentMediaType", "contentEncoding", "$vocabulary",
})
_UNSUPPORTED = {
    "$dynamicRef": "dynamic references have no draft-07 equivalent; use a plain $ref",
    "$recursiveRef": "recursive references have no draft-07 equivalent; use a plain $ref",
    "contentSchema": "a schema for encoded content cannot be checked; remove it or decode "
                     "the content in the handler",
    "minContains": "has no draft-07 equivalent; remove it or check the count in the handler",
    "maxContains": "has no draft-07 equivalent; remove it or check the count in the handler",
}
# Keywords that evaluate properties/items of the same instance: unevaluated* depends on them.
_IN_PLACE = ("allOf", "anyOf", "oneOf", "$ref", "if", "then", "else", "dependentSchemas",
             "dependencies")


class _Definition:
    __slots__ = ("body", "deps", "key")

    def __init__(self, key: str) -> None:
        self.key = key
        self.body: Any = True
        self.deps: set[str] = set()


class SchemaTranslator:
    """Translate the schemas of one document set, memoizing every `$ref` target.

    Args:
        docs: the documents `$ref`s are resolved in.
        openapi_version: (major, minor) of the document: 3.0 and 3.1 differ.
        problems: where untranslatable keywords and bad values are recorded.
    """

    def __init__(self, docs: Documents, openapi_version: tuple[int, int],
                 problems: Problems) -> None:
        self._docs = docs
        self._v31 = openapi_version >= (3, 1)
        self._problems = problems
        self._keys: dict[Location, str] = {}
        self._used_keys: set[str] = set()
        self._defs: dict[tuple[str, Location], _Definition] = {}
        self._by_key: dict[tuple[str, str], _Definition] = {}
        self._roots: dict[tuple[str, Location], JSONSchema] = {}

    def translate(self, node: Any, loc: Location, direction: str) -> JSONSchema:
        """Return the self-contained draft-07 schema for the schema `node` found at `loc`.

        Args:
            node: the schema as written (may be a ``$ref``).
            loc: where it is (problems name this place).
            direction: ``"request"`` or ``"response"`` (readOnly / writeOnly handling).
        """
        cached = self._roots.get((direction, loc))
        if cached is not None:
            return cached
        entry = self._entry(node, loc, direction)
        body, deps = entry.body, entry.deps
        seen = {entry.key}
        # NOTE: a root that only names another schema is replaced by it: draft-07 ignores
        # everything beside a $ref, and downstream code reads `type` at the root.
        while isinstance(body, dict) and _ref_only(body):
            target = self._by_key.get((direction, body["$ref"][len(_DEFS_PREFIX):]))
            if target is None or target.key in seen:
                break
            seen.add(target.key)
            notes = {key: value for key, value in body.items() if key != "$ref"}
            body, deps = target.body, target.deps
            if isinstance(body, dict):
                body = {**body, **notes}
        if body is True:
            body = {}
        elif body is False:
            body = {"not": {}}
        # NOTE: no "$schema" here: downstream code reads the root's keys; the validators are
        # told the draft when they compile.
        root: JSONSchema = dict(body)
        definitions = self._closure(direction, deps)
        if definitions:
            root["definitions"] = definitions
        self._roots[(direction, loc)] = root
        return root

    # -- definitions ------------------------------------------------------------------------

    def _closure(self, direction: str, deps: set[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        stack = sorted(deps)
        while stack:
            key = stack.pop()
            if key in found:
                continue
            target = self._by_key[(direction, key)]
            found[key] = target.body
            stack.extend(target.deps)
        return dict(sorted(found.items()))

    def _entry(self, node: Any, loc: Location, direction: str) -> _Definition:
        entry = self._defs.get((direction, loc))
        if entry is not None:
            return entry
        entry = _Definition(self._key_for(loc))
        # NOTE: registered before its body is built, so a schema reaching itself gets its key.
        self._defs[(direction, loc)] = entry
        self._by_key[(direction, entry.key)] = entry
        entry.body = self._node(node, loc, direction, entry.deps)
        return entry

    def _key_for(self, loc: Location) -> str:
        key = self._keys.get(loc)
        if key is not None:
            return key
        path, pointer = loc
        name = unescape(pointer.rsplit("/", 1)[-1]) if pointer else os.path.basename(path)
        if not pointer:
            name = os.path.splitext(name)[0]
        base = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "schema"
        key, number = base, 2
        while key in self._used_keys:
            key, number = f"{base}_{number}", number + 1
        self._used_keys.add(key)
        self._keys[loc] = key
        return key

    def _ref(self, ref: Any, at: Location, direction: str, deps: set[str]) -> str | None:
        found = self._docs.resolve(ref, at)
        if found is None:
            return None
        entry = self._entry(found[0], found[1], direction)
        deps.add(entry.key)
        return _DEFS_PREFIX + entry.key

    # -- one schema object ------------------------------------------------------------------

    def _node(self, node: Any, loc: Location, direction: str, deps: set[str]) -> Any:
        if node is False:
            # NOTE: jsonschema reports a `false` subschema without the path to the value;
            # `not: {}` means the same and keeps it.
            return {"not": {}}
        if node is True:
            return True
        if not isinstance(node, dict):
            self._error(loc, "a schema must be an object (or true / false)")
            return True
        source = node
        if "$ref" in node and not self._v31:
            ignored = [key for key in node if key not in _ANNOTATIONS
                       and key not in ("$ref", "nullable") and not key.startswith("x-")]
            if ignored:
                self._warn(loc, f"OpenAPI 3.0 ignores keywords beside $ref ({', '.join(ignored)});"
                                " to apply them write allOf: [{$ref: ...}, {...}]")
            source = {key: value for key, value in node.items()
                      if key in _ANNOTATIONS or key in ("$ref", "nullable")}
        out = self._keywords(source, loc, direction, deps)
        self._post(source, out, loc, direction, deps)
        if "$ref" in source:
            target = self._ref(source["$ref"], loc, direction, deps)
            ref_schema: JSONSchema = {"$ref": target} if target is not None else {}
            if all(key in _ANNOTATIONS for key in out):
                out = {**ref_schema, **out}
            else:
                out["allOf"] = [ref_schema, *out.get("allOf", ())]
        nullable = source.get("nullable")
        if nullable is True:
            if self._v31:
                self._warn(child(loc, "nullable"), "nullable is not an OpenAPI 3.1 keyword (it is "
                                                   "applied anyway); write type: [..., 'null']")
            out = _nullable(out)
        elif nullable not in (None, False):
            self._error(child(loc, "nullable"), "must be true or false")
        return out

    def _keywords(self, node: dict[str, Any], loc: Location, direction: str,
                  deps: set[str]) -> JSONSchema:
        out: JSONSchema = {}
        for key, value in node.items():
            at = child(loc, key)
            if key in _ASSERTIONS:
                if self._check(key, value, at):
                    out[key] = value
            elif key in _ANNOTATIONS:
                out[key] = value
            elif key in _SUBSCHEMA:
                closed = value is False and key.startswith("additional")
                out[key] = False if closed else self._node(value, at, direction, deps)
            elif key in _SUBSCHEMA_LISTS:
                if isinstance(value, list) and value:
                    out[key] = [self._node(item, child(at, i), direction, deps)
                                for i, item in enumerate(value)]
                else:
                    self._error(at, "must be a non-empty list of schemas")
            elif key in _SUBSCHEMA_MAPS:
                out[key] = self._schema_map(value, at, direction, deps)
                if key == "patternProperties":
                    for name in out[key]:
                        self._check("pattern", name, child(at, name))
            elif key == "items":
                if value is False and "prefixItems" in node:
                    out[key] = False  # becomes additionalItems: false
                elif isinstance(value, list):
                    out[key] = [self._node(item, child(at, i), direction, deps)
                                for i, item in enumerate(value)]
                else:
                    out[key] = self._node(value, at, direction, deps)
            elif key in _POST or key in _DROPPED or key.startswith("x-"):
                pass
            elif key in _UNSUPPORTED:
                self._error(at, f"'{key}' cannot be validated: {_UNSUPPORTED[key]}")
            elif key == "$id":
                self._warn(at, "$id is ignored: $refs inside resolve against the document")
            else:
                self._warn(at, f"unknown schema keyword '{key}' is ignored")
        return out

    def _post(self, node: dict[str, Any], out: JSONSchema, loc: Location, direction: str,
              deps: set[str]) -> None:
        """Apply the keywords whose translation depends on others of the same schema."""
        for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            value = node.get(exclusive)
            if isinstance(value, bool):  # OpenAPI 3.0 / draft-04 form
                del out[exclusive]
                if value and bound in out:
                    out[exclusive] = out.pop(bound)
                elif value:
                    self._warn(child(loc, exclusive), f"has no effect without '{bound}'")
        fmt = node.get("format")
        limits = INTEGER_RANGES.get(fmt) if isinstance(fmt, str) else None
        if limits is not None:
            low, high = limits
            if not _is_number(out.get("minimum")) or out["minimum"] < low:
                out["minimum"] = low
            if not _is_number(out.get("maximum")) or out["maximum"] > high:
                out["maximum"] = high
        if "prefixItems" in node:
            at = child(loc, "prefixItems")
            prefix = node["prefixItems"]
            if not isinstance(prefix, list):
                self._error(at, "must be a list of schemas")
                prefix = []
            rest = out.pop("items", None)
            out["items"] = [self._node(item, child(at, i), direction, deps)
                            for i, item in enumerate(prefix)]
            if rest is not None:
                out["additionalItems"] = rest
        self._dependencies(node, out, loc, direction, deps)
        self._unevaluated(node, out, loc, direction, deps)
        self._hide_required(node, out, loc, direction)

    def _dependencies(self, node: dict[str, Any], out: JSONSchema, loc: Location,
                      direction: str, deps: set[str]) -> None:
        merged: dict[str, Any] = {}
        for keyword in ("dependencies", "dependentRequired", "dependentSchemas"):
            if keyword not in node:
                continue
            at = child(loc, keyword)
            value = node[keyword]
            if not isinstance(value, dict):
                self._error(at, "must be a mapping of property names")
                continue
            for name, dependency in value.items():
                if keyword != "dependentSchemas" and isinstance(dependency, list):
                    translated: Any = dependency
                elif keyword != "dependentRequired":
                    translated = self._node(dependency, child(at, name), direction, deps)
                else:
                    self._error(child(at, name), "must be a list of property names")
                    continue
                if name in merged:  # both forms for one property
                    translated = {"allOf": [_as_schema(merged[name]), _as_schema(translated)]}
                merged[name] = translated
        if merged:
            out["dependencies"] = merged

    def _unevaluated(self, node: dict[str, Any], out: JSONSchema, loc: Location,
                     direction: str, deps: set[str]) -> None:
        for keyword, also in (("unevaluatedProperties", ()), ("unevaluatedItems", ("contains",))):
            if keyword not in node:
                continue
            at = child(loc, keyword)
            blockers = [key for key in (*_IN_PLACE, *also) if key in node]
            if blockers:
                self._error(at, f"cannot be translated to draft-07 beside {', '.join(blockers)}; "
                                "declare the properties (items) in this schema and use "
                                "additionalProperties (additionalItems) instead")
                continue
            value = node[keyword]
            translated = False if value is False else self._node(value, at, direction, deps)
            if keyword == "unevaluatedProperties":
                if "additionalProperties" not in node:  # else it never sees anything
                    out["additionalProperties"] = translated
            elif "prefixItems" in node:
                if "items" not in node:
                    out["additionalItems"] = translated
            elif "items" not in node:
                out["items"] = translated

    def _hide_required(self, node: dict[str, Any], out: JSONSchema, loc: Location,
                       direction: str) -> None:
        required = out.get("required")
        properties = node.get("properties")
        if not required or not isinstance(properties, dict):
            return
        flag = "readOnly" if direction == REQUEST else "writeOnly"
        hidden = {name for name, prop in properties.items()
                  if self._has_flag(prop, child(loc, "properties", name), flag)}
        if hidden:
            kept = [name for name in required if name not in hidden]
            if kept:
                out["required"] = kept
            else:
                del out["required"]

    def _has_flag(self, node: Any, loc: Location, flag: str) -> bool:
        for _ in range(32):  # a $ref chain; cycles are reported elsewhere
            if not isinstance(node, dict):
                return False
            if node.get(flag) is True:
                return True
            if "$ref" not in node:
                return False
            found = self._docs.resolve(node["$ref"], loc)
            if found is None:
                return False
            node, loc = found
        return False

    def _schema_map(self, value: Any, at: Location, direction: str,
                    deps: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            self._error(at, "must be a mapping of names to schemas")
            return {}
        return {name: self._node(item, child(at, name), direction, deps)
                for name, item in value.items()}

    def _check(self, key: str, value: Any, at: Location) -> bool:
        """Tell whether assertion `key` has a usable value (records a problem if not)."""
        if key == "type":
            kinds = value if isinstance(value, list) else [value]
            bad = [kind for kind in kinds if kind not in _TYPES]
            if bad or not kinds:
                self._error(at, f"unknown type {bad[0] if bad else value!r}; use one of "
                                "string, number, integer, boolean, array, object, null")
                return False
        elif key == "pattern":
            if not isinstance(value, str):
                self._error(at, "must be a regular expression string")
                return False
            try:
                re.compile(value)
            except re.error as ex:
                self._error(at, f"is not a valid regular expression (Python re syntax): {ex}")
                return False
        elif key == "required":
            if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
                self._error(at, "must be a list of property names (in OpenAPI, list required "
                                "properties on the object: required: [name, ...])")
                return False
        elif key == "enum":
            if not isinstance(value, list):
                self._error(at, "must be a list of values")
                return False
        elif key == "format":
            if not isinstance(value, str):
                self._error(at, "must be a string")
                return False
            if not is_known(value):
                self._warn(at, f"format '{value}' is not checked")
        elif key == "uniqueItems":
            if not isinstance(value, bool):
                self._error(at, "must be true or false")
                return False
        elif (key in _NUMERIC and not _is_number(value)
              and not (key.startswith("exclusive") and isinstance(value, bool))):
            self._error(at, "must be a number")
            return False
        return True

    def _error(self, loc: Location, message: str) -> None:
        self._problems.error(self._docs.where(loc), message)

    def _warn(self, loc: Location, message: str) -> None:
        self._problems.warn(self._docs.where(loc), message)


def _ref_only(body: dict[str, Any]) -> bool:
    return "$ref" in body and all(key == "$ref" or key in _ANNOTATIONS for key in body)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_schema(dependency: Any) -> Any:
    return {"required": dependency} if isinstance(dependency, list) else dependency


def _nullable(out: JSONSchema) -> JSONSchema:
    """Let `out` (translated, without nullable) also accept null."""
    if any(key in out for key in ("$ref", "allOf", "anyOf", "oneOf", "not", "const", "if")):
        notes = {key: out.pop(key) for key in list(out) if key in _ANNOTATIONS}
        return {"anyOf": [out, {"type": "null"}], **notes}
    kind = out.get("type")
    if isinstance(kind, str) and kind != "null":
        out["type"] = [kind, "null"]
    elif isinstance(kind, list) and "null" not in kind:
        out["type"] = [*kind, "null"]
    enum = out.get("enum")
    if isinstance(enum, list) and None not in enum:
        out["enum"] = [*enum, None]
    return out


def translate_schema(schema: Any, *, openapi_version: str = "3.1.0",
                     direction: str = REQUEST) -> JSONSchema:
    """Translate one standalone schema (its `$ref`s point into itself) to draft-07.

    Args:
        schema: an OpenAPI schema object; ``#/...`` refs resolve inside it.
        openapi_version: the dialect it is written in ("3.0.3", "3.1.0" ...).
        direction: ``"request"`` or ``"response"``.

    Raises:
        SpecError: listing every keyword or reference that cannot be translated.
    """
    problems = Problems()
    docs = Documents("<schema>", schema, problems)
    major, minor = (int(part) for part in openapi_version.split(".")[:2])
    translated = SchemaTranslator(docs, (major, minor), problems).translate(
        schema, docs.root, direction)
    problems.raise_if_any()
    return translated


__all__ = ["DRAFT07", "REQUEST", "RESPONSE", "SchemaTranslator", "translate_schema"]
