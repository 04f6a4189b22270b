"""Reading credentials out of a WSGI environ, keeping them out of logs; the error for bad ones."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from brrt_actors.request_text import parse_cookies, parse_query, unquote_query

__all__ = ["InvalidCredentials", "header_environ_key", "key_reader", "redact"]

KeyReader = Callable[[dict[str, Any]], "str | None"]


def redact(credential: str | bytes | None) -> str:
    """Return `credential` cut to its first 6 characters and an ellipsis, for logs."""
    if not credential:
        return "<empty>"
    text = credential.decode("utf-8", "replace") if isinstance(credential, bytes) else credential
    # SECURITY: never more than a prefix, and nothing unprintable from the client.
    prefix = "".join(ch if ch.isprintable() else "?" for ch in text[:6])
    return prefix + "…"


def header_environ_key(name: str) -> str:
    """Return the WSGI environ key of the request header `name` (``HTTP_X_API_KEY``)."""
    return "HTTP_" + name.upper().replace("-", "_")


def key_reader(location: str, name: str) -> KeyReader:
    """Return a function that reads the value named `name` at `location` of a request.

    Args:
        location: ``header``, ``query`` or ``cookie`` (an apiKey scheme's ``in``).
        name: the header, query parameter or cookie name.
    """
    if location == "header":
        environ_key = header_environ_key(name)

        def from_header(environ: dict[str, Any]) -> str | None:
            value: str | None = environ.get(environ_key)
            return value

        return from_header
    if location == "query":

        def from_query(environ: dict[str, Any]) -> str | None:
            query = environ.get("QUERY_STRING")
            if not query:
                return None
            # NOTE: the parameter stage's query splitter; only the key's value is decoded.
            values = parse_query(query).get(name)
            return unquote_query(values[0]) if values else None

        return from_query

    def from_cookie(environ: dict[str, Any]) -> str | None:
        raw = environ.get("HTTP_COOKIE")
        if not raw:
            return None
        # NOTE: the parameter stage's lenient splitter (as browsers and starlette read
        # cookies), not http.cookies: one malformed cookie beside the key must not hide it,
        # and the handler's `request.cookies` sees the same value the check saw.
        values = parse_cookies(raw).get(name)
        return values[0] if values else None

    return from_cookie

class InvalidCredentials(Exception):
    """Credentials for the provider's own scheme were presented but are invalid.

    Args:
        category: a short, client-safe word ("invalid_token", "expired", ...).
        detail: what went wrong, for the log only; never holds the credential in clear.
    """

    def __init__(self, category: str, detail: str = "") -> None:
        super().__init__(category, detail)
        self.category = category
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.category}: {self.detail}" if self.detail else self.category
