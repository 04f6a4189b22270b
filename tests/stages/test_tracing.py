"""Tracing, through real sockets: W3C trace context in, out and to the handler, and the spans
exported with OpenTelemetry's OTLP/HTTP exporter to an endpoint served by the test itself."""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from http_app import assert_socket_problem, call
from observability_handlers import SPEC, handlers

from brrt_actors import create_app
from brrt_actors.stages.tracing import parse_traceparent

TESTS = Path(__file__).resolve().parents[1]
ENV = {"BRRTR_API_KEY__ApiKey": "key-one", "BRRTR_JWT_SECRET__Bearer": "s" * 32}
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


@pytest.fixture()
def served(serve_observed: Callable[..., Any]) -> Callable[..., Any]:
    """Serve the observability spec with this module's ENV plus `env` (and a config file)."""
    def start(config: Path | None = None, **env: str) -> Any:
        return serve_observed({**ENV, **env}, config)

    return start


def test_off_by_default(served: Callable[..., Any]) -> None:
    reply = call(served(), "/items/1", headers={"traceparent": TRACEPARENT})
    assert reply.status == 200 and "traceparent" not in reply.headers
    assert reply.json()["traceparent"] is None


def test_caller_trace_is_continued_and_answered_with_a_child(
        served: Callable[..., Any]) -> None:
    reply = call(served(BRRTR_TRACING="1"), "/items/1",
                 headers={"traceparent": TRACEPARENT, "tracestate": "vendor=abc,other=1"})
    seen = reply.json()
    assert seen["trace_id"] == TRACE_ID and seen["parent_id"] == PARENT_ID
    assert seen["tracestate"] == "vendor=abc,other=1"
    answered = parse_traceparent(reply.headers["traceparent"])
    assert answered is not None
    trace_id, span_id, sampled = answered
    assert trace_id == TRACE_ID and sampled and span_id != PARENT_ID
    assert reply.headers["traceparent"] == seen["traceparent"]  # the handler's own span
    assert seen["mailbox_wait"] >= 0


@pytest.mark.parametrize("header", [
    None,
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
    f"00-{'0' * 32}-{PARENT_ID}-01",  # all-zero trace id
    f"00-{TRACE_ID}-{'0' * 16}-01",  # all-zero parent id
    f"ff-{TRACE_ID}-{PARENT_ID}-01",  # version ff
    f"00-{TRACE_ID}-{PARENT_ID}-01-extra",  # version 00 has no more fields
    f"{TRACEPARENT},{TRACEPARENT}",  # sent twice
    "garbage",
])
def test_missing_or_malformed_traceparent_starts_a_fresh_trace(
        served: Callable[..., Any], header: str | None) -> None:
    server = served(BRRTR_TRACING="1")
    headers = {"tracestate": "vendor=abc"} if header is None else {
        "traceparent": header, "tracestate": "vendor=abc"}
    first, second = call(server, "/items/1", headers=headers), call(server, "/items/1",
                                                                    headers=headers)
    for reply in (first, second):
        seen = reply.json()
        assert seen["trace_id"] != TRACE_ID and seen["parent_id"] is None
        assert seen["tracestate"] is None  # it belonged to a trace not continued
        assert parse_traceparent(reply.headers["traceparent"]) is not None
    assert first.json()["trace_id"] != second.json()["trace_id"]


def test_later_versions_are_read_for_what_version_00_knows() -> None:
    assert parse_traceparent(f"01-{TRACE_ID}-{PARENT_ID}-00-more") == (TRACE_ID, PARENT_ID,
                                                                        False)


def test_error_answers_carry_traceparent_too(served: Callable[..., Any]) -> None:
    server = served(BRRTR_TRACING="1")
    for target in ("/items/0", "/items/nope"):  # the handler's 404, the parameters' 400
        reply = call(server, target, headers={"traceparent": TRACEPARENT})
        assert_socket_problem(reply, 404 if target.endswith("0") else 400)
        assert reply.headers["traceparent"].startswith(f"00-{TRACE_ID}-")


def test_nothing_of_opentelemetry_or_limits_is_imported_when_unused(tmp_path: Path) -> None:
    probe = (
        "from gevent import monkey; monkey.patch_all()\n"
        "import sys\n"
        f"sys.path.insert(0, {str(TESTS)!r})\n"
        "import observability_handlers as h\n"
        "from brrt_actors import build_app\n"
        f"spec = open({str(SPEC)!r}).read().replace('x-rate-limit', 'x-not-a-limit')\n"
        "open(sys.argv[1], 'w').write(spec)\n"
        "build_app(sys.argv[1], h, environ={'BRRTR_TRACING': '1', 'BRRTR_ACCESS_LOG': '1',"
        f" **{ENV!r}}})\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules} & {'opentelemetry', 'limits',"
        " 'redis'})\n"
        "print(loaded)\n")
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "spec.yaml")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# -- OpenTelemetry: the spans received on an OTLP/HTTP endpoint of the test's own ------------

def test_spans_are_exported_over_otlp_http(apps: list[object], serve: Any) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    received: list[bytes] = []

    def collector(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if environ["PATH_INFO"] == "/v1/traces":
            received.append(environ["wsgi.input"].read(length))
        start_response("200 OK", [("Content-Type", "application/x-protobuf"),
                                  ("Content-Length", "0")])
        return [b""]

    endpoint = serve(collector)
    app = create_app(SPEC, handlers(), environ={
        **ENV, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{endpoint.address[1]}"})
    server = serve(app)
    reply = call(server, "/items/7", headers={"traceparent": TRACEPARENT})
    assert reply.status == 200
    app.stop(1)  # flushes the batch of spans to the endpoint

    spans = []
    for body in received:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        spans += [span for resource in request.resource_spans
                  for scope in resource.scope_spans for span in scope.spans]
    by_name = {span.name: span for span in spans}
    server_span, handler_span = by_name["GET /items/{id}"], by_name["handler getItem"]

    def attributes(span: Any) -> dict[str, Any]:
        return {item.key: getattr(item.value, item.value.WhichOneof("value"))
                for item in span.attributes}

    assert attributes(server_span) == {"http.request.method": "GET", "http.route": "/items/{id}",
                                       "url.path": "/items/7", "http.response.status_code": 200}
    assert server_span.kind == server_span.SPAN_KIND_SERVER
    assert server_span.trace_id.hex() == TRACE_ID
    assert server_span.parent_span_id.hex() == PARENT_ID
    assert handler_span.trace_id.hex() == TRACE_ID
    assert handler_span.parent_span_id == server_span.span_id
    assert attributes(handler_span)["brrt.mailbox_wait_ms"] >= 0
    # The answer names the exported server span, as the handler saw it.
    assert reply.headers["traceparent"] == f"00-{TRACE_ID}-{server_span.span_id.hex()}-01"
    assert reply.json()["traceparent"] == reply.headers["traceparent"]
