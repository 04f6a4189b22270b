"""The error listing of a validation: every violation as (JSON pointer, message).

`list_errors` turns jsonschema's errors into a sorted, bounded list whose messages say what
the schema wants and never quote the value, so they are safe to show to the client. Where a
value fails an anyOf / oneOf, the branch it was evidently meant for (by type or a constant
discriminator) is listed instead of "must match one of the allowed schemas".
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from brrt_actors.spec.refs import escape

__all__ = ["MAX_ERRORS", "ErrorItem", "json_pointer", "list_errors"]

# SECURITY: a body with thousands of errors gets a bounded answer (and bounded work).
MAX_ERRORS = 100
_MAX_TEXT = 60

ErrorItem = tuple[str, str]  # (JSON pointer into the value, message)


def list_errors(errors: Iterable[Any]) -> list[ErrorItem]:
    """Return jsonschema's `errors` as (pointer, message), sorted, at most `MAX_ERRORS` + 1."""
    found: dict[tuple[tuple[Any, ...], str], None] = {}
    _collect(errors, found)
    items = sorted(found, key=lambda item: (_sort_key(item[0]), item[1]))
    listed = [(json_pointer(path), message) for path, message in items[:MAX_ERRORS]]
    if len(found) > MAX_ERRORS:
        listed.append(("", f"more errors not listed (the first {MAX_ERRORS} are)"))
    return listed


def _collect(errors: Iterable[Any], found: dict[tuple[tuple[Any, ...], str], None]) -> None:
    for error in errors:
        if len(found) > MAX_ERRORS:
            return
        path = tuple(error.absolute_path)
        keyword, expected, instance = error.validator, error.validator_value, error.instance
        if keyword == "required" and isinstance(instance, dict):
            for name in expected:
                if name not in instance:
                    found[((*path, name), "is required")] = None
        elif keyword == "additionalProperties" and isinstance(instance, dict):
            for name in _extra_properties(instance, error.schema):
                found[((*path, _text(name)), "is not an allowed property")] = None
        elif keyword == "dependencies" and isinstance(instance, dict):
            for name, needs in expected.items():
                if name in instance and isinstance(needs, list):
                    for need in needs:
                        if need not in instance:
                            found[((*path, need), f"is required when '{_text(name)}' is present"
                                   )] = None
        elif keyword in ("anyOf", "oneOf"):
            branch = _only_candidate(error.context)
            kinds = _root_types(error.context)
            if branch:
                _collect(branch, found)
            elif kinds:
                found[(path, _message("type", kinds, None))] = None
            elif keyword == "oneOf" and not error.context:
                found[(path, "must match exactly one of the allowed schemas, not several")] = None
            else:
                found[(path, "must match one of the allowed schemas")] = None
        else:
            found[(path, _message(keyword, expected, error.schema))] = None


def _only_candidate(context: list[Any]) -> list[Any]:
    """Return the errors of the one anyOf/oneOf branch the value was evidently meant for.

    A branch is ruled out when the value has the wrong type for it, or a property with the
    wrong constant (a discriminator); when exactly one branch remains, its errors are
    more useful than "must match one of the allowed schemas".
    """
    branches: dict[Any, list[Any]] = {}
    for error in context:
        branches.setdefault(error.relative_schema_path[0], []).append(error)
    candidates = [errors for errors in branches.values() if not any(
        (error.validator == "type" and not error.relative_path)
        or (error.validator == "const" and len(error.relative_path) == 1)
        for error in errors)]
    return candidates[0] if len(candidates) == 1 else []


def _root_types(context: list[Any]) -> list[str]:
    """Return the types the branches want when every branch refused the value's type."""
    kinds: dict[str, None] = {}
    refused: set[Any] = set()
    for error in context:
        if error.validator == "type" and not error.relative_path:
            refused.add(error.relative_schema_path[0])
            expected = error.validator_value
            for kind in expected if isinstance(expected, list) else [expected]:
                kinds[str(kind)] = None
    branches = {error.relative_schema_path[0] for error in context}
    return list(kinds) if context and refused == branches else []


def _extra_properties(instance: dict[str, Any], schema: Any) -> list[str]:
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    return [name for name in instance if name not in properties
            and not any(re.search(pattern, name) for pattern in patterns)]


def _message(keyword: str | None, expected: Any, schema: Any) -> str:
    if keyword == "type":
        kinds = expected if isinstance(expected, list) else [expected]
        return f"must be of type {' or '.join(str(kind) for kind in kinds)}"
    if keyword == "not" and expected == {}:  # a `false` subschema
        return "is not allowed"
    simple = _MESSAGES.get(keyword or "")
    if simple is not None:
        return simple.format(_text(expected) if keyword in ("pattern", "format") else
                             _short(expected))
    if keyword == "additionalItems":
        items = schema.get("items")
        return f"must not have more than {len(items) if isinstance(items, list) else 0} items"
    if keyword is None:  # the `false` schema
        return "is not allowed"
    return f"does not satisfy '{keyword}'"


_MESSAGES = {
    "enum": "must be one of {}",
    "const": "must be {}",
    "minimum": "must be >= {}",
    "maximum": "must be <= {}",
    "exclusiveMinimum": "must be > {}",
    "exclusiveMaximum": "must be < {}",
    "multipleOf": "must be a multiple of {}",
    "minLength": "must be at least {} characters long",
    "maxLength": "must be at most {} characters long",
    "pattern": "must match the pattern {}",
    "format": "must be a valid {}",
    "minItems": "must have at least {} items",
    "maxItems": "must have at most {} items",
    "uniqueItems": "must not contain duplicate items",
    "minProperties": "must have at least {} properties",
    "maxProperties": "must have at most {} properties",
    "contains": "must contain at least one matching item",
    "not": "must not match the excluded schema",
    "propertyNames": "has a property name that is not allowed",
}


def _short(value: Any) -> str:
    """Render a value from the schema (never from the request) compactly, as JSON."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "..."


def _text(name: Any) -> str:
    text = str(name)
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "..."


def json_pointer(path: Iterable[Any]) -> str:
    """Return the RFC 6901 pointer of a path of keys and indexes ("" for the value itself)."""
    return "".join("/" + escape(str(part)) for part in path)


def _sort_key(path: tuple[Any, ...]) -> list[tuple[int, int, str]]:
    return [(0, part, "") if isinstance(part, int) else (1, 0, str(part)) for part in path]
