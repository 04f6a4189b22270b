"""Bytes on the wire that the HTTP/1.1 engine builds once: status lines, the Date header,
environ keys of header names; and the engine's own problem+json answers.

Everything here is looked up per request and computed only on a cache miss. The engine's
answers are rendered by `brrt_actors.problem`, as the app's are; only their status line
and fixed headers are built once (ids and instances differ per answer).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from email.utils import formatdate
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from gevent import get_hub

from brrt_actors.errors import HTTPError, status_title
from brrt_actors.problem import (
    PROBLEM_CONTENT_TYPE,
    origin_path,
    printable_path,
    problem_body,
    request_id_from,
)

__all__ = [
    "CLOSED",
    "CONTINUE",
    "DATED",
    "DATE_ONLY",
    "KEPT",
    "KEPT_HTTP10",
    "LAST_CHUNK",
    "RETRY_AFTER",
    "UNDATED",
    "CorsHook",
    "cors_hook",
    "date_block",
    "date_line",
    "date_lines",
    "environ_key",
    "head_ends",
    "header_kind",
    "no_date",
    "path_info",
    "problem_response",
    "request_problem",
    "status_line",
]

#: The interim answer to ``Expect: 100-continue``.
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
#: The end of a chunked body (no trailers).
LAST_CHUNK = b"0\r\n\r\n"
#: The header of the engine's 503 answers (a stop killed the request): another process or
#: replica can take the request at once.
RETRY_AFTER = b"Retry-After: 1\r\n"
SERVER = b"brrt_actors"

# SECURITY: clients choose header names and apps choose status strings; the caches stop
# growing at these sizes (later misses are computed each time).
_KEY_CACHE_SIZE = 1024
_STATUS_CACHE_SIZE = 256

# --- status lines ---------------------------------------------------------------------

# PERF: "200 OK" (WSGI) or 200 (a brrt app's direct entry) -> (b"HTTP/1.1 200 OK\r\n", 200),
# built once per status.
_STATUS: dict[str | int, tuple[bytes, int]] = {}


def status_line(status: str | int) -> tuple[bytes, int]:
    """Return the response's status line bytes and its code, for a WSGI status string or a
    status code (the reason phrase is then RFC 9110's, or "Unknown").

    Raises:
        ValueError: the status is not ``"NNN reason"`` (or a code of three digits), or holds
            a line break.
    """
    cached = _STATUS.get(status)
    if cached is not None:
        return cached
    if isinstance(status, int):
        if type(status) is not int or not 100 <= status <= 999:  # NOTE: bool is an int
            raise ValueError(f"invalid status {status!r}: expected a code of three digits")
        line = (b"HTTP/1.1 %d %s\r\n" % (status, status_title(status).encode("latin-1")),
                status)
    else:
        code = status[:3]
        # SECURITY: a status holding CR/LF would let the app (or its input) split the response.
        if (len(code) != 3 or not code.isdigit() or status[3:4] not in ("", " ")
                or "\r" in status or "\n" in status):
            raise ValueError(f"invalid WSGI status {status!r}: expected '200 OK' and alike")
        line = (b"HTTP/1.1 " + status.encode("latin-1") + b"\r\n", int(code))
    if len(_STATUS) < _STATUS_CACHE_SIZE:
        _STATUS[status] = line
    return line


# --- the Date header --------------------------------------------------------------------

#: The header lines an answer ends with, by what the app gave itself (`date_lines`).
DATED, DATE_ONLY, UNDATED = 0, 1, 2
#: What the ``Connection`` line of an answer says (`head_ends`): nothing (HTTP/1.1 keeps
#: the connection by default), ``keep-alive`` (HTTP/1.0), ``close``.
KEPT, KEPT_HTTP10, CLOSED = 0, 3, 6
_CONNECTION_LINES = (b"", b"Connection: keep-alive\r\n", b"Connection: close\r\n")
# The lines of this second, indexed by DATED, DATE_ONLY, UNDATED; None once it is over.
_dates: tuple[bytes, bytes, bytes] | None = None
# The ends of the heads of this second (`head_ends`); None once it is over.
_ends: tuple[bytes, ...] | None = None
_expiry: Any = None  # the hub's timer that ends `_dates` at the next second


def date_lines() -> tuple[bytes, bytes, bytes]:
    """Return the ``Server`` and ``Date`` lines, the ``Date`` line alone, and nothing.

    Rebuilt at most once a second, as the first answer of a second asks.
    """
    # PERF: no clock read per answer: a timer of the hub ends the lines at the next second
    # (`time.time` + int ~0.2 us per answer; formatdate ~3 us per rebuild).
    return _dates or _refresh_dates()


def head_ends() -> tuple[bytes, ...]:
    """Return the last lines of an answer's head, indexed by ``KEPT | KEPT_HTTP10 | CLOSED``
    plus ``DATED | DATE_ONLY | UNDATED``: its ``Connection`` line, `date_lines`, the blank
    line.

    Rebuilt with `date_lines`, at most once a second.
    """
    # PERF: one piece instead of three in the answer's final join.
    return _ends or _refresh_ends()


def _refresh_ends() -> tuple[bytes, ...]:
    _refresh_dates()
    assert _ends is not None
    return _ends


def _refresh_dates() -> tuple[bytes, bytes, bytes]:
    global _dates, _ends, _expiry
    now = time.time()
    second = int(now)
    date = b"Date: " + formatdate(second, usegmt=True).encode("ascii") + b"\r\n"
    _dates = dates = (b"Server: " + SERVER + b"\r\n" + date, date, b"")
    _ends = tuple(connection + dated + b"\r\n"
                  for connection in _CONNECTION_LINES for dated in dates)
    if _expiry is None:
        # NOTE: ref=False: the timer never keeps the hub's loop alive by itself.
        _expiry = get_hub().loop.timer(second + 1 - now, ref=False)
        _expiry.start(_end_dates)
    return dates


def _end_dates() -> None:
    global _dates, _ends, _expiry
    _dates = _ends = None
    if _expiry is not None:
        _expiry.close()
        _expiry = None


def date_block() -> bytes:
    """Return ``Server`` and ``Date`` header lines, rebuilt at most once a second."""
    return date_lines()[DATED]


def date_line() -> bytes:
    """Return the ``Date`` header line alone (for an app that sets its own ``Server``)."""
    return date_lines()[DATE_ONLY]


def no_date() -> bytes:
    """Return nothing: the app gave its own ``Date``."""
    return b""


# --- response header names -> what the engine makes of them ----------------------------

LENGTH, DATE, SERVER_HEADER, CONNECTION, HOP = 1, 2, 3, 4, 5
_WATCHED = {"content-length": LENGTH, "date": DATE, "server": SERVER_HEADER,
            "connection": CONNECTION, "transfer-encoding": HOP, "keep-alive": HOP}
_KINDS: dict[str, int] = {}


def header_kind(name: str) -> int:
    """Return what a response header name is to the engine: 0 (nothing special) or a kind."""
    kind = _WATCHED.get(name.lower(), 0)
    if len(_KINDS) < _KEY_CACHE_SIZE:  # SECURITY: apps may echo client-chosen names
        _KINDS[name] = kind
    return kind


# --- request header names -> environ keys ---------------------------------------------

_SKIP = ""
_KEYS: dict[bytes, str] = {
    b"Content-Length": "CONTENT_LENGTH",
    b"Content-Type": "CONTENT_TYPE",
    b"content-length": "CONTENT_LENGTH",
    b"content-type": "CONTENT_TYPE",
}


def environ_key(name: bytes) -> str:
    """Return the environ key of a request header name; ``""`` for a name to drop."""
    key = _KEYS.get(name)
    if key is not None:
        return key
    # SECURITY: "X_Forwarded_For" would land on the same key as "X-Forwarded-For" and could
    # shadow the value a proxy set; such names are dropped (as gevent.pywsgi, nginx do).
    if b"_" in name:
        key = _SKIP
    else:
        upper = name.decode("latin-1").upper().replace("-", "_")
        key = upper if upper in ("CONTENT_LENGTH", "CONTENT_TYPE") else "HTTP_" + upper
    if len(_KEYS) < _KEY_CACHE_SIZE:
        _KEYS[name] = key
    return key


def path_info(path: str) -> str:
    """Percent-decode a request path the WSGI way: bytes taken as latin-1."""
    return unquote(path, encoding="latin-1") if "%" in path else path


# --- the engine's own answers -----------------------------------------------------------

# PERF: the status line and the fixed headers of each engine answer, built once per status
# (the statuses are the engine's own: bounded).
_PROBLEM_HEADS: dict[int, bytes] = {}


def _problem_head(status: int) -> bytes:
    head = _PROBLEM_HEADS.get(status)
    if head is None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Error"
        head = _PROBLEM_HEADS[status] = (
            b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nConnection: close\r\n"
            % (status, reason.encode("latin-1"), PROBLEM_CONTENT_TYPE.encode("ascii")))
    return head


def problem_response(status: int, detail: str, *, instance: str | None = None,
                     request_id: str | None = None, headers: bytes = b"") -> bytes:
    """Return a whole ``Connection: close`` problem+json answer (RFC 9457).

    Rendered by `brrt_actors.problem`, as the app's own answers are, with the
    ``X-Request-ID`` header.

    Args:
        status: the status code.
        detail: what went wrong, in the engine's own words (never the client's bytes).
        instance: the request's path, when the request target was parsed.
        request_id: the request's id as known so far (the client's or the app's); echoed
            when sane (`request_id_from`), else (or when None) a new one is made.
        headers: more header lines, each ending with CRLF (e.g. `RETRY_AFTER`).
    """
    # SECURITY: the id goes into a header: only a sane or a generated one (ASCII letters,
    # digits and ._:-) gets there, so encoding it cannot fail nor split the answer.
    request_id = request_id_from(request_id)
    body = problem_body(HTTPError(status, detail), instance, request_id)
    return b"".join((_problem_head(status), headers, b"X-Request-ID: ",
                     request_id.encode("ascii"), b"\r\nContent-Length: %d\r\n" % len(body),
                     date_block(), b"\r\n", body))


#: The app's CORS header lines for an ``Origin`` (`brrt_actors.app.App.cors_headers`).
CorsHook = Callable[[str], bytes]


def cors_hook(application: object) -> CorsHook | None:
    """Return the app's CORS hook (a brrt app's ``cors_headers``), or None for another app."""
    hook: CorsHook | None = getattr(application, "cors_headers", None)
    return hook


def request_problem(status: int, detail: str, environ: Mapping[str, Any],
                    request_id: str | None = None, headers: bytes = b"",
                    cors: CorsHook | None = None) -> bytes:
    """Return `problem_response` for a request whose head was parsed into `environ`.

    The ``instance`` is the path of its target; the id is `request_id` when given (the one
    the app already chose), else the client's sane ``X-Request-ID``, else a new one. With
    `cors` (`cors_hook`), a request that carried an ``Origin`` gets the app's CORS headers,
    so that a browser's script can read why it was refused.
    """
    if cors is not None:
        origin = environ.get("HTTP_ORIGIN")
        if origin is not None:
            headers += cors(origin)
    target = environ.get("RAW_URI")
    return problem_response(
        status, detail,
        instance=None if target is None else printable_path(
            origin_path(target.partition("?")[0])),
        request_id=request_id if request_id is not None else environ.get("HTTP_X_REQUEST_ID"),
        headers=headers)
