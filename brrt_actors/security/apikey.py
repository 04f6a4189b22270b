"""API keys in a header, a query parameter or a cookie, compared in constant time."""
from __future__ import annotations

import hmac
from collections.abc import Mapping
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from ..errors import ConfigError
from ..request import Principal
from ..spec.model import SecurityScheme


def key_variable_names(scheme_name: str) -> tuple[str, str]:
    """Return the env variables that may hold `scheme_name`'s key (as written, upper-cased)."""
    return f"BRRTR_API_KEY__{scheme_name}", f"BRRTR_API_KEY__{scheme_name.upper()}"


def api_keys_for(scheme_name: str, environ: Mapping[str, str],
                 config: Mapping[str, Any]) -> list[bytes]:
    """Return the configured keys of a scheme: env first, then the config file."""
    for variable in key_variable_names(scheme_name):
        value = environ.get(variable)
        if value:
            return [key.strip().encode() for key in value.split(",") if key.strip()]
    entry = (config.get("api_keys") or {}).get(scheme_name)
    if entry is None:
        return []
    if not isinstance(entry, Mapping):
        raise ConfigError([(f"security.api_keys.{scheme_name}",
                            "must be a mapping with `key` or `keys`")])
    keys: list[Any] = []
    if entry.get("key"):
        keys.append(entry["key"])
    keys.extend(entry.get("keys") or [])
    if not all(isinstance(key, str) and key for key in keys):
        raise ConfigError([(f"security.api_keys.{scheme_name}", "keys must be non-empty strings")])
    return [key.encode() for key in keys]


class ApiKeyProvider:
    """Accept a request that carries one of the configured keys where the scheme says."""

    __slots__ = ("_environ_key", "_keys", "_principal", "_read", "challenge", "scheme_name")

    def __init__(self, scheme: SecurityScheme, keys: list[bytes], challenge: str) -> None:
        self.scheme_name = scheme.name
        self.challenge = challenge
        self._keys = keys
        self._principal = Principal(scheme.name)
        name = scheme.parameter_name or ""
        if scheme.location == "header":
            self._environ_key = "HTTP_" + name.upper().replace("-", "_")
            self._read = self._from_header
        elif scheme.location == "query":
            self._environ_key = name
            self._read = self._from_query
        else:
            self._environ_key = name
            self._read = self._from_cookie

    def __repr__(self) -> str:
        # SECURITY: keys never appear in reprs or logs.
        return f"ApiKeyProvider({self.scheme_name!r}, keys=<{len(self._keys)} redacted>)"

    def _from_header(self, environ: dict[str, Any]) -> str | None:
        return environ.get(self._environ_key)

    def _from_query(self, environ: dict[str, Any]) -> str | None:
        values = parse_qs(environ.get("QUERY_STRING", "")).get(self._environ_key)
        return values[0] if values else None

    def _from_cookie(self, environ: dict[str, Any]) -> str | None:
        raw = environ.get("HTTP_COOKIE")
        if not raw:
            return None
        try:
            morsel = SimpleCookie(raw).get(self._environ_key)
        except CookieError:
            return None
        return morsel.value if morsel is not None else None

    def authenticate(self, environ: dict[str, Any]) -> Principal | None:
        presented = self._read(environ)
        if not presented:
            return None
        candidate = presented.encode("utf-8", "surrogateescape")
        found = False
        # SECURITY: compare against every key in constant time; no early exit on a hit.
        for key in self._keys:
            found |= hmac.compare_digest(candidate, key)
        return self._principal if found else None
