"""API keys in a header, a query parameter or a cookie, compared in constant time."""
from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from typing import Any

from brrt_actors.handler import Principal
from brrt_actors.security.credentials import (
    InvalidCredentials,
    header_environ_key,
    key_reader,
    redact,
)
from brrt_actors.spec.model import SecurityScheme

__all__ = ["ApiKeyProvider", "api_key_challenge"]


def api_key_challenge(scheme_name: str, name: str, location: str, error: str | None) -> str:
    """Return the WWW-Authenticate value of an apiKey scheme (an `ApiKey` challenge)."""
    challenge = f'ApiKey realm="{scheme_name}", name="{name}", in="{location}"'
    return challenge + (f', error="{error}"' if error else "")


class ApiKeyProvider:
    """Accept a request that carries one of the configured keys where the scheme says.

    Args:
        scheme: the spec's apiKey scheme (where the key travels).
        keys: the accepted keys.
        header_name: read the key from this header instead of the scheme's (BRRTRouter's
            ``header_name``; header schemes only).
    """

    __slots__ = ("_keys", "_location", "_name", "_principal", "_read", "scheme_name")

    def __init__(self, scheme: SecurityScheme, keys: Iterable[bytes | str], *,
                 header_name: str | None = None) -> None:
        self.scheme_name = scheme.name
        self._keys = tuple(key.encode() if isinstance(key, str) else key for key in keys)
        if not self._keys or not all(self._keys):
            raise ValueError(f"{scheme.name}: at least one non-empty key is needed")
        self._principal = Principal(scheme.name)
        self._location = scheme.location or "header"
        self._name = (header_name if header_name and self._location == "header"
                      else scheme.parameter_name or "")
        self._read = key_reader(self._location, self._name)

    def __repr__(self) -> str:
        # SECURITY: keys never appear in reprs or logs.
        return f"ApiKeyProvider({self.scheme_name!r}, keys=<{len(self._keys)} redacted>)"

    def challenge(self, error: str | None) -> str:
        """Return the WWW-Authenticate value for this scheme."""
        return api_key_challenge(self.scheme_name, self._name, self._location, error)

    def close(self) -> None:
        """Nothing to release."""

    def authenticate(self, environ: dict[str, Any]) -> Principal | None:
        """Return the scheme's principal for a known key, None without a key.

        Raises:
            InvalidCredentials: a key was sent but is not one of the configured keys.
        """
        presented = self._read(environ)
        if not presented:
            return None
        candidate = presented.encode("utf-8", "surrogateescape")
        found = False
        # SECURITY: compare against every key in constant time; no early exit on a hit.
        for key in self._keys:
            found |= hmac.compare_digest(candidate, key)
        if not found:
            raise InvalidCredentials("invalid_key", f"unknown API key {redact(presented)}")
        return self._principal

    def acceptor(self) -> Callable[[dict[str, Any]], Principal | None]:
        """Return a quick check: the principal for a known key, None for anything else.

        It neither raises nor logs: on None the caller asks `authenticate`, which tells a
        missing key from a wrong one (and the log says why).
        """
        principal = self._principal
        if self._location == "header" and len(self._keys) == 1:
            # PERF: one environ lookup and one compare, no key reader or key loop.
            environ_key = header_environ_key(self._name)
            (key,) = self._keys

            def accept_header_key(environ: dict[str, Any]) -> Principal | None:
                presented = environ.get(environ_key)
                # SECURITY: compared in constant time, as `authenticate` does.
                if presented and hmac.compare_digest(
                        presented.encode("utf-8", "surrogateescape"), key):
                    return principal
                return None

            return accept_header_key

        def accept(environ: dict[str, Any]) -> Principal | None:
            try:
                return self.authenticate(environ)
            except InvalidCredentials:
                return None

        return accept
