"""Compiled JSON Schema validators, built once per schema at start (the validator cache).

PLACEHOLDER: the interface below is the contract; the implementation is being written.
"""
from __future__ import annotations

from typing import Any


class SchemaValidator:
    """Validate values against one translated (draft-07, self-contained) schema."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema

    def errors(self, value: Any) -> list[tuple[str, str]]:
        """Return every violation as (JSON pointer into `value`, message); [] when valid."""
        return []


def compile_validator(schema: dict[str, Any]) -> SchemaValidator:
    """Return the cached validator of `schema`, compiling it on first use."""
    return SchemaValidator(schema)
