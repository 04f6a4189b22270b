"""The CORS settings: the config file's ``cors:`` section (BRRTRouter's keys) and ``BRRTR_CORS_*``.

Each key may come from the config file or from its variable (the variable wins); lists are
YAML lists or comma-separated strings. Every value is checked at start, and a wildcard
origin with credentials is refused there, naming the key: browsers refuse that combination,
so it could only fail later, in every user's browser.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from brrt_actors.config.knobs import Invalid, describe, env_value, parse_switch
from brrt_actors.config.settings import CorsSettings
from brrt_actors.errors import Problem

__all__ = ["CORS_KEYS", "parse_header_names", "parse_methods", "read_cors_settings",
           "wildcard_with_credentials"]

#: The ``cors:`` keys (BRRTRouter's), each with its environment variable.
CORS_KEYS: Final = {
    "origins": "BRRTR_CORS_ORIGINS",
    "allowed_headers": "BRRTR_CORS_ALLOWED_HEADERS",
    "allowed_methods": "BRRTR_CORS_ALLOWED_METHODS",
    "allow_credentials": "BRRTR_CORS_ALLOW_CREDENTIALS",
    "expose_headers": "BRRTR_CORS_EXPOSE_HEADERS",
    "max_age": "BRRTR_CORS_MAX_AGE",
}

# An origin as browsers send it: scheme "://" host [":" port], no path, no trailing slash.
_ORIGIN = re.compile(r"[a-z][a-z0-9+.\-]*://[^\s/?#@:]+(:\d{1,5})?\Z")
# RFC 9110 token: header field names and methods.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
def _items(value: object, what: str) -> list[str]:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return [item.strip() for item in value if item.strip()]
    raise Invalid(f"a list of {what} (or one comma-separated string)")


def _origins(value: object) -> tuple[str, ...]:
    origins = []
    for origin in _items(value, "origins"):
        if origin == "*":
            origins.append(origin)
            continue
        lowered = origin.lower()  # NOTE: browsers send scheme and host in lower case
        if not _ORIGIN.match(lowered):
            raise Invalid(f"origins as browsers send them, scheme://host[:port] without a "
                           f"path or trailing slash (or '*'); {origin!r} is not one")
        origins.append(lowered)
    return tuple(dict.fromkeys(origins))


def parse_header_names(value: object) -> tuple[str, ...]:
    """Return header names (or ``"*"``) from a list or a comma-separated string.

    Raises:
        ValueError: not a list of header names; the message says what is allowed.
    """
    names = _items(value, "header names")
    for name in names:
        if not _TOKEN.match(name):
            raise Invalid(f"header names (letters, digits, '-' ...); {name!r} is not one")
    return tuple(dict.fromkeys(names))


def parse_methods(value: object) -> tuple[str, ...]:
    """Return upper-cased HTTP methods (or ``"*"``) from a list or a comma-separated string.

    Raises:
        ValueError: not a list of methods; the message says what is allowed.
    """
    methods = _items(value, "HTTP methods")
    for method in methods:
        if not _TOKEN.match(method):
            raise Invalid(f"HTTP methods (GET, POST ...); {method!r} is not one")
    return tuple(dict.fromkeys(method.upper() for method in methods))


def _max_age(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise Invalid("a number of seconds >= 0, or null (browsers use their own default)")


_PARSERS: Final[Mapping[str, Callable[[object], Any]]] = {
    "origins": _origins,
    "allowed_headers": parse_header_names,
    "allowed_methods": parse_methods,
    "allow_credentials": parse_switch,
    "expose_headers": parse_header_names,
    "max_age": _max_age,
}


def read_cors_settings(section: Mapping[str, Any], environ: Mapping[str, str], prefix: str,
                       problems: list[Problem]) -> CorsSettings:
    """Return the CORS settings of the config file's `section`, the variables winning.

    Args:
        section: the config file's ``cors:`` mapping ({} without one); its keys were checked.
        environ: where ``BRRTR_CORS_*`` are read.
        prefix: what problems put before a config file key (``"<path>: "``).
        problems: collects every bad value, and a wildcard origin with credentials.
    """
    values: dict[str, Any] = {}
    where: dict[str, str] = {}
    for key, variable in CORS_KEYS.items():
        sources = []
        if key in section:
            sources.append((f"{prefix}cors.{key}", section[key]))
        raw = env_value(environ, variable)
        if raw is not None:
            sources.append((variable, raw))
        for name, value in sources:
            try:
                values[key] = _PARSERS[key](value)
            except Invalid as ex:
                problems.append((name, f"{describe(value)} is not valid; expected {ex}"))
            else:
                where[key] = name
    settings = CorsSettings(**values, where=where)
    if settings.allow_credentials:
        for key in ("origins", "allowed_headers", "allowed_methods", "expose_headers"):
            if "*" in getattr(settings, key):
                problems.append((where["allow_credentials"], wildcard_with_credentials(
                    where.get(key, f"cors.{key}"))))
    return settings


def wildcard_with_credentials(wildcard_key: str) -> str:
    """Say why credentials cannot go with the wildcard of `wildcard_key`."""
    return (f"cannot be true while {wildcard_key} holds '*': browsers refuse credentials "
            "with a wildcard; list the values instead")
