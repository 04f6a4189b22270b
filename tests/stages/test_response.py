"""The response stage: encoding the handler's value, checked against the declared responses."""
from __future__ import annotations

import http.client
import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from conftest import Serve
from http_app import (
    AUTH,
    call,
    events,
    http_handlers,
    problem,
)

from brrt_actors import Request, Response
from brrt_actors.app import App
from brrt_actors.errors import HTTPError
from brrt_actors.spec import load_spec
from brrt_actors.stages.response import Encoded, ResponseEncoder, dumps
from brrt_actors.testing import Client


def test_enforce_turns_an_invalid_body_into_500_and_logs_why(
        make_app: Callable[..., App], caplog: pytest.LogCaptureFixture) -> None:
    client = Client(make_app(BRRTR_RESPONSE_VALIDATION="enforce"))
    with caplog.at_level(logging.ERROR, logger="brrt_actors"):
        body = problem(client.get("/answer?mode=invalid"), 500)
    assert "forty-two" not in str(body)
    assert any("get_answer" in record.getMessage() and "/answer" in record.getMessage()
               for record in caplog.records), caplog.text
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="brrt_actors"):
        problem(client.get("/answer?mode=undeclared"), 500)
    assert "418" in caplog.text and "not declared" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="brrt_actors"):
        problem(client.get("/answer?mode=conflict"), 500)  # raised, not returned: the same
    assert "409" in caplog.text and "not declared" in caplog.text
    assert client.get("/answer?mode=valid").json() == {"answer": 42}


def test_log_mode_sends_the_invalid_response_and_logs_it(
        make_app: Callable[..., App], caplog: pytest.LogCaptureFixture) -> None:
    client = Client(make_app(BRRTR_RESPONSE_VALIDATION="log"))
    with caplog.at_level(logging.WARNING, logger="brrt_actors"):
        response = client.get("/answer?mode=invalid")
    assert (response.status, response.json()) == (200, {"answer": "forty-two"})
    assert any(record.levelno >= logging.WARNING and "get_answer" in record.getMessage()
               for record in caplog.records), caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="brrt_actors"):
        assert client.get("/answer?mode=undeclared").status == 418
    assert "418" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="brrt_actors"):
        body = problem(client.get("/answer?mode=conflict"), 409)
    assert body["detail"] == "already there"
    assert "409" in caplog.text and "not declared" in caplog.text


def test_off_mode_sends_the_invalid_response_silently(
        make_app: Callable[..., App], caplog: pytest.LogCaptureFixture) -> None:
    client = Client(make_app(BRRTR_RESPONSE_VALIDATION="off"))
    with caplog.at_level(logging.DEBUG, logger="brrt_actors"):
        response = client.get("/answer?mode=invalid")
        undeclared = client.get("/answer?mode=undeclared")
        conflict = client.get("/answer?mode=conflict")
    assert (response.status, response.json()) == (200, {"answer": "forty-two"})
    assert (undeclared.status, conflict.status) == (418, 409)
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_none_is_204_when_only_204_is_declared(client: Client) -> None:
    response = client.delete("/items/4", headers=AUTH)
    assert (response.status, response.body) == (204, b"")
    assert "content-type" not in response.headers


def test_response_headers_reach_the_client(client: Client) -> None:
    response = client.get("/answer?mode=headers")
    assert (response.status, response.headers["x-answer"]) == (200, "yes")
    assert response.json() == {"answer": 1}


def test_bytes_body_goes_out_with_the_declared_content_type(client: Client) -> None:
    response = client.get("/report")
    assert (response.status, response.body) == (200, b"a,b\n1,2\n")
    assert response.headers["content-type"] == "text/csv"
    assert response.headers["content-length"] == "8"
    assert response.headers["x-report"] == "weekly"


def test_content_type_header_from_the_handler_is_sent_once(
        make_app: Callable[..., App]) -> None:
    def get_report(request: Request) -> Response:
        return Response(200, "a;b\n", headers={"content-type": "text/csv; charset=utf-8",
                                                "Content-Length": "999", "X-Report": "daily"})

    response = Client(make_app(handlers={**http_handlers(), "get_report": get_report})).get(
        "/report")
    assert response.status == 200, response
    names = [name.lower() for name, _ in response.header_list]
    assert names.count("content-type") == 1 and names.count("content-length") == 1
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-length"] == "4"
    assert response.headers["x-report"] == "daily"


def test_stream_arrives_whole_over_a_real_socket(
        make_app: Callable[..., App], serve: Serve) -> None:
    server = serve(make_app(), keepalive_timeout_s=2)
    reply = call(server, "/events")
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/event-stream"
    assert reply.headers["cache-control"] == "no-cache"
    assert reply.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in reply.headers
    assert reply.body == b"".join(events())


def test_every_response_has_content_type_and_length(client: Client) -> None:
    responses = [
        client.get("/items"), client.get("/items/2", headers=AUTH), client.get("/items/2"),
        client.delete("/items/2", headers=AUTH), client.get("/nowhere"), client.put("/items"),
        client.options("/items"), client.get("/report"), client.get("/health"),
        client.get("/ready"), client.get("/openapi.json"), client.get("/openapi.yaml"),
        client.get("/docs"), client.post("/items", json={"name": "n"}),
        client.post("/items", data=b"x", content_type="text/plain"),
        client.get("/answer?mode=invalid"), client.get("/probe"),
    ]
    for response in responses:
        if response.status == 204:  # RFC 9110 8.6: no body, and no Content-Length but 0
            assert response.body == b"" and response.headers.get("content-length", "0") == "0"
            continue
        assert response.headers["content-length"] == str(len(response.body)), response
        if response.body:
            assert response.headers["content-type"], response
        assert response.headers["x-request-id"], response


# --- what no valid JSON or UTF-8 can carry (issue 9) -----------------------------------------

class Opaque:
    """A value JSON has no form for."""


@pytest.mark.parametrize("mode", ["enforce", "log", "off"])
@pytest.mark.parametrize("value", [
    {"name": "Evil\ud800"}, {"\udc00": 1}, {"price": float("inf")}, {"ratio": float("nan")},
    {"when": Opaque()}, Response(200, '{"pre": "\udfff"}', content_type="application/json")])
def test_an_unencodable_response_is_a_500_for_that_response_alone(
        make_app: Callable[..., App], caplog: pytest.LogCaptureFixture, mode: str,
        value: object) -> None:
    answers = iter([value, {"count": 1}])
    handlers = {**http_handlers(), "list_things": lambda request: next(answers)}
    client = Client(make_app(handlers=handlers, BRRTR_RESPONSE_VALIDATION=mode))
    with caplog.at_level(logging.INFO):
        body = problem(client.get("/things", headers=AUTH), 500)
    assert body["detail"] == "the response could not be encoded"
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1 and "list_things" in errors[0].getMessage(), caplog.text
    assert errors[0].exc_info is None  # one line, no traceback
    assert client.get("/things", headers=AUTH).json() == {"count": 1}  # the next one is served


def test_json_bodies_never_hold_infinity_or_nan() -> None:
    assert dumps({"price": 1e308, "name": "caf\u00e9 \U0001f600"}) == (
        '{"price":1e+308,"name":"caf\u00e9 \U0001f600"}'.encode())
    for value in (float("inf"), float("-inf"), float("nan")):
        with pytest.raises(OverflowError):
            dumps({"price": value})
    with pytest.raises(UnicodeEncodeError):
        dumps(["\ud800"])


def test_a_stream_that_cannot_be_encoded_is_cut_naming_the_operation(
        make_app: Callable[..., App], serve: Serve, caplog: pytest.LogCaptureFixture) -> None:
    def get_events(request: Request) -> Response:
        return Response(200, iter(["data: one\n\n", "data: \ud800\n\n", "data: three\n\n"]))

    server = serve(make_app(handlers={**http_handlers(), "get_events": get_events}))
    conn = http.client.HTTPConnection(*server.address, timeout=2)
    with caplog.at_level(logging.ERROR):
        conn.request("GET", "/events")
        response = conn.getresponse()
        assert response.status == 200
        with pytest.raises(http.client.IncompleteRead) as info:
            response.read()  # no last chunk: the client can tell the stream was cut
    conn.close()
    assert info.value.partial == b"data: one\n\n"
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1 and "get_events" in caplog.text, caplog.text
    assert call(server, "/answer").status == 200


# --- the lean path (issue 12): the same answers as the full path -----------------------------

_OBJECT_N = {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}
_LEAN_SPEC = {
    "openapi": "3.1.0", "info": {"title": "lean", "version": "1"},
    "paths": {"/a": {"get": {"operationId": "answer", "responses": {
        "200": {"description": "ok", "content": {"application/json": {"schema": _OBJECT_N}}},
        "201": {"description": "made", "content": {"application/json": {"schema": _OBJECT_N}}},
        "202": {"description": "later", "content": {
            "application/vnd.x+json; charset=utf-8": {"schema": _OBJECT_N}}},
        "2XX": {"description": "range", "content": {"application/json": {
            "schema": {"type": "object", "required": ["r"]}}}},
        "204": {"description": "none"},
        "400": {"description": "text only", "content": {"text/plain": {}}},
        "404": {"description": "anything"},
    }}}, "/b": {"get": {"operationId": "ranged", "responses": {
        "2XX": {"description": "range", "content": {"application/problem+json": {
            "schema": {"type": "object", "required": ["r"]}}}},
        "default": {"description": "else", "content": {"application/json": {}}},
    }}}, "/c": {"get": {"operationId": "undeclared", "responses": {
        "201": {"description": "made", "content": {"application/json": {"schema": _OBJECT_N}}},
    }}}},
}

_RESULTS: list[Any] = [
    {"n": 1}, {"n": "x"}, {}, [], [{"n": 1}], {"r": 1}, {"n": float("nan")}, {"n": "\ud800"},
    OrderedDict(n=1), Response(201, {"n": 1}), Response(201, {"n": "x"}), Response(201, [1]),
    Response(201, {"n": 1}, headers={"X-A": "1", "Cache-Control": "no-store"}),
    Response(201, {"n": 1}, headers={"content-type": "application/json"}),
    Response(201, {"n": 1}, headers={"Content-Length": "999"}),
    Response(201, {"n": 1}, content_type="application/json"), Response(201, {"n": Opaque()}),
    Response(HTTPStatus.CREATED, {"n": 1}), Response(202, {"n": 1}), Response(203, {"r": 1}),
    Response(203, {"n": 1}), Response(204, {"n": 1}), Response(400, {"n": 1}),
    Response(404, {"x": 1}), Response(418, {"n": 1}), Response(200, None), Response(201, "{}"),
]


def _outcome(encode: Callable[[Any], Encoded], result: Any,
             caplog: pytest.LogCaptureFixture) -> tuple[Any, ...]:
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="brrt_actors"):
        try:
            status, headers, chunks = encode(result)
            answer: tuple[Any, ...] = (status, headers, b"".join(chunks))
        except HTTPError as ex:
            answer = ("raised", ex.status, ex.detail)
    return (*answer, [(record.levelno, record.getMessage()) for record in caplog.records])


@pytest.mark.parametrize("mode", ["enforce", "log", "off"])
@pytest.mark.parametrize("operation_id", ["answer", "ranged", "undeclared"])
def test_the_lean_path_answers_and_logs_as_the_full_path(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: str, operation_id: str) -> None:
    path = tmp_path / "lean.json"
    path.write_text(json.dumps(_LEAN_SPEC))
    operation = next(op for op in load_spec(path).operations
                     if op.operation_id == operation_id)
    encoder = ResponseEncoder(operation, mode)
    full = encoder._encode if mode == "off" else encoder._encode_checked
    for result in _RESULTS:
        lean = _outcome(encoder.encode, result, caplog)
        assert lean == _outcome(full, result, caplog), result


def test_a_declared_non_200_dict_goes_out_checked(
        make_app: Callable[..., App], caplog: pytest.LogCaptureFixture) -> None:
    response = Client(make_app()).post("/items", json={"name": "n"})
    assert (response.status, response.json()) == (201, {"id": 7, "name": "n"})
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == str(len(response.body))
    invalid = {**http_handlers(), "create_item": lambda request: Response(201, {"id": "seven"})}
    with caplog.at_level(logging.ERROR, logger="brrt_actors"):
        problem(Client(make_app(handlers=invalid)).post("/items", json={"name": "n"}), 500)
    assert "create_item: response 201 does not match the spec" in caplog.text
