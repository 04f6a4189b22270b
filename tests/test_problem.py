"""The one problem renderer (brrt_actors.problem) and the engine's answers built from it."""
from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import REFERENCE_PETSTORE

from brrt_actors import Request, create_app
from brrt_actors.app import App
from brrt_actors.engine import wire
from brrt_actors.errors import HTTPError
from brrt_actors.problem import (
    PROBLEM_CONTENT_TYPE,
    body_too_large,
    new_request_id,
    printable_path,
    problem_body,
    problem_document,
    request_id_from,
)
from brrt_actors.testing import Client
from brrt_actors.validation import SchemaValidator, compile_validator

GENERATED_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{8}\Z")


def parse(answer: bytes) -> tuple[str, dict[str, str], dict[str, Any]]:
    """Split a whole HTTP answer into its status line, headers and JSON body."""
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(": ")
        assert name.lower() not in headers, f"{name} twice"
        headers[name.lower()] = value
    assert int(headers["content-length"]) == len(body)
    document: dict[str, Any] = json.loads(body)
    return status_line, headers, document


# --- the document ---------------------------------------------------------------------------

def test_document_has_every_member_in_order() -> None:
    error = HTTPError(400, "the request does not match", errors=[
        {"in": "query", "name": "limit", "message": "too big"}])
    document = problem_document(error, "/pets", "req-1")
    assert list(document) == ["type", "title", "status", "detail", "instance", "request_id",
                              "errors"]
    assert document == {
        "type": "about:blank", "title": "Bad Request", "status": 400,
        "detail": "the request does not match", "instance": "/pets", "request_id": "req-1",
        "errors": [{"in": "query", "name": "limit", "message": "too big"}]}


def test_instance_is_left_out_when_the_target_was_never_parsed() -> None:
    document = problem_document(HTTPError(414, "too long"), None, "req-1")
    assert "instance" not in document
    assert document["request_id"] == "req-1"


def test_detail_defaults_to_the_title_and_errors_appear_only_when_any() -> None:
    document = problem_document(HTTPError(404, errors=[]), "/x", "req-1")
    assert document["detail"] == document["title"] == "Not Found"
    assert "errors" not in document


def test_custom_type_and_title_are_kept() -> None:
    error = HTTPError(429, "slow down", title="Too fast", type="https://example.com/rate")
    document = problem_document(error, "/x", "req-1")
    assert (document["type"], document["title"]) == ("https://example.com/rate", "Too fast")


def test_body_is_utf8_json_without_escaped_slashes() -> None:
    body = problem_body(HTTPError(404, "no operation serves /café/ü"), "/café/ü", "r-1")
    assert b"/caf\xc3\xa9/\xc3\xbc" in body and b"\\/" not in body
    assert json.loads(body)["instance"] == "/café/ü"
    assert PROBLEM_CONTENT_TYPE == "application/problem+json"


def test_printable_path_drops_control_characters_and_cuts_long_paths() -> None:
    assert printable_path("/a\x00b\r\nc\x1bd") == "/abcd"
    assert printable_path("/" + "x" * 199) == "/" + "x" * 199
    cut = printable_path("/" + "x" * 500)
    assert cut == "/" + "x" * 199 + "..."


def test_body_too_large_names_the_limit() -> None:
    assert body_too_large(1000) == "the request body is larger than 1000 bytes"


# --- request ids ------------------------------------------------------------------------------

def test_sane_client_ids_are_kept() -> None:
    for sane in ("abc-123.x:y_z", "a", "x" * 128, "0af7651916cd43dd8448eb211c80319c"):
        assert request_id_from(sane) == sane


@pytest.mark.parametrize("insane", [None, "", "x" * 129, "has space", "bell\x07", "new\nline",
                                    "a\r\nSet-Cookie: x=1", "<script>", "a,b", "é"])
def test_other_ids_are_replaced_by_a_new_one(insane: str | None) -> None:
    assert GENERATED_ID.match(request_id_from(insane))


def test_new_ids_differ_and_share_the_process_prefix() -> None:
    ids = [new_request_id() for _ in range(100)]
    assert len(set(ids)) == 100
    assert len({one.split("-")[0] for one in ids}) == 1


def test_a_forked_child_draws_its_own_prefix() -> None:
    parent = new_request_id().split("-")[0]
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write_end, new_request_id().encode())
        os._exit(0)
    os.close(write_end)
    child = os.read(read_end, 100).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert GENERATED_ID.match(child)
    assert child.split("-")[0] != parent  # NOTE: else gunicorn's workers would share ids


# --- the engine's answers -------------------------------------------------------------------

def test_engine_answer_is_a_whole_problem_with_its_request_id() -> None:
    status_line, headers, document = parse(wire.problem_response(
        431, "more than 100 header fields", instance="/pets", request_id="trace-9"))
    assert status_line == "HTTP/1.1 431 Request Header Fields Too Large"
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    assert headers["x-request-id"] == document["request_id"] == "trace-9"
    assert "date" in headers and headers["server"] == "brrt_actors"
    assert document == {"type": "about:blank", "title": "Request Header Fields Too Large",
                        "status": 431, "detail": "more than 100 header fields",
                        "instance": "/pets", "request_id": "trace-9"}


def test_engine_answer_without_target_or_id_gets_a_new_id_and_no_instance() -> None:
    _, headers, first = parse(wire.problem_response(414, "too long"))
    _, _, second = parse(wire.problem_response(414, "too long"))
    assert "instance" not in first
    assert GENERATED_ID.match(first["request_id"])
    assert headers["x-request-id"] == first["request_id"] != second["request_id"]


def test_engine_answer_never_echoes_an_insane_id_into_its_head() -> None:
    answer = wire.problem_response(400, "malformed", request_id="a\r\nSet-Cookie: x=1")
    _, headers, document = parse(answer)
    assert b"Set-Cookie" not in answer
    assert GENERATED_ID.match(headers["x-request-id"])
    assert document["request_id"] == headers["x-request-id"]


def test_request_problem_reads_the_target_and_the_client_id() -> None:
    environ = {"RAW_URI": "/pets/1?verbose=1", "HTTP_X_REQUEST_ID": "client-1"}
    _, headers, document = parse(wire.request_problem(413, body_too_large(10), environ))
    assert (document["instance"], document["request_id"]) == ("/pets/1", "client-1")
    assert headers["x-request-id"] == "client-1"
    assert document["detail"] == "the request body is larger than 10 bytes"


def test_request_problem_prefers_the_id_the_app_chose() -> None:
    environ = {"RAW_URI": "/pets", "HTTP_X_REQUEST_ID": "client-1"}
    _, headers, document = parse(wire.request_problem(500, "internal server error", environ,
                                                      "app-7"))
    assert headers["x-request-id"] == document["request_id"] == "app-7"


def test_request_problem_path_is_printable() -> None:
    environ = {"RAW_URI": "/a\x01b" + "c" * 300}
    _, _, document = parse(wire.request_problem(400, "malformed request", environ))
    assert document["instance"] == "/ab" + "c" * 196 + "..."  # 200 characters, less one
    assert GENERATED_ID.match(document["request_id"])


# --- what JSON and UTF-8 cannot carry (issue 9) ----------------------------------------------

def test_a_problem_always_renders_escaping_what_utf8_cannot_carry() -> None:
    error = HTTPError(409, "name 'Evil\ud800' taken", errors=[
        {"in": "body", "pointer": "/\udc00", "message": "bad", "ratio": float("nan")}])
    body = problem_body(error, "/pets", "r-1")
    document = json.loads(body.decode("utf-8"))  # strict UTF-8, strict JSON: no NaN
    assert document["detail"] == "name 'Evil\\ud800' taken"
    assert document["errors"] == [{"in": "body", "pointer": "/\\udc00", "message": "bad",
                                   "ratio": "nan"}]


# --- problems shaped to the schema an operation declares (issue 9, defect 7) -----------------

SHAPES_SPEC = """
openapi: 3.1.0
info: {title: shapes, version: "1"}
paths:
  /strict:
    post:
      operationId: strict
      parameters: [{name: n, in: query, schema: {type: integer}}]
      requestBody:
        content: {application/json: {schema: {type: object, required: [name]}}}
      responses:
        "200": {description: ok}
        "400": {$ref: "#/components/responses/Strict"}
        "404": {$ref: "#/components/responses/Strict"}
        "5XX": {$ref: "#/components/responses/Strict"}
  /strict-again:
    get:
      operationId: strict_again
      parameters: [{name: n, in: query, schema: {type: integer}}]
      responses:
        "400":
          description: the same schema, declared a second time
          content:
            application/problem+json: {schema: {$ref: "#/components/schemas/Strict"}}
  /classic:
    get:
      operationId: classic
      parameters: [{name: n, in: query, schema: {type: integer}}]
      responses:
        "200": {description: ok}
        default:
          description: The classic pet store's error
          content:
            application/json:
              schema:
                type: object
                required: [code, message]
                properties: {code: {type: integer}, message: {type: string}}
  /impossible:
    get:
      operationId: impossible
      parameters: [{name: n, in: query, schema: {type: integer}}]
      responses:
        "400": {$ref: "#/components/responses/Impossible"}
  /impossible-again:
    get:
      operationId: impossible_again
      parameters: [{name: n, in: query, schema: {type: integer}}]
      responses:
        "400":
          description: the same schema, declared a second time
          content:
            application/problem+json: {schema: {$ref: "#/components/schemas/Impossible"}}
  /canonical:
    get:
      operationId: canonical
      parameters: [{name: n, in: query, schema: {type: integer}}]
      responses:
        "400":
          description: the runtime's own document fits this one as it is
          content:
            application/problem+json:
              schema:
                type: object
                properties:
                  errors: {type: array, items: {type: object}}
components:
  responses:
    Strict:
      description: errors as strings, nothing undeclared, status as text
      content:
        application/problem+json: {schema: {$ref: "#/components/schemas/Strict"}}
    Impossible:
      description: needs what the runtime cannot give
      content:
        application/problem+json: {schema: {$ref: "#/components/schemas/Impossible"}}
  schemas:
    Impossible:
      type: object
      required: [timestamp]
      properties:
        timestamp: {type: string}
        errors: {type: array, items: {type: integer}}
    Strict:
      type: object
      additionalProperties: false
      required: [title, status, errors]
      properties:
        title: {type: string}
        status: {type: string}
        detail: {type: string}
        errors: {type: array, items: {type: string}}
"""


@pytest.fixture()
def shaped(tmp_path: Path, apps: list[object],
           caplog: pytest.LogCaptureFixture) -> tuple[App, Client]:
    path = tmp_path / "shapes.yaml"
    path.write_text(SHAPES_SPEC)
    handlers = {name: (lambda request: {"ok": True}) for name in (
        "strict", "strict_again", "classic", "impossible", "impossible_again", "canonical")}
    handlers["strict"] = _not_found
    with caplog.at_level(logging.WARNING, logger="brrt_actors"):
        app = create_app(path, handlers, environ={})
    apps.append(app)
    return app, Client(app)


def _not_found(request: Request) -> Any:
    raise HTTPError(404, "no such thing", errors=[{"in": "path", "name": "x", "message": "gone"}])


def _declared(app: App, operation_id: str, status: str) -> SchemaValidator:
    operation = next(op for op in app.spec.operations if op.operation_id == operation_id)
    media = next(iter(operation.responses[status].content.values()))
    assert media.schema is not None
    return compile_validator(media.schema)


def test_runtime_problems_validate_against_the_declared_schema(
        shaped: tuple[App, Client]) -> None:
    app, client = shaped
    response = client.post("/strict?n=x", json={"nope": 1})
    assert response.status == 400
    assert response.headers["content-type"] == "application/problem+json"
    document = response.json()
    assert document == {"title": "Bad Request", "status": "400",
                        "detail": "the request does not match the API description",
                        "errors": ["query n: 'x' is not a valid integer",
                                   "body /name: is required"]}
    assert _declared(app, "strict", "400").errors(document) == []
    raised = client.post("/strict", json={"name": "x"})  # the handler's own HTTPError
    assert raised.status == 404 and raised.json()["errors"] == ["path x: gone"]
    assert _declared(app, "strict", "404").errors(raised.json()) == []
    refused = client.post("/strict", data=b"x", content_type="text/plain")
    assert refused.json()["status"] == 415  # a status it does not declare: as it is
    assert client.get("/strict-again?n=x").json()["errors"] == [
        "query n: 'x' is not a valid integer"]
    classic = client.get("/classic?n=x").json()
    assert (classic["code"], classic["message"]) == (400, classic["detail"])
    assert _declared(app, "classic", "default").errors(classic) == []


def test_only_operations_that_need_a_shape_pay_for_one(shaped: tuple[App, Client]) -> None:
    app, client = shaped
    pipelines = {pipeline.operation.operation_id: pipeline
                 for _, _, pipeline in app.router.routes()}
    assert pipelines["canonical"].serve.__name__ == "serve"  # not wrapped
    assert pipelines["strict"].serve.__name__ == "serve_shaped"
    document = client.get("/canonical?n=x").json()
    assert document["errors"] == [{"in": "query", "name": "n",
                                   "message": "'x' is not a valid integer"}]


def test_an_unsatisfiable_error_schema_is_reported_once_naming_its_pointer(
        shaped: tuple[App, Client], caplog: pytest.LogCaptureFixture) -> None:
    warnings = [record.getMessage() for record in caplog.get_records("setup")
                if record.levelno == logging.WARNING and "problem answers" in record.getMessage()]
    assert len(warnings) == 1, warnings  # two operations, one schema: one warning
    assert warnings[0].startswith(
        "/components/responses/Impossible/content/application~1problem+json/schema:")
    assert "timestamp" in warnings[0] and "errors items must be integer" in warnings[0]
    _, client = shaped
    assert client.get("/impossible?n=x").status == 400  # answered all the same


def test_brrtrouter_problem_details_get_errors_as_strings(apps: list[object]) -> None:
    app = create_app(REFERENCE_PETSTORE, mock=True,
                     environ={"BRRTR_API_KEY__ApiKeyHeader": "k"})
    apps.append(app)
    client = Client(app, headers={"X-API-Key": "k"})
    for response in (client.get("/pets?limit=1000"),
                     client.post("/pets", data=b"{", content_type="application/json")):
        document = response.json()
        assert response.status == 400 and document["errors"], document
        assert all(isinstance(error, str) for error in document["errors"])
    assert document["errors"][0].startswith("body: malformed JSON")
