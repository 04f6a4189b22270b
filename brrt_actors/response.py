"""What a handler may return besides a plain dict or list."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class Response:
    """An explicit response: status, body and headers.

    Args:
        status: the HTTP status code (200 by default).
        body: a JSON-serialisable value (sent as JSON), ``bytes``/``str`` (sent as is, with
            ``content_type`` or the operation's declared content type), an iterable of
            ``bytes`` (streamed, e.g. server-sent events), or None for no body.
        headers: extra response headers.
        content_type: the Content-Type; by default ``application/json`` for JSON values and
            the first non-JSON content type the spec declares for this status otherwise.
    """

    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(self, status: int = 200, body: Any = None,
                 headers: Mapping[str, str] | None = None,
                 content_type: str | None = None) -> None:
        self.status = status
        self.body = body
        self.headers: dict[str, str] = dict(headers) if headers else {}
        self.content_type = content_type

    def __repr__(self) -> str:
        return f"Response(status={self.status}, content_type={self.content_type!r})"


# PERF: the usual bodies are answered by one set lookup, not by the Iterable ABC check.
_VALUE_TYPES = frozenset({dict, list, tuple, str, bytes, bytearray, int, float, bool,
                          type(None)})


def is_stream(body: Any) -> bool:
    """Tell whether `body` is an iterable of chunks to stream rather than a value."""
    if type(body) in _VALUE_TYPES:
        return False
    return (isinstance(body, Iterable) and not isinstance(body, (bytes, bytearray, str, dict, list,
                                                                  tuple, Mapping)))
