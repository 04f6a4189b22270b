"""Tracing around the stages: W3C trace context in and out, and OpenTelemetry spans when asked.

On when ``BRRTR_TRACING=1`` (``server.tracing``), or when OpenTelemetry export is configured
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
``OTEL_TRACES_EXPORTER``). Then, for every request of every operation:

- the ``traceparent`` and ``tracestate`` headers (W3C Trace Context) are read; a missing or
  malformed ``traceparent`` starts a fresh trace (a new random trace id);
- the handler finds the context in ``request.trace`` (`TraceContext`: ``trace_id``, this
  request's ``span_id``, ``traceparent`` to send on to the services it calls);
- the answer carries ``traceparent`` naming this request's span (a child of the caller's).

With OpenTelemetry (the ``otel`` extra installed) the request's span is a real server span,
exported with the OTLP/HTTP exporter (`brrt_actors.stages.tracing_otel`), and the handler
runs in a child span of its own holding its mailbox wait. Without the extra, or without the
variables, OpenTelemetry is never imported.
"""
from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING, Any, Final

from brrt_actors.errors import HTTPError

if TYPE_CHECKING:
    from brrt_actors.context import BuildContext
    from brrt_actors.handler import Request
    from brrt_actors.spec.model import Operation
    from brrt_actors.stages import Around, Run
    from brrt_actors.stages.response import Encoded
    from brrt_actors.stages.tracing_otel import OtelTracing

__all__ = ["TraceContext", "build", "clean_tracestate", "instrument_handlers", "new_span_id",
           "new_trace_id", "parse_traceparent", "read_trace"]

logger = logging.getLogger("brrt_actors.tracing")

#: A ``tracestate`` longer than this is cut at a list member (W3C: at least 512 kept).
MAX_TRACESTATE_CHARS: Final = 512
_HEX: Final = frozenset("0123456789abcdef")
_ZERO_TRACE: Final = "0" * 32
_ZERO_SPAN: Final = "0" * 16


class TraceContext:
    """The W3C trace context of one request.

    Attributes:
        trace_id: 32 lower-case hex digits, the caller's or a fresh one.
        span_id: 16 hex digits naming this request's span (the answer's ``traceparent``).
        parent_id: the caller's span id, or None when the trace started here.
        sampled: the sampled flag (the caller's, or OpenTelemetry's decision).
        tracestate: the caller's ``tracestate``, or None.
        otel_context: the OpenTelemetry context holding this request's span (None without
            OpenTelemetry).
    """

    __slots__ = ("otel_context", "parent_id", "sampled", "span_id", "trace_id", "tracestate")

    def __init__(self, trace_id: str, span_id: str, parent_id: str | None = None,
                 sampled: bool = True, tracestate: str | None = None,
                 otel_context: Any = None) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_id = parent_id
        self.sampled = sampled
        self.tracestate = tracestate
        self.otel_context = otel_context

    @property
    def traceparent(self) -> str:
        """The ``traceparent`` value naming this request's span (send it on to callees)."""
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"

    def __repr__(self) -> str:
        return f"TraceContext({self.traceparent!r}, parent_id={self.parent_id!r})"


def _is_hex(text: str) -> bool:
    return _HEX.issuperset(text)


def parse_traceparent(value: str | None) -> tuple[str, str, bool] | None:
    """Return (trace id, parent span id, sampled) of a ``traceparent`` value, or None.

    None for anything the W3C Trace Context rules refuse: a wrong length, upper-case or
    non-hex digits, the version ``ff``, an all-zero trace or span id, several values.
    """
    if value is None or len(value) < 55:
        return None
    version = value[:2]
    if version == "00" and len(value) != 55:
        return None
    if len(value) > 55 and value[55] != "-":  # a later version may add fields after a "-"
        return None
    if value[2] != "-" or value[35] != "-" or value[52] != "-":
        return None
    trace_id, parent_id, flags = value[3:35], value[36:52], value[53:55]
    if (version == "ff" or not _is_hex(version + trace_id + parent_id + flags)
            or trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN):
        return None
    return trace_id, parent_id, bool(int(flags, 16) & 1)


def clean_tracestate(value: str | None) -> str | None:
    """Return a ``tracestate`` fit to keep (printable ASCII, at most 512 chars), or None."""
    if not value:
        return None
    if not value.isascii() or not value.isprintable():
        return None  # SECURITY: never echoed, but kept clean for the handler and the log
    if len(value) > MAX_TRACESTATE_CHARS:
        cut = value.rfind(",", 0, MAX_TRACESTATE_CHARS + 1)
        return value[:cut] if cut > 0 else None
    return value


def new_trace_id() -> str:
    """Return a fresh random trace id (never all zeros)."""
    return f"{random.getrandbits(128) or 1:032x}"


def new_span_id() -> str:
    """Return a fresh random span id (never all zeros)."""
    return f"{random.getrandbits(64) or 1:016x}"


def read_trace(environ: dict[str, Any]) -> TraceContext:
    """Return the trace context of a request: the caller's, continued, or a fresh one."""
    parsed = parse_traceparent(environ.get("HTTP_TRACEPARENT"))
    if parsed is None:
        return TraceContext(new_trace_id(), new_span_id())
    trace_id, parent_id, sampled = parsed
    return TraceContext(trace_id, new_span_id(), parent_id, sampled,
                        clean_tracestate(environ.get("HTTP_TRACESTATE")))


def _w3c(run: Run) -> Run:
    # PERF: without OpenTelemetry, one header parsed and one written: benchmarks/features.py.
    def traced(request: Request) -> Encoded:
        trace = request.trace = read_trace(request.environ)
        try:
            answer = run(request)
        except HTTPError as ex:
            ex.headers = {**ex.headers, "traceparent": trace.traceparent}
            raise
        answer[1].append(("traceparent", trace.traceparent))
        return answer

    return traced


def _otel(context: BuildContext) -> OtelTracing | None:
    """The app's OpenTelemetry tracing, built once; None when not asked for or not installed."""
    otel = context.settings.otel
    if not otel or otel.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return None

    def make() -> OtelTracing | None:
        try:
            from brrt_actors.stages.tracing_otel import OtelTracing
        except ImportError as ex:
            logger.warning("%s is set but OpenTelemetry is not installed (%s): install "
                           "brrt_actors[otel]; W3C trace context only", ", ".join(otel), ex)
            return None
        tracing = OtelTracing(otel)
        context.on_stop.append(tracing.close)
        return tracing

    return context.memo("tracing.otel", make)


def build(operation: Operation, context: BuildContext) -> Around | None:
    """Return the operation's tracing wrapper, or None when tracing is off."""
    otel = _otel(context)
    if otel is not None:
        return otel.around(operation)
    if not context.settings.tracing:
        return None
    return _w3c


def instrument_handlers(context: BuildContext) -> None:
    """Run each handler in a span of its own when OpenTelemetry is on (before the actors)."""
    otel = _otel(context)
    if otel is not None:
        context.handlers = {operation_id: otel.handler_span(operation_id, handler)
                            for operation_id, handler in context.handlers.items()}
