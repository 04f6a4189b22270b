"""Reading the values of the config file's ``security:`` section and of the env, one by one.

A `SettingReader` checks each value as it is read and collects every problem, named by config
key or variable, so that `resolve_security` reports them all at once; it never quotes a value.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from brrt_actors.errors import Problem
from brrt_actors.security.scheme_settings import variable_names

__all__ = ["SettingReader", "scheme_variable"]


class SettingReader:
    """Collects problems while reading values; each message names where, never the value."""

    def __init__(self, prefix: str, base_dir: Path | None) -> None:
        self.prefix = prefix
        self.base_dir = base_dir
        self.problems: list[Problem] = []
        self.notes: list[str] = []

    def prefix_of(self, where: str) -> str:
        return where if where.startswith(("BRRTR_", "/")) else self.prefix + where

    def problem(self, where: str, message: str) -> None:
        self.problems.append((self.prefix_of(where), message))

    def note(self, where: str, message: str) -> None:
        self.notes.append(f"{self.prefix_of(where)}: {message}")

    def text(self, value: Any, where: str) -> str | None:
        if not isinstance(value, str) or not value.strip():
            self.problem(where, "must be a non-empty string")
            return None
        return value.strip()

    def number(self, value: Any, where: str, scale: float = 1.0) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 \
                or not math.isfinite(value):
            self.problem(where, "must be a number >= 0")
            return None
        return float(value) * scale

    def texts(self, value: Any, where: str) -> tuple[str, ...] | None:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or not all(
                isinstance(item, str) and item.strip() for item in value):
            self.problem(where, "must be a non-empty string or a list of them")
            return None
        return tuple(item.strip() for item in value)

    def url(self, value: Any, where: str) -> str | None:
        url = self.text(value, where)
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.problem(where, "must be an http:// or https:// URL")
            return None
        if parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
            self.note(where, "a plain http:// URL to another host: credentials and keys "
                             "travel unencrypted (use https://)")
        return url

    def entry(self, value: Any, where: str, allowed: frozenset[str]) -> dict[str, Any] | None:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(where, "must be a mapping")
            return None
        for key in value:
            if key not in allowed:
                self.problem(f"{where}.{key}", "unknown key; allowed: " + ", ".join(
                    sorted(allowed - {"signature"})))
        return value


def scheme_variable(environ: Mapping[str, str], base: str, scheme_name: str,
                    reader: SettingReader) -> tuple[str, str] | None:
    """Return (variable, value) of the scheme's ``<base>__<Scheme>`` variable, if one is set.

    Both spellings (the scheme as written, upper-cased) may be set only to the same value.
    """
    found = [(name, value) for name in variable_names(base, scheme_name)
             if (value := environ.get(name)) is not None and value.strip()]
    if len(found) == 2 and found[0][1].strip() != found[1][1].strip():
        reader.problem(found[0][0], f"both {found[0][0]} and {found[1][0]} are set, to "
                                    "different values; keep one")
    return found[0] if found else None
