"""Handlers of tests/specs/observability.yaml (rate limit, access log and tracing tests).

Also served by real `brrt serve` processes (``--handlers tests/observability_handlers.py``).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from brrt_actors import HTTPError, Request

#: The spec these handlers serve, and this file (for ``brrt serve --handlers``).
SPEC = Path(__file__).resolve().parent / "specs" / "observability.yaml"
HANDLERS_FILE = Path(__file__).resolve()


def limited(request: Request) -> dict[str, Any]:
    return {}


def keyed(request: Request) -> dict[str, Any]:
    return {}


def free(request: Request) -> dict[str, Any]:
    return {}


def getItem(request: Request) -> dict[str, Any]:
    """Answer what the handler saw of the trace context and its mailbox wait; 0: 404."""
    if request.path_params["id"] == 0:
        raise HTTPError(404, "no item 0")
    trace = request.trace
    return {
        "traceparent": trace.traceparent if trace is not None else None,
        "trace_id": trace.trace_id if trace is not None else None,
        "parent_id": trace.parent_id if trace is not None else None,
        "tracestate": trace.tracestate if trace is not None else None,
        "mailbox_wait": request.mailbox_wait,
    }


def handlers() -> dict[str, Callable[[Request], Any]]:
    """The handlers by operationId."""
    return {"limited": limited, "keyed": keyed, "free": free, "getItem": getItem}
