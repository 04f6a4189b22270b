"""OpenTelemetry spans for the tracing stage: one server span per request, one for the handler.

Imported only when OpenTelemetry export is configured (`brrt_actors.stages.tracing`); an
ImportError here means the ``otel`` extra is not installed. The app owns its
`TracerProvider` (a batch processor and the OTLP/HTTP exporter): `OtelTracing.close`, called
when the app stops, flushes and shuts it down. When no global tracer provider is set yet, the
app's becomes it, so that handlers' own spans (``trace.get_tracer(...)``) join the trace.

The exporter's endpoint comes from ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (as is) or
``OTEL_EXPORTER_OTLP_ENDPOINT`` (plus ``/v1/traces``), as found by `load_settings`; the SDK
reads its other ``OTEL_*`` variables (service name, headers, batch sizes) from the process
environment itself.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from brrt_actors.errors import ConfigError, HTTPError
from brrt_actors.stages.tracing import TraceContext, clean_tracestate, parse_traceparent

if TYPE_CHECKING:
    from brrt_actors.actors import Handler
    from brrt_actors.handler import Request
    from brrt_actors.spec.model import Operation
    from brrt_actors.stages import Run
    from brrt_actors.stages.response import Encoded

__all__ = ["MAILBOX_WAIT_ATTRIBUTE", "OtelTracing"]

#: The handler span's attribute holding the request's wait in the actor's mailbox.
MAILBOX_WAIT_ATTRIBUTE: Final = "brrt.mailbox_wait_ms"
_EXPORTERS: Final = ("otlp", "otlp_proto_http")


def _endpoint(otel: Mapping[str, str]) -> str | None:
    exporter = otel.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if exporter not in _EXPORTERS:
        raise ConfigError([("OTEL_TRACES_EXPORTER", f"{exporter!r} is not supported; use otlp "
                                                    "(OTLP/HTTP) or none")])
    traces = otel.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if traces:
        return traces.strip()
    base = otel.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return base.strip().rstrip("/") + "/v1/traces" if base else None  # None: the SDK default


def _parent(environ: dict[str, Any]) -> tuple[Any, str | None, str | None]:
    """The caller's span as an OpenTelemetry context, its span id, its tracestate."""
    parsed = parse_traceparent(environ.get("HTTP_TRACEPARENT"))
    if parsed is None:
        return None, None, None
    trace_id, parent_id, sampled = parsed
    raw_state = clean_tracestate(environ.get("HTTP_TRACESTATE"))
    state = TraceState.from_header([raw_state]) if raw_state else None
    remote = SpanContext(int(trace_id, 16), int(parent_id, 16), is_remote=True,
                         trace_flags=TraceFlags(1 if sampled else 0), trace_state=state)
    return trace.set_span_in_context(NonRecordingSpan(remote)), parent_id, raw_state


class OtelTracing:
    """One app's OpenTelemetry: its tracer provider, the server and handler spans."""

    def __init__(self, otel: Mapping[str, str]) -> None:
        resource = Resource.create({} if "OTEL_SERVICE_NAME" in otel
                                   else {"service.name": "brrt_actors"})
        self.provider = TracerProvider(resource=resource)
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
            endpoint=_endpoint(otel))))
        self.tracer = self.provider.get_tracer("brrt_actors")
        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            trace.set_tracer_provider(self.provider)

    def close(self) -> None:
        """Export what is left and stop the exporter."""
        self.provider.shutdown()

    def around(self, operation: Operation) -> Callable[[Run], Run]:
        """Return the wrapper giving each request of `operation` a server span."""
        tracer = self.tracer
        name = f"{operation.method} {operation.path}"
        static = {"http.request.method": operation.method, "http.route": operation.path}

        def wrap(run: Run) -> Run:
            def traced(request: Request) -> Encoded:
                parent, parent_id, state = _parent(request.environ)
                span = tracer.start_span(name, parent, SpanKind.SERVER,
                                         {**static, "url.path": request.path})
                ids = span.get_span_context()
                trace_context = request.trace = TraceContext(
                    f"{ids.trace_id:032x}", f"{ids.span_id:016x}", parent_id,
                    ids.trace_flags.sampled, state, trace.set_span_in_context(span))
                status = 500
                try:
                    answer = run(request)
                    status = answer[0]
                except HTTPError as ex:
                    status = ex.status
                    ex.headers = {**ex.headers, "traceparent": trace_context.traceparent}
                    raise
                except Exception as ex:
                    span.record_exception(ex)
                    raise
                finally:
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(StatusCode.ERROR)
                    span.end()
                answer[1].append(("traceparent", trace_context.traceparent))
                return answer

            return traced

        return wrap

    def handler_span(self, operation_id: str, handler: Handler) -> Handler:
        """Return `handler` run in a child span of the request's, with its mailbox wait."""
        tracer = self.tracer
        name = f"handler {operation_id}"

        def traced_handler(request: Request) -> Any:
            trace_context = request.trace
            wait = request.mailbox_wait
            with tracer.start_as_current_span(
                    name, trace_context.otel_context if trace_context is not None else None,
                    attributes={MAILBOX_WAIT_ATTRIBUTE: (wait or 0.0) * 1000,
                                "brrt.operation_id": operation_id},
                    record_exception=False, set_status_on_exception=False) as span:
                try:
                    return handler(request)
                except HTTPError:
                    raise  # an answer the handler chose, not a failure of the span
                except BaseException as ex:  # NOTE: its deadline's HandlerTimeout too
                    span.record_exception(ex)
                    span.set_status(StatusCode.ERROR, type(ex).__name__)
                    raise

        return traced_handler
