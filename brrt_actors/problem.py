"""The one problem renderer: every answer the runtime gives on its own, as RFC 9457 JSON.

The app (`App._problem`: 400 ... 504 raised as `HTTPError`) and the HTTP engines
(`brrt_actors.engine.wire.problem_response`: the 400, 408, 413, 414, 431, 500, 503 and 505
written before, around or instead of the app) both render here, so every such answer has
the same shape::

    {"type", "title", "status", "detail", "instance", "request_id", "errors"}

``instance`` is the request's path, present when the request target was parsed; ``errors``
is present when there are any. The same ``request_id`` goes out as the ``X-Request-ID``
header.

The request id rules live here too: a client's ``X-Request-ID`` is echoed only when it is
short and plain; otherwise the runtime makes one, ``<8 hex digits of this process>-<counter>``.
The body limit's wording lives here as well (`body_too_large`): the engine refuses a body
over the limit before the app is called, and the body stage does under any other server.

An operation that declares its own schema for an error status gets its problems shaped to it
(`brrt_actors.problem_shapes`); `problem_answer` renders with that shape. A problem always
renders: text that JSON or UTF-8 cannot carry (a handler's detail holding a lone surrogate,
say) goes out escaped (``\\ud800``), never as a failure of the error answer itself.
"""
from __future__ import annotations

import itertools
import math
import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from brrt_actors.errors import HTTPError
from brrt_actors.json_writer import write_json

if TYPE_CHECKING:
    from brrt_actors.problem_shapes import ProblemShape

__all__ = [
    "MAX_INSTANCE_CHARS",
    "PROBLEM_CONTENT_TYPE",
    "ProblemAnswer",
    "body_too_large",
    "new_request_id",
    "origin_path",
    "printable_path",
    "problem_answer",
    "problem_body",
    "problem_document",
    "request_id_from",
]

PROBLEM_CONTENT_TYPE = "application/problem+json"
#: At most this many characters of the request path are echoed as ``instance``.
MAX_INSTANCE_CHARS = 200

# SECURITY: a client's X-Request-ID is echoed (in a header, in logs) only when it is short
# and plain: no CR/LF to split a response, no markup, nothing a log reader could mistake.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}\Z").match


# --- request ids ---------------------------------------------------------------------------

def _new_prefix() -> None:
    global _prefix, _ids
    _prefix = os.urandom(4).hex()
    # PERF: the ids are made in C (`%` mapped over the counter), with no Python frame:
    # request_id_from(None) 0.29 -> 0.22 µs (CPU-time minimum, taskset -c 1).
    _ids = map(f"{_prefix}-%08x".__mod__, itertools.count(1))


_prefix = ""
_ids: Iterator[str] = iter(())
_new_prefix()
# NOTE: the module is imported before gunicorn forks its workers; each child draws its own
# prefix, or every worker would hand out the same ids.
os.register_at_fork(after_in_child=_new_prefix)


def new_request_id() -> str:
    """Return a new request id, unique within this process: ``"5f1c2a9e-0000002a"``."""
    return next(_ids)


def request_id_from(header_value: str | None) -> str:
    """Return the id of a request whose ``X-Request-ID`` header is `header_value`.

    The client's value when it is 1 to 128 characters of ``A-Z a-z 0-9 . _ : -``; a new
    id otherwise (also when the header is absent, given twice, or holds anything else).
    """
    if header_value is not None and _SANE_REQUEST_ID(header_value):
        return header_value
    return next(_ids)


# --- the document ----------------------------------------------------------------------------

def origin_path(target: str) -> str:
    """Return the path of a request target; an absolute-form one ("http://host/p") gives "/p"."""
    # NOTE: RFC 9112 3.2.2: a server must accept the absolute-form "http://host/path".
    _, sep, rest = target.partition("://")
    if not sep:
        return target  # "*" or garbage: nothing routes there
    slash = rest.find("/")
    return rest[slash:] if slash >= 0 else "/"


def printable_path(path: str) -> str:
    """Return `path` fit to echo in a problem: printable characters, at most 200 of them.

    A longer path is cut and ends with ``...``.
    """
    # SECURITY: never echo control characters or huge paths into a body.
    clean = "".join(ch for ch in path[:MAX_INSTANCE_CHARS] if ch.isprintable())
    return clean + ("..." if len(path) > MAX_INSTANCE_CHARS else "")


def problem_document(error: HTTPError, instance: str | None,
                     request_id: str) -> dict[str, Any]:
    """Return the RFC 9457 document for `error` (the only place that shapes it).

    Args:
        error: the answer's status, title, detail, type and itemised errors.
        instance: the request's path, already made printable; None when the request
            target was never parsed (the key is then left out).
        request_id: the request's id (the ``X-Request-ID`` of the answer).
    """
    doc: dict[str, Any] = {
        "type": error.type,
        "title": error.title,
        "status": error.status,
        "detail": error.detail if error.detail is not None else error.title,
    }
    if instance is not None:
        doc["instance"] = instance
    doc["request_id"] = request_id
    if error.errors:
        doc["errors"] = error.errors
    return doc


def problem_body(error: HTTPError, instance: str | None, request_id: str,
                 shape: ProblemShape | None = None) -> bytes:
    """Return the ``application/problem+json`` body bytes for `error` (see `problem_document`).

    Args:
        shape: the operation's declared form of the document, if it declares one.
    """
    document = problem_document(error, instance, request_id)
    if shape is not None:
        document = shape.apply(document)
    try:
        return _dumps(document)
    except (ValueError, OverflowError, TypeError):  # UnicodeEncodeError is a ValueError
        # SECURITY: the error answer must not fail in turn (a second 500 hiding the first).
        return _dumps(_encodable(document, 0))


def _dumps(document: dict[str, Any]) -> bytes:
    return write_json(document).encode()


def _encodable(value: Any, depth: int) -> Any:
    """`value` with what JSON/UTF-8 cannot carry written as text (lone surrogates escaped)."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth >= _MAX_DEPTH:
        return "..."
    if isinstance(value, dict):
        return {_encodable(str(key), depth): _encodable(item, depth + 1)
                for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_encodable(item, depth + 1) for item in value]
    return _encodable(str(value), depth)


_MAX_DEPTH = 32

#: A rendered problem: (status, headers, body chunks), as the app answers it.
ProblemAnswer = tuple[int, list[tuple[str, str]], tuple[bytes]]


def problem_answer(error: HTTPError, path: str, request_id: str,
                   shape: ProblemShape | None = None) -> ProblemAnswer:
    """Return the whole answer for `error` raised while serving `path`.

    Args:
        error: the answer's status, detail, headers ...
        path: the request's path (echoed as ``instance``, made printable here).
        request_id: the request's id.
        shape: the operation's declared form of the document.
    """
    body = problem_body(error, printable_path(path), request_id, shape)
    headers = list(error.headers.items())
    headers.append(("Content-Type", PROBLEM_CONTENT_TYPE))
    headers.append(("Content-Length", str(len(body))))
    return error.status, headers, (body,)


# --- the body limit ------------------------------------------------------------------------

def body_too_large(limit: int) -> str:
    """Return the detail of the 413 for a request body over `limit` bytes.

    The engine and the body stage both refuse with these words, so the answer reads the
    same whichever refused first.
    """
    return f"the request body is larger than {limit} bytes"
