"""Values valid against a schema: the generator behind mock answers.

`generate_value` walks a translated (draft-07, self-contained) schema and builds the
plainest value it accepts: the lower bounds, the first enum member, a fixed value per string
format, one item per array, every declared property. Deterministic: no randomness. What the
constraints allow (allOf parts merged, numeric ranges and multiples, the value per format) is
worked out in `brrt_actors.mock.constraints`.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any
from urllib.parse import unquote

from brrt_actors.mock.constraints import (
    FORMAT_VALUES,
    INT_FORMATS,
    MockError,
    bounds,
    combine,
    format_value,
    max_known,
    min_known,
    pick_multiple,
    within,
)
from brrt_actors.mock.patterns import from_pattern, search
from brrt_actors.spec.model import JSONSchema

__all__ = ["MockError", "generate_value"]

# From the second expansion of a `$ref` on one path on, optional parts (optional properties,
# items beyond minItems) are left out, so recursive schemas show one level and stop.
_RECURSE_ONCE = 2
# A `$ref` expanded this often on one path is a *required* recursion: no finite value exists.
_MAX_SAME_REF = 8

_OBJECT_WORDS = ("properties", "required", "additionalProperties", "patternProperties",
                 "minProperties", "maxProperties", "dependencies", "propertyNames")
_ARRAY_WORDS = ("items", "minItems", "maxItems", "uniqueItems", "contains", "additionalItems")
_STRING_WORDS = ("minLength", "maxLength", "pattern")
_NUMBER_WORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")


def generate_value(schema: JSONSchema, *, notes: list[str] | None = None) -> Any:
    """Return a value valid against a translated, self-contained draft-07 `schema`.

    Args:
        schema: the schema; its ``$ref``s point inside it (``#/definitions/...``).
        notes: when given, receives one line per constraint that could only be met on a
            best-effort basis (a pattern no string could be written for, ...).

    Returns:
        A JSON value. Recursive schemas are expanded once, then only what is required.

    Raises:
        MockError: the schema admits no value (``false``, contradictory bounds, a required
            endless recursion, an unresolvable ``$ref``).
    """
    return _Generator(schema, notes if notes is not None else []).value(schema, "")


class _Generator:
    def __init__(self, root: JSONSchema, notes: list[str]) -> None:
        self.root = root
        self.notes = notes
        # NOTE: imported here, not at module level: only mock mode pays jsonschema's import.
        from jsonschema import Draft7Validator, FormatChecker

        self._validator: Any = Draft7Validator(root, format_checker=FormatChecker())
        self._active: dict[str, int] = {}  # $ref -> times it is being expanded on this path

    @property
    def deep(self) -> bool:
        return any(count >= _RECURSE_ONCE for count in self._active.values())

    def is_valid(self, schema: Any, value: Any) -> bool:
        return bool(self._validator.evolve(schema=schema).is_valid(value))

    def value(self, schema: Any, where: str, hint: str = "", variant: int = 0) -> Any:
        if schema is True or schema == {}:
            return {}
        if not isinstance(schema, dict):
            raise MockError(f"{where or '/'}: the schema `{schema!r}` accepts no value")
        if "$ref" in schema:
            return self._follow(schema["$ref"], where, hint, variant)
        if "allOf" in schema:
            refs: list[str] = []
            merged = self._merge(schema, frozenset(), refs)
            return self._expanding(refs, where, lambda: self.value(merged, where, hint, variant))
        if "const" in schema:
            return copy.deepcopy(schema["const"])
        if "enum" in schema:
            return self._enum(schema, where, variant)
        for word in ("anyOf", "oneOf"):
            if word in schema:
                return self._choose(schema, word, where, hint, variant)
        if "if" in schema:
            return self._conditional(schema, where, hint, variant)
        failure: MockError | None = None
        for kind in self._types(schema):
            try:
                return _BY_TYPE[kind](self, schema, where, hint, variant)
            except MockError as ex:
                failure = failure or ex
        raise failure or MockError(f"{where or '/'}: the schema allows no type")

    # -- combinators -------------------------------------------------------------------------

    def _follow(self, ref: str, where: str, hint: str, variant: int) -> Any:
        target = self._resolve(ref)
        return self._expanding([ref], where, lambda: self.value(target, where, hint, variant))

    def _expanding(self, refs: list[str], where: str, make: Callable[[], Any]) -> Any:
        # NOTE: every `$ref` expanded on the way down counts, those an allOf merges in too
        # (`allOf: [{$ref: Self}]`), so that a recursion stops at a bounded depth.
        counts = [self._active.get(ref, 0) for ref in refs]
        for ref, count in zip(refs, counts, strict=True):
            if count >= _MAX_SAME_REF:
                raise MockError(f"{where or '/'}: {ref} requires itself without end")
        for ref, count in zip(refs, counts, strict=True):
            self._active[ref] = count + 1
        try:
            return make()
        finally:
            for ref, count in zip(refs, counts, strict=True):
                self._active[ref] = count

    def _resolve(self, ref: str) -> Any:
        if not ref.startswith("#"):
            raise MockError(f"cannot follow {ref}: only refs inside the schema are supported")
        node: Any = self.root
        for token in [t for t in unquote(ref[1:]).split("/") if t]:
            token = token.replace("~1", "/").replace("~0", "~")
            try:
                node = node[int(token)] if isinstance(node, list) else node[token]
            except (KeyError, IndexError, ValueError, TypeError) as ex:
                raise MockError(f"cannot resolve {ref}") from ex
        return node

    def _merge(self, schema: JSONSchema, seen: frozenset[str], refs: list[str]) -> JSONSchema:
        merged: JSONSchema = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            while isinstance(part, dict) and "$ref" in part:
                if part["$ref"] in seen:
                    raise MockError(f"{part['$ref']} is part of its own allOf")
                seen = seen | {part["$ref"]}
                refs.append(part["$ref"])
                part = self._resolve(part["$ref"])
            if part is True:
                continue
            if not isinstance(part, dict):
                raise MockError("an allOf part accepts no value")
            if "allOf" in part:
                part = self._merge(part, seen, refs)
            merged = combine(merged, part)
        return merged

    def _enum(self, schema: JSONSchema, where: str, variant: int) -> Any:
        choices = [v for v in schema["enum"] if self.is_valid(schema, v)] or list(schema["enum"])
        if not choices:
            raise MockError(f"{where or '/'}: the enum is empty")
        return copy.deepcopy(choices[variant % len(choices)])

    def _choose(self, schema: JSONSchema, word: str, where: str, hint: str, variant: int) -> Any:
        base = {k: v for k, v in schema.items() if k != word}
        first: tuple[Any] | None = None
        failure: MockError | None = None
        for branch in schema[word]:
            try:
                candidate = self.value({"allOf": [base, branch]} if base else branch,
                                       where, hint, variant)
            except MockError as ex:
                failure = failure or ex
                continue
            if self.is_valid(schema, candidate):
                return candidate
            first = first or (candidate,)
        if first is not None:
            return first[0]  # best effort: the caller's own check reports it
        raise failure or MockError(f"{where or '/'}: empty {word}")

    def _conditional(self, schema: JSONSchema, where: str, hint: str, variant: int) -> Any:
        base = {k: v for k, v in schema.items() if k not in ("if", "then", "else")}
        for branch in (schema.get("then"), schema.get("else")):
            if isinstance(branch, dict):
                try:
                    candidate = self.value({"allOf": [base, branch]}, where, hint, variant)
                except MockError:
                    continue
                if self.is_valid(schema, candidate):
                    return candidate
        return self.value(base, where, hint, variant)

    def _types(self, schema: JSONSchema) -> list[str]:
        kind = schema.get("type")
        if isinstance(kind, str):
            kinds = [kind]
        elif isinstance(kind, list):
            kinds = [k for k in kind if isinstance(k, str)]
        elif any(w in schema for w in _OBJECT_WORDS):
            kinds = ["object"]
        elif any(w in schema for w in _ARRAY_WORDS):
            kinds = ["array"]
        elif any(w in schema for w in _STRING_WORDS) or schema.get("format") in FORMAT_VALUES:
            kinds = ["string"]
        elif schema.get("format") in INT_FORMATS:
            kinds = ["integer"]
        elif any(w in schema for w in _NUMBER_WORDS):
            kinds = ["number"]
        else:
            kinds = ["any"]
        if "null" in kinds:
            # Nullable: a value reads better, but null ends a recursion.
            kinds.remove("null")
            if self.deep:
                kinds.insert(0, "null")
            else:
                kinds.append("null")
        return kinds

    # -- one generator per type --------------------------------------------------------------

    def _null(self, schema: JSONSchema, where: str, hint: str, variant: int) -> Any:
        return None

    def _any(self, schema: JSONSchema, where: str, hint: str, variant: int) -> Any:
        return {}

    def _boolean(self, schema: JSONSchema, where: str, hint: str, variant: int) -> Any:
        return variant % 2 == 0

    def _integer(self, schema: JSONSchema, where: str, hint: str, variant: int) -> Any:
        lo, hi = bounds(schema)
        fmt_lo, fmt_hi = INT_FORMATS.get(schema.get("format", ""), (None, None))
        low = max_known(None if lo is None else
                        math.floor(lo[0]) + 1 if lo[1] else math.ceil(lo[0]), fmt_lo)
        high = min_known(None if hi is None else
                         math.ceil(hi[0]) - 1 if hi[1] else math.floor(hi[0]), fmt_hi)
        step = Fraction(str(schema["multipleOf"])).numerator if "multipleOf" in schema else 1
        found = pick_multiple(low, high, Fraction(step), variant)
        if found is None:
            raise MockError(f"{where or '/'}: no integer in [{low}, {high}] "
                            f"is a multiple of {step}")
        return int(found)

    def _number(self, schema: JSONSchema, where: str, hint: str, variant: int) -> Any:
        lo, hi = bounds(schema)
        if "multipleOf" in schema:
            step = Fraction(str(schema["multipleOf"]))
            low = Fraction(str(lo[0])) if lo else None
            high = Fraction(str(hi[0])) if hi else None
            first: float | None = None
            for offset in range(20):
                found = pick_multiple(low, high, step, variant + offset,
                                      lo_open=bool(lo and lo[1]), hi_open=bool(hi and hi[1]))
                if found is None:
                    break
                value = float(found)
                # NOTE: validators divide floats; prefer a multiple whose quotient is exact.
                if (value / float(step)).is_integer():
                    return value
                first = value if first is None else first
            if first is not None:
                return first
            raise MockError(f"{where or '/'}: no number in range is a multiple of {step}")
        candidates = [1.5 + variant]
        if lo:
            candidates += [lo[0] + variant, lo[0] + 1 + variant]
        if hi:
            candidates += [hi[0] - variant, hi[0] - 1 - variant]
        if lo and hi:
            candidates.append((lo[0] + hi[0]) / 2)
        for value in candidates:
            if within(value, lo, hi):
                return value
        raise MockError(f"{where or '/'}: the number range is empty")

    def _string(self, schema: JSONSchema, where: str, hint: str, variant: int) -> Any:
        min_len: int = schema.get("minLength", 0)
        max_len: int | None = schema.get("maxLength")
        if max_len is not None and min_len > max_len:
            raise MockError(f"{where or '/'}: minLength {min_len} > maxLength {max_len}")
        pattern: str | None = schema.get("pattern")
        candidates: list[str] = []
        fmt = schema.get("format")
        if fmt in FORMAT_VALUES:
            candidates.append(format_value(fmt, variant))
        if pattern is not None:
            written = from_pattern(pattern, min_len, max_len)
            if written is not None:
                candidates.append(written)
        plain = (hint or "string") + (str(variant) if variant else "")
        plain += "x" * max(0, min_len - len(plain))
        candidates.append(plain[:max_len] if max_len is not None else plain)
        for candidate in candidates:
            if (min_len <= len(candidate) <= (max_len if max_len is not None else len(candidate))
                    and (pattern is None or search(pattern, candidate))):
                return candidate
        self.notes.append(f"{where or '/'}: cannot write a string matching the pattern "
                          f"{pattern!r}: the generated value does not match it")
        return candidates[-1]

    def _array(self, schema: JSONSchema, where: str, hint: str, variant: int) -> Any:
        items: Any = schema.get("items", {})
        min_items: int = schema.get("minItems", 0)
        max_items: int | None = schema.get("maxItems")
        if max_items is not None and min_items > max_items:
            raise MockError(f"{where or '/'}: minItems {min_items} > maxItems {max_items}")
        if isinstance(items, list):
            wanted = max(min_items, 0 if self.deep else len(items))
        else:
            wanted = max(min_items, 0 if self.deep else 1)
        if max_items is not None:
            wanted = min(wanted, max_items)
        unique = bool(schema.get("uniqueItems"))
        values: list[Any] = []
        for i in range(wanted):
            if isinstance(items, list):
                item = items[i] if i < len(items) else schema.get("additionalItems", {})
            else:
                item = items
            try:
                values.append(self.value(item, f"{where}/{i}", hint,
                                         variant + i if unique else variant))
            except MockError:
                if i < min_items:
                    raise
                break
        contains = schema.get("contains")
        if contains is not None and not any(self.is_valid(contains, v) for v in values):
            found = self.value(contains, f"{where}/0", hint, variant)
            values = [found, *values][:max(1, len(values))]
        return values

    def _object(self, schema: JSONSchema, where: str, hint: str, variant: int) -> Any:
        properties: dict[str, Any] = schema.get("properties", {})
        extra: Any = schema.get("additionalProperties", True)
        max_props: int | None = schema.get("maxProperties")
        out: dict[str, Any] = {}

        def add(name: str, sub: Any) -> None:
            out[name] = self.value(sub, f"{where}/{_escape(name)}", name, variant)

        for name in schema.get("required", []):
            add(name, self._property_schema(schema, name))
        room: float = (max_props if max_props is not None else math.inf) - len(out)
        if not self.deep:
            for name, sub in properties.items():
                if room <= 0:
                    break
                if name in out or (isinstance(sub, dict) and sub.get("writeOnly")):
                    continue
                try:
                    add(name, sub)
                except MockError:
                    continue
                room -= 1
            if not properties and isinstance(extra, dict) and extra and room > 0:
                add("additionalProp1", extra)  # a map: show one entry
                room -= 1
        for name, wanted in schema.get("dependencies", {}).items():
            if name in out and isinstance(wanted, list):
                for other in wanted:
                    if other not in out:
                        add(other, self._property_schema(schema, other))
        count = 0
        while len(out) < schema.get("minProperties", 0):
            count += 1
            if extra is False:
                raise MockError(f"{where or '/'}: minProperties cannot be reached")
            if f"property{count}" not in out:
                add(f"property{count}", extra if isinstance(extra, dict) else {})
        return out

    def _property_schema(self, schema: JSONSchema, name: str) -> Any:
        properties: dict[str, Any] = schema.get("properties", {})
        if name in properties:
            return properties[name]
        for pattern, sub in schema.get("patternProperties", {}).items():
            if search(pattern, name):
                return sub
        extra = schema.get("additionalProperties", True)
        return {} if extra is True else extra


_BY_TYPE: dict[str, Callable[[_Generator, JSONSchema, str, str, int], Any]] = {
    "null": _Generator._null,
    "any": _Generator._any,
    "boolean": _Generator._boolean,
    "integer": _Generator._integer,
    "number": _Generator._number,
    "string": _Generator._string,
    "array": _Generator._array,
    "object": _Generator._object,
}


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")
