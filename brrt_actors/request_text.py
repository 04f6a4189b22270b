"""Splitting and decoding the raw text of a request.

Query strings, Cookie headers, percent-encoding, and WSGI's latin-1 text. The parameter stage
and the security checks (an API key in the query or a cookie) both read through these, so
they agree on names and values.
"""
from __future__ import annotations

from urllib.parse import unquote, unquote_plus

from brrt_actors.coercion import InvalidValue

__all__ = ["decode_cookie_value", "decode_path_value", "decode_query_value", "parse_cookies",
           "parse_query", "unquote_path", "unquote_query"]


def _wsgi_text(raw: str) -> str:
    # NOTE: PEP 3333 hands URL parts over as latin-1-decoded bytes; undo that for raw UTF-8.
    try:
        return raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return raw


def unquote_query(raw: str) -> str:
    """Decode one name or value of a query string (``+`` is a space; WSGI text fixed)."""
    if not raw.isascii():
        raw = _wsgi_text(raw)
    return unquote_plus(raw) if ("%" in raw or "+" in raw) else raw


def unquote_path(raw: str) -> str:
    """Decode one path segment (``+`` stays a plus; WSGI text fixed)."""
    if not raw.isascii():
        raw = _wsgi_text(raw)
    return unquote(raw)


def _strict(raw: str, plus: bool) -> str:
    try:
        if not raw.isascii():
            try:
                # NOTE: PEP 3333 hands URL parts over as latin-1-decoded bytes: the raw bytes.
                undone = raw.encode("latin-1")
            except UnicodeEncodeError:
                pass  # text already (an in-process caller's)
            else:
                raw = undone.decode("utf-8")
        if "%" not in raw and not (plus and "+" in raw):
            return raw
        return (unquote_plus if plus else unquote)(raw, errors="strict")
    except UnicodeDecodeError:
        # SECURITY: never a U+FFFD stand-in the client did not send (issue 9).
        raise InvalidValue(f"{raw!r} is not UTF-8 text once percent-decoded") from None


def decode_query_value(raw: str) -> str:
    """Decode one query value, as `unquote_query`; `InvalidValue` when it is not UTF-8."""
    return _strict(raw, plus=True)


def decode_path_value(raw: str) -> str:
    """Decode one path segment, as `unquote_path`; `InvalidValue` when it is not UTF-8."""
    return _strict(raw, plus=False)


def decode_cookie_value(raw: str) -> str:
    """Percent-decode one cookie value; `InvalidValue` when it is not UTF-8."""
    return _strict(raw, plus=False)


def parse_query(query_string: str) -> dict[str, list[str]]:
    """Split a query string into {decoded name: [raw, still percent-encoded values]}.

    Blank values are kept (``a=&b`` gives ``{"a": [""], "b": [""]}``).
    """
    out: dict[str, list[str]] = {}
    if not query_string:
        return out
    for pair in query_string.split("&"):
        if not pair:
            continue
        key, _, value = pair.partition("=")
        if "%" in key or "+" in key or not key.isascii():
            key = unquote_query(key)
        values = out.get(key)
        if values is None:
            out[key] = [value]
        else:
            values.append(value)
    return out


def parse_cookies(header: str) -> dict[str, list[str]]:
    """Split a Cookie header into {name: [raw values in order]} (surrounding quotes removed)."""
    out: dict[str, list[str]] = {}
    for chunk in header.split(";"):
        name, sep, value = chunk.partition("=")
        name = name.strip()
        if not sep or not name:
            continue
        value = value.strip()
        if len(value) > 1 and value[0] == value[-1] == '"':
            value = value[1:-1]
        values = out.get(name)
        if values is None:
            out[name] = [value]
        else:
            values.append(value)
    return out
