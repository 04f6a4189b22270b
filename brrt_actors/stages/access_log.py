"""The access log around the stages: one JSON line per request, off by default.

``BRRTR_ACCESS_LOG=1`` (``server.access_log``) turns it on; ``BRRTR_ACCESS_LOG_SAMPLE=0.1``
logs one request in ten (chosen at random). Each line goes to the ``brrt_actors.access``
logger at INFO (``brrt serve`` writes it to stderr as it is, one JSON object per line)::

    {"time": "2025-05-01T12:00:00.123Z", "request_id": "5f1c2a9e-0000002a",
     "method": "GET", "route": "/pets/{id}", "operation_id": "getPet", "status": 200,
     "duration_ms": 0.412, "mailbox_wait_ms": 0.031, "bytes": 57, "principal": "alice",
     "scheme": "BearerAuth", "client": "127.0.0.1", "trace_id": "4bf92f35..."}

``bytes`` is the body's size (null for a streamed body; for an error answer, the runtime's
problem document), ``mailbox_wait_ms`` null when the request never reached the actor,
``principal`` the authenticated subject (null for API keys and anonymous calls), ``scheme``
the security scheme that accepted the caller, ``trace_id`` null when tracing is off.
# SECURITY: no header is logged, so neither Authorization, cookies nor API keys ever are.

The line is built only when it is emitted: a request not sampled, or a logger not enabled
for INFO, costs two clock readings.
"""
from __future__ import annotations

import logging
import random
import time
from time import perf_counter
from typing import TYPE_CHECKING, Any

import ujson

from brrt_actors.errors import HTTPError
from brrt_actors.problem import printable_path, problem_body

if TYPE_CHECKING:
    from brrt_actors.context import BuildContext
    from brrt_actors.handler import Request
    from brrt_actors.spec.model import Operation
    from brrt_actors.stages import Around, Run
    from brrt_actors.stages.response import Encoded

__all__ = ["ACCESS_LOGGER", "build"]

ACCESS_LOGGER = "brrt_actors.access"
logger = logging.getLogger(ACCESS_LOGGER)


# PERF: the date and time to the second are formatted once a second, not once a line.
_second: list[Any] = [-1, ""]


def _timestamp(seconds: float) -> str:
    whole = int(seconds)
    if whole != _second[0]:
        _second[:] = [whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))]
    return f"{_second[1]}.{int(seconds * 1000) % 1000:03d}Z"


def _body_bytes(answer: Encoded) -> int | None:
    for name, value in answer[1]:
        if name == "Content-Length":
            return int(value)
    body = answer[2]
    return sum(map(len, body)) if isinstance(body, tuple | list) else None


def _line(request: Request, route: str, status: int, started: float, seconds: float,
          size: int | None) -> str:
    principal = request.principal
    wait = request.mailbox_wait
    trace = request.trace
    return ujson.dumps({
        "time": _timestamp(started),
        "request_id": request.request_id,
        "method": request.method,
        "route": route,
        "operation_id": request.operation.operation_id,
        "status": status,
        "duration_ms": round(seconds * 1000, 3),
        "mailbox_wait_ms": None if wait is None else round(wait * 1000, 3),
        "bytes": size,
        "principal": principal.subject if principal is not None else None,
        "scheme": principal.scheme if principal is not None else None,
        "client": request.environ.get("REMOTE_ADDR"),
        "trace_id": trace.trace_id if trace is not None else None,
    }, ensure_ascii=False, escape_forward_slashes=False)


def _error_bytes(request: Request, error: HTTPError) -> int:
    return len(problem_body(error, printable_path(request.path), request.request_id))


def build(operation: Operation, context: BuildContext) -> Around | None:
    """Return the operation's access log wrapper, or None when the access log is off."""
    settings = context.settings
    sample = settings.access_log_sample
    if not settings.access_log or sample <= 0:
        return None
    route = operation.path
    enabled = logger.isEnabledFor
    chance = random.random

    def around(run: Run) -> Run:
        def logged(request: Request) -> Encoded:
            start = perf_counter()
            answer: Encoded | None = None
            error: HTTPError | None = None
            try:
                answer = run(request)
                return answer
            except HTTPError as ex:
                error = ex
                raise
            finally:
                if (sample >= 1 or chance() < sample) and enabled(logging.INFO):
                    seconds = perf_counter() - start
                    if answer is not None:
                        status, size = answer[0], _body_bytes(answer)
                    elif error is not None:
                        status, size = error.status, _error_bytes(request, error)
                    else:  # any other exception: the app answers 500
                        status, size = 500, None
                    logger.info("%s", _line(request, route, status, time.time() - seconds,
                                            seconds, size))

        return logged

    return around
