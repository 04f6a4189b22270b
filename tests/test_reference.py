"""BRRTRouter's own pet store spec, unchanged, served by `brrt serve --mock` over a real socket.

Every one of its operations must answer with a status the reference declares for that
operation and a body its schema for that status accepts (checked twice: with the project's
validator and with plain jsonschema).
"""
from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jsonschema
import pytest
import ujson
from reference_spec import absent_reason

from brrt_actors.spec import Spec, load_spec
from brrt_actors.spec.model import Operation, ResponseSpec
from brrt_actors.validation import compile_validator

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT.parent / "shared" / "reference" / "brrtrouter-petstore.yaml"

pytestmark = [
    pytest.mark.reference,
    pytest.mark.slow,
    pytest.mark.skipif(not REFERENCE.exists(), reason=absent_reason(
        "every operation of BRRTRouter's pet store answering as it declares, in --mock mode")),
]

KEY = {"X-API-Key": "test123"}
ITEM = str(uuid.UUID("7c9e6679-7425-40de-944b-e07fc1f90ae7"))
TRACE = "11111111-2222-4333-8444-555555555555"
BOUNDARY = "brrt-test-boundary"
MULTIPART = (
    f"--{BOUNDARY}\r\n"
    'Content-Disposition: form-data; name="file"; filename="pet.png"\r\n'
    "Content-Type: image/png\r\n\r\n"
    "\x89PNG fake image bytes\r\n"
    f"--{BOUNDARY}\r\n"
    'Content-Disposition: form-data; name="metadata"\r\n'
    "Content-Type: application/json\r\n\r\n"
    '{"owner": "john", "kind": "photo"}\r\n'
    f"--{BOUNDARY}--\r\n"
).encode("latin-1")


def _json(value: Any) -> tuple[dict[str, str], bytes]:
    return {"Content-Type": "application/json"}, ujson.dumps(value).encode()


# operationId -> (method, target, extra headers, body, the status expected)
Case = tuple[str, str, dict[str, str], bytes | None, int]
CASES: dict[str, Case] = {
    "list_pets": ("GET", "/pets?limit=10&offset=0&tags=friendly&tags=trained", {}, None, 200),
    "add_pet": ("POST", "/pets", *_json({"name": "Bella"}), 200),
    "get_pet": ("GET", "/pets/12345", {}, None, 200),
    "list_users": ("GET", "/users?limit=5", {}, None, 200),
    "get_user": ("GET", "/users/abc-123", {}, None, 200),
    "delete_user": ("DELETE", "/users/abc-123", {}, None, 204),
    "head_user": ("HEAD", "/users/abc-123", {}, None, 200),
    "options_user": ("OPTIONS", "/users/abc-123", {}, None, 204),
    "list_user_posts": ("GET", "/users/abc-123/posts?offset=1", {}, None, 200),
    "get_post": ("GET", "/users/abc-123/posts/post1", {}, None, 200),
    "admin_settings": ("GET", "/admin/settings", {}, None, 200),
    "get_item": ("GET", f"/items/{ITEM}", {}, None, 200),
    "post_item": ("POST", f"/items/{ITEM}", *_json({"name": "New Item"}), 200),
    "stream_events": ("GET", "/events", {"Accept": "text/event-stream"}, None, 200),
    "download_file": ("GET", f"/download/{ITEM}", {}, None, 200),
    "submit_form": ("POST", "/form", {"Content-Type": "application/x-www-form-urlencoded"},
                    urlencode({"name": "Ada", "age": 36}).encode(), 200),
    "upload_file": ("POST", "/upload",
                    {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}, MULTIPART,
                    201),
    "get_matrix": ("GET", "/matrix/;coords=1,2,3", {}, None, 200),
    "get_label": ("GET", "/labels/.red", {}, None, 200),
    "search": ("GET", "/search?tags=toy|food&filters[color]=red&filters[size]=s",
               {"X-Trace-Id": TRACE, "Cookie": "session=abc"}, None, 200),
    # BearerAuth / OAuth2 are not configured here: mock mode rejects them (401, which the
    # reference declares for this operation).
    "secure_endpoint": ("GET", "/secure", {"Authorization": "Bearer some.jwt.token"}, None,
                        401),
    "register_webhook": ("POST", "/webhooks", *_json({"url": "https://example.com/hook"}),
                         200),
}


@pytest.fixture(scope="module")
def reference() -> Spec:
    return load_spec(REFERENCE)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    log = tmp_path_factory.mktemp("reference") / "serve.log"
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("BRRTR_") and name != "PORT"}
    env["BRRTR_API_KEY__ApiKeyHeader"] = "test123"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "brrt_actors", "serve", str(REFERENCE), "--mock",
             "--port", "0"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        port = None
        while port is None:
            text = log.read_text(errors="replace")
            marker = "listening on http://127.0.0.1:"
            if marker in text:
                port = int(text.split(marker, 1)[1].split()[0])
            elif process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"brrt serve did not start (exit {process.poll()}):\n{text}")
            else:
                time.sleep(0.02)
        yield "127.0.0.1", port
        process.terminate()
        assert process.wait(timeout=20) == 0, log.read_text()
        assert "Traceback" not in log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=20)


def send(server: tuple[str, int], method: str, target: str, headers: dict[str, str],
         body: bytes | None) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection(*server, timeout=10)
    try:
        connection.request(method, target, body=body, headers={**KEY, **headers})
        response = connection.getresponse()
        return (response.status, {k.lower(): v for k, v in response.getheaders()},
                response.read())
    finally:
        connection.close()


def declared(operation: Operation, status: int) -> ResponseSpec:
    for key in (str(status), f"{status // 100}XX", "default"):
        if key in operation.responses:
            return operation.responses[key]
    raise AssertionError(f"{operation.operation_id}: status {status} is not declared "
                         f"(declared: {', '.join(operation.responses)})")


def schema_errors(schema: dict[str, Any], value: Any) -> list[str]:
    """Every violation, by the project's validator and by plain jsonschema (they must agree)."""
    ours = [f"{pointer}: {message}" for pointer, message in compile_validator(schema).errors(value)]
    plain = [f"/{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in
             jsonschema.Draft7Validator(schema,
                                        format_checker=jsonschema.FormatChecker()).iter_errors(value)]
    return ours + plain


def check_response(operation: Operation, method: str, status: int, headers: dict[str, str],
                   body: bytes) -> None:
    response = declared(operation, status)
    for name, header in response.headers.items():
        value = headers.get(name.lower())
        if header.get("required"):
            assert value is not None, f"{operation.operation_id}: header {name} is missing"
        schema = header.get("schema")
        if value is not None and schema and schema.get("type") == "string":
            assert schema_errors(schema, value) == [], (name, value)
    if method == "HEAD" or status == 204:
        assert body == b""
        return
    if not response.content:
        return  # the reference says nothing about this body
    content_type = headers["content-type"].split(";", 1)[0].strip().lower()
    media = response.content.get(content_type)
    assert media is not None, (f"{operation.operation_id}: {content_type} is not declared for "
                               f"{status} (declared: {', '.join(response.content)})")
    if media.schema is None:
        assert body  # e.g. text/event-stream: {}
        return
    if content_type == "application/json" or content_type.endswith("+json"):
        value = ujson.loads(body)
        assert schema_errors(media.schema, value) == [], value
    else:
        assert media.schema.get("format") == "binary" and body


def test_every_operation_is_covered(reference: Spec) -> None:
    assert len(reference.operations) == 22
    assert set(CASES) == {op.operation_id for op in reference.operations}


@pytest.mark.parametrize("operation_id", list(CASES))
def test_operation_answers_as_declared(reference: Spec, server: tuple[str, int],
                                       operation_id: str) -> None:
    operation = next(op for op in reference.operations if op.operation_id == operation_id)
    method, target, headers, body, expected = CASES[operation_id]
    assert method == operation.method
    status, response_headers, payload = send(server, method, target, headers, body)
    assert status == expected, payload
    check_response(operation, method, status, response_headers, payload)


def test_secure_endpoint_challenges_both_schemes(server: tuple[str, int]) -> None:
    status, headers, body = send(server, "GET", "/secure", {}, None)
    assert status == 401
    assert headers["content-type"] == "application/problem+json"
    assert headers["www-authenticate"] == 'Bearer realm="BearerAuth", Bearer realm="OAuth2"'
    assert ujson.loads(body)["status"] == 401


def test_event_stream_is_server_sent_events(server: tuple[str, int]) -> None:
    status, headers, body = send(server, "GET", "/events", {}, None)
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    assert body.startswith((b"event:", b"data:", b"id:", b":"))


def test_api_key_is_still_required(server: tuple[str, int]) -> None:
    status, headers, _ = send(server, "GET", "/pets", {"X-API-Key": "wrong"}, None)
    assert status == 401
    assert 'realm="ApiKeyHeader"' in headers["www-authenticate"]


def test_bad_request_is_refused(server: tuple[str, int]) -> None:
    # The declared parameters are enforced in mock mode too.
    assert send(server, "GET", "/items/not-a-uuid", {}, None)[0] == 400
    assert send(server, "GET", "/pets?limit=1000", {}, None)[0] == 400
    assert send(server, "POST", "/form", {"Content-Type": "application/x-www-form-urlencoded"},
                b"age=3")[0] == 400


def test_the_check_is_not_vacuous(reference: Spec) -> None:
    # The reference's own example for get_user breaks its schema (id is not a uuid): both
    # validators must see it, or the checks above prove nothing.
    get_user = next(op for op in reference.operations if op.operation_id == "get_user")
    schema = get_user.responses["200"].content["application/json"].schema
    assert schema is not None
    errors = schema_errors(schema, {"id": "abc-123", "name": "John"})
    assert len(errors) == 2 and all(error.startswith("/id") for error in errors)
    get_pet = next(op for op in reference.operations if op.operation_id == "get_pet")
    with pytest.raises(AssertionError, match="not declared"):
        check_response(get_pet, "GET", 418, {}, b"")
