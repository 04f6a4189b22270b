"""The WSGI app as a user sees it: actors over real sockets, routing, built-ins, errors."""
from __future__ import annotations

import http.client
import logging
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest
import ujson
import yaml
from conftest import Serve
from gevent.event import Event

from brrt_actors import HTTPError, Request, Response, create_app
from brrt_actors.app import App
from brrt_actors.entrypoints.server import HTTPServer
from brrt_actors.testing import Client, TestResponse

SPECS = Path(__file__).resolve().parent / "specs"
HTTP_SPEC = SPECS / "app_http.yaml"
ACTORS_SPEC = SPECS / "app_actors.yaml"
KEY = "s3cret"
ENV = {"BRRTR_API_KEY__ApiKey": KEY}
AUTH = {"X-API-Key": KEY}
GENERATED_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}\Z")

Handler = Callable[[Request], Any]
# The actors spec's operations a test does not care about answer {}.
ACTOR_DEFAULTS: dict[str, Handler] = {
    name: lambda request: {} for name in ("slow", "flood", "ping", "boom", "serial", "parallel")}


def problem(response: TestResponse, status: int) -> dict[str, Any]:
    """Check `response` is a problem+json answer of `status` and return its document."""
    assert response.status == status, response
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    return body


# -- the HTTP spec's handlers ------------------------------------------------------------------

def _events() -> Iterator[bytes]:
    for index in range(3):
        yield f"id: {index}\ndata: event {index}\n\n".encode()
        gevent.sleep(0.01)  # a real stream yields between events


def _conflict() -> Any:
    raise HTTPError(409, "already there")  # 409 is not declared for get_answer


def http_handlers() -> dict[str, Handler]:
    answers: dict[str, Callable[[], Any]] = {
        "valid": lambda: {"answer": 42},
        "invalid": lambda: {"answer": "forty-two"},
        "undeclared": lambda: Response(418, {"answer": 1}),
        "conflict": _conflict,
        "headers": lambda: Response(200, {"answer": 1}, headers={"X-Answer": "yes"}),
    }
    return {
        "list_items": lambda request: [{"id": 1, "name": "one"}],
        "create_item": lambda request: Response(201, {"id": 7, **request.body}),
        "get_item": lambda request: {"id": request.path_params["id"], "name": "thing"},
        "delete_item": lambda request: None,
        "list_things": lambda request: {"count": request.query.get("count")},
        "get_file": lambda request: {"name": request.path_params["name"]},
        "get_report": lambda request: Response(200, b"a,b\n1,2\n", headers={"X-Report": "weekly"}),
        "get_events": lambda request: Response(200, _events(),
                                               headers={"Cache-Control": "no-cache"}),
        "probe_get": lambda request: Response(200, b"from get", headers={"X-From": "get"}),
        "probe_head": lambda request: Response(200, headers={"X-From": "head"}),
        "probe_options": lambda request: Response(200, headers={"X-From": "options"}),
        "get_answer": lambda request: answers[request.query.get("mode", "valid")](),
    }


@pytest.fixture()
def make_app(apps: list[object]) -> Callable[..., App]:
    """Build an app on the HTTP spec (or another), stopped after the test."""

    def make(spec: Path = HTTP_SPEC, handlers: dict[str, Handler] | None = None,
             **env: str) -> App:
        if handlers is None:
            handlers = http_handlers()
        elif spec == ACTORS_SPEC:
            handlers = {**ACTOR_DEFAULTS, **handlers}
        app = create_app(spec, handlers, environ={**ENV, **env})
        apps.append(app)
        return app

    return make


@pytest.fixture()
def client(make_app: Callable[..., App]) -> Client:
    return Client(make_app())


# -- real sockets --------------------------------------------------------------------------

class Reply:
    """One response read off a real socket."""

    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers = {name.lower(): value for name, value in response.getheaders()}
        self.body = response.read()

    def json(self) -> Any:
        return ujson.loads(self.body)

    def __repr__(self) -> str:
        return f"<Reply {self.status} {self.body[:80]!r}>"


def call(server: HTTPServer, target: str, method: str = "GET",
         headers: dict[str, str] | None = None) -> Reply:
    """Send one request on a fresh connection and read the whole response."""
    conn = http.client.HTTPConnection(*server.address, timeout=2)
    try:
        conn.request(method, target, headers=headers or {})
        return Reply(conn.getresponse())
    finally:
        conn.close()


def assert_socket_problem(reply: Reply, status: int) -> dict[str, Any]:
    assert reply.status == status, reply
    assert reply.headers["content-type"] == "application/problem+json"
    assert int(reply.headers["content-length"]) == len(reply.body)
    body: dict[str, Any] = reply.json()
    assert body["status"] == status and body["request_id"] == reply.headers["x-request-id"]
    return body


class Concurrency:
    """Count the handlers running at once, and the most seen."""

    def __init__(self) -> None:
        self.inside = 0
        self.most = 0

    def enter(self) -> None:
        self.inside += 1
        self.most = max(self.most, self.inside)

    def leave(self) -> None:
        self.inside -= 1


# -- actors through HTTP (real sockets, concurrent clients) --------------------------------

def test_deadline_gives_504_and_frees_the_only_worker(
        make_app: Callable[..., App], serve: Serve) -> None:
    cancelled = Event()

    def slow(request: Request) -> dict[str, Any]:
        try:
            gevent.sleep(request.query["sleep_ms"] / 1000)
        except gevent.Timeout:
            cancelled.set()
            raise
        return {"slept_ms": request.query["sleep_ms"]}

    server = serve(make_app(ACTORS_SPEC, {"slow": slow}, BRRTR_HANDLER_WORKERS="4"),
                   keepalive_timeout_s=2)
    started = time.monotonic()
    reply = call(server, "/slow?sleep_ms=2000")
    elapsed = time.monotonic() - started
    body = assert_socket_problem(reply, 504)
    assert "100 ms" in body["detail"] and body["instance"] == "/slow"
    assert elapsed < 0.5
    assert cancelled.wait(0.5)  # the handler was interrupted, not left running
    # workers: 1 from the spec beats the env's 4: the one worker answers at once.
    reply = call(server, "/slow?sleep_ms=0")
    assert (reply.status, reply.json()) == (200, {"slept_ms": 0})


def test_flood_past_the_mailbox_is_shed_while_other_operations_answer(
        make_app: Callable[..., App], serve: Serve) -> None:
    running, release = Event(), Event()

    def flood(request: Request) -> dict[str, Any]:
        running.set()
        release.wait(2)
        return {"ok": True}

    server = serve(make_app(ACTORS_SPEC, {"flood": flood, "ping": lambda request: {"pong": 1}}),
                   keepalive_timeout_s=2)
    first = gevent.spawn(call, server, "/flood")
    assert running.wait(1)  # the one worker is busy; the mailbox (2) is empty
    rest = [gevent.spawn(call, server, "/flood") for _ in range(7)]
    shed = gevent.wait(rest, timeout=1, count=5)  # 2 wait in the mailbox, 5 are shed at once
    assert len(shed) == 5
    for greenlet in shed:
        reply = greenlet.get()
        assert_socket_problem(reply, 503)
        assert reply.headers["retry-after"] == "1"
    # The flooded operation's actor is saturated; another operation's actor is not.
    pings = [gevent.spawn(call, server, "/ping") for _ in range(3)]
    gevent.joinall(pings, timeout=1)
    assert [greenlet.get().status for greenlet in pings] == [200, 200, 200]
    assert not release.is_set() and first.value is None  # the flood was still on
    release.set()
    gevent.joinall([first, *rest], timeout=1)
    statuses = sorted(greenlet.get().status for greenlet in [first, *rest])
    assert statuses == [200] * 3 + [503] * 5


def test_handler_failure_is_500_without_internals_and_the_worker_goes_on(
        make_app: Callable[..., App], serve: Serve,
        caplog: pytest.LogCaptureFixture) -> None:
    def boom(request: Request) -> dict[str, Any]:
        if request.query["fail"]:
            raise RuntimeError("db password hunter2 in /srv/secret.cfg")
        return {"fine": True}

    server = serve(make_app(ACTORS_SPEC, {"boom": boom}), keepalive_timeout_s=2)
    with caplog.at_level(logging.ERROR, logger="brrt_actors"):
        reply = call(server, "/boom?fail=true", headers={"X-Request-ID": "req-boom-1"})
    body = assert_socket_problem(reply, 500)
    assert body["request_id"] == "req-boom-1"
    for secret in (b"hunter2", b"secret.cfg", b"RuntimeError", b"Traceback", b"test_app"):
        assert secret not in reply.body
    # The log has what the client must not see, with the request id.
    logged = [record for record in caplog.records if "req-boom-1" in record.getMessage()]
    assert logged and logged[0].exc_info and "hunter2" in str(logged[0].exc_info[1])
    assert (call(server, "/boom").status, call(server, "/boom").json()) == (200, {"fine": True})


def test_one_worker_serialises_and_eight_workers_run_eight_at_once(
        make_app: Callable[..., App], serve: Serve) -> None:
    serial, parallel = Concurrency(), Concurrency()
    eight_in = Event()

    def run_serial(request: Request) -> dict[str, Any]:
        serial.enter()
        gevent.sleep(0.02)
        serial.leave()
        return {}

    def run_parallel(request: Request) -> dict[str, Any]:
        parallel.enter()
        if parallel.inside == 8:
            eight_in.set()
        eight_in.wait(0.5)  # hold every worker until 8 are inside at once
        parallel.leave()
        return {}

    server = serve(make_app(ACTORS_SPEC, {"serial": run_serial, "parallel": run_parallel}),
                   keepalive_timeout_s=2)
    clients = ([gevent.spawn(call, server, "/serial") for _ in range(8)]
               + [gevent.spawn(call, server, "/parallel") for _ in range(10)])
    gevent.joinall(clients, timeout=1)
    assert [greenlet.get().status for greenlet in clients] == [200] * 18
    assert serial.most == 1
    assert parallel.most == 8


# -- routing ---------------------------------------------------------------------------------

def test_unknown_path_is_404_problem(client: Client) -> None:
    body = problem(client.get("/nowhere"), 404)
    assert body["instance"] == "/nowhere" and body["title"] == "Not Found"


def test_wrong_method_is_405_with_allow(client: Client) -> None:
    response = client.put("/items/1", headers=AUTH)
    problem(response, 405)
    assert response.headers["allow"] == "DELETE, GET, HEAD, OPTIONS"
    response = client.delete("/items")
    problem(response, 405)
    assert response.headers["allow"] == "GET, HEAD, OPTIONS, POST"


def test_head_is_served_by_get_without_a_body(
        make_app: Callable[..., App], serve: Serve) -> None:
    server = serve(make_app(), keepalive_timeout_s=2)
    get = call(server, "/items")
    assert (get.status, get.body) == (200, b'[{"id":1,"name":"one"}]')
    # NOTE: a raw socket: http.client would silently drop bytes sent after a HEAD response.
    with socket.create_connection(server.address, timeout=2) as sock:
        sock.sendall(b"HEAD /items HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and rest == b""
    headers = dict(line.lower().split(": ", 1) for line in head.decode().split("\r\n")[1:])
    assert headers["content-length"] == get.headers["content-length"] == str(len(get.body))
    assert headers["content-type"] == "application/json"


def test_declared_head_and_options_win(client: Client) -> None:
    head = client.head("/probe")
    assert (head.status, head.headers["x-from"], head.body) == (200, "head", b"")
    options = client.options("/probe")
    assert (options.status, options.headers["x-from"]) == (200, "options")
    assert client.get("/probe").headers["x-from"] == "get"


def test_automatic_options_is_204_with_allow(client: Client) -> None:
    response = client.options("/items/3")
    assert response.status == 204 and response.body == b""
    assert response.headers["allow"] == "DELETE, GET, HEAD, OPTIONS"
    assert "x-request-id" in response.headers


def test_trailing_slash_is_not_folded(client: Client) -> None:
    assert client.get("/items").status == 200
    problem(client.get("/items/"), 404)
    problem(client.get("/items/1/", headers=AUTH), 404)


def test_path_parameter_is_decoded_after_matching(client: Client) -> None:
    response = client.get("/files/a%2Fb")
    assert (response.status, response.json()) == (200, {"name": "a/b"})
    assert client.get("/files/caf%C3%A9%20au%20lait").json() == {"name": "café au lait"}
    problem(client.get("/files/a/b"), 404)


def test_absolute_form_request_target_is_routed(
        make_app: Callable[..., App], serve: Serve) -> None:
    server = serve(make_app(), keepalive_timeout_s=2)
    reply = call(server, f"http://127.0.0.1:{server.address[1]}/files/a%2Fb?x=1")
    assert (reply.status, reply.json()) == (200, {"name": "a/b"})


def test_base_path_comes_from_the_first_server_url(make_app: Callable[..., App]) -> None:
    client = Client(make_app(SPECS / "app_base.yaml", {"ping": lambda request: {"pong": True}}))
    assert client.get("/v2/ping").json() == {"pong": True}
    problem(client.get("/ping"), 404)
    paths = client.get("/openapi.json").json()["paths"]
    assert list(paths) == ["/ping"]  # served as written: the base path stays in servers


# -- built-ins and the effective spec --------------------------------------------------------

def test_health_and_ready(make_app: Callable[..., App]) -> None:
    app = make_app(SPECS / "app_base.yaml", {"ping": lambda request: {}})
    client = Client(app)
    health = client.get("/health")
    assert (health.status, health.json()) == (200, {"status": "ok"})
    assert health.headers["content-type"] == "application/json"
    assert (client.get("/ready").status, client.get("/ready").json()) == (200, {"status": "ready"})
    problem(client.post("/health"), 405)
    app.stop(0)
    ready = client.get("/ready")
    assert ready.status == 503 and ready.headers["retry-after"] == "1"


def test_spec_operation_on_health_wins_over_the_builtin(make_app: Callable[..., App]) -> None:
    client = Client(make_app(SPECS / "app_health.yaml",
                             {"own_health": lambda request: {"mine": True}}))
    assert client.get("/health").json() == {"mine": True}


def _refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref" and isinstance(item, str):
                yield item
            else:
                yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


def test_openapi_documents_serve_the_effective_spec(client: Client) -> None:
    as_json = client.get("/openapi.json")
    assert as_json.status == 200 and as_json.headers["content-type"] == "application/json"
    doc = as_json.json()
    as_yaml = client.get("/openapi.yaml")
    assert as_yaml.headers["content-type"].startswith("application/yaml")
    assert yaml.safe_load(as_yaml.body) == doc

    def ref(status: int) -> dict[str, str]:
        return {"$ref": f"#/components/responses/Brrt{status}"}

    paths = doc["paths"]
    get_item = paths["/items/{id}"]["get"]["responses"]  # secured, no body, declares 404
    for status in (400, 401, 403, 500, 503, 504):
        assert get_item[str(status)] == ref(status)
    assert get_item["404"]["description"] == "Declared by the user, left alone"
    assert "413" not in get_item and "415" not in get_item
    create = paths["/items"]["post"]["responses"]  # public, with a body
    for status in (400, 404, 413, 415, 500, 503, 504):
        assert create[str(status)] == ref(status)
    assert "401" not in create and "403" not in create
    assert create["201"]["description"] == "Created"
    listing = paths["/items"]["get"]["responses"]  # public, no body
    assert "404" in listing and not {"401", "403", "413", "415"} & set(listing)
    assert list(paths["/things"]["get"]["responses"]) == ["default"]  # default: untouched
    # Every reference resolves, and the runtime's responses are problem+json.
    for pointer in set(_refs(doc)):
        target: Any = doc
        for part in pointer.removeprefix("#/").split("/"):
            target = target[part]
    problem_503 = doc["components"]["responses"]["Brrt503"]
    assert "application/problem+json" in problem_503["content"]
    assert "Retry-After" in problem_503["headers"]


# -- X-Request-ID and problem documents ----------------------------------------------------

def test_sane_request_id_is_echoed_on_success_and_errors(client: Client) -> None:
    sent = {"X-Request-ID": "abc-123.x:y_z"}
    for response in (client.get("/items", headers=sent), client.get("/nowhere", headers=sent),
                     client.get("/health", headers=sent), client.options("/items", headers=sent),
                     client.get("/items/1", headers=sent)):  # 401: no key
        assert response.headers["x-request-id"] == "abc-123.x:y_z", response


@pytest.mark.parametrize("insane", ["x" * 129, "has space", "bell\x07", "new\nline", "",
                                    "<script>"])
def test_insane_request_id_is_replaced(client: Client, insane: str) -> None:
    response = client.get("/nowhere", headers={"X-Request-ID": insane})
    body = problem(response, 404)
    assert response.headers["x-request-id"] != insane
    assert GENERATED_ID.match(response.headers["x-request-id"])
    assert body["request_id"] == response.headers["x-request-id"]


def test_generated_request_ids_differ(client: Client) -> None:
    ids = {client.get("/items").headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


def test_problem_carries_request_id_and_instance(client: Client) -> None:
    response = client.get("/items/x?y=1", headers={"X-Request-ID": "trace-7", **AUTH})
    body = problem(response, 400)
    assert body["request_id"] == "trace-7"
    assert body["instance"] == "/items/x"
    assert body["type"] == "about:blank" and body["title"] == "Bad Request"
    assert body["errors"][0]["in"] == "path" and body["errors"][0]["name"] == "id"


# -- responses: validation modes, shapes -------------------------------------------------------

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
    assert reply.body == b"".join(_events())


# -- every response is framed ----------------------------------------------------------------

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


# -- request errors ---------------------------------------------------------------------------

def test_400_lists_every_problem_at_once(client: Client) -> None:
    response = client.post("/items?notify=maybe&priority=high",
                           json={"name": 5, "price": -1})
    body = problem(response, 400)
    errors = body["errors"]
    for error in errors:
        assert error["in"] and error["message"] and ("name" in error or "pointer" in error)
    where = {(error["in"], error.get("name") or error.get("pointer")) for error in errors}
    assert {("query", "notify"), ("query", "priority"), ("body", "/name"),
            ("body", "/price")} <= where


def test_malformed_json_is_400_not_missing_body(client: Client) -> None:
    body = problem(client.post("/items", data=b'{"name": ', content_type="application/json"),
                   400)
    messages = " ".join(error["message"] for error in body["errors"])
    assert body["errors"][0]["in"] == "body"
    assert "required" not in messages


def test_missing_body_is_400(client: Client) -> None:
    body = problem(client.post("/items"), 400)
    assert body["errors"] == [{"in": "body", "message": "request body is required"}]


def test_wrong_content_type_is_415(client: Client) -> None:
    body = problem(client.post("/items", data=b"name=x",
                               content_type="application/x-www-form-urlencoded"), 415)
    assert "application/json" in body["detail"]


def test_body_over_the_limit_is_413(make_app: Callable[..., App]) -> None:
    client = Client(make_app(BRRTR_MAX_BODY_BYTES="64"))
    assert client.post("/items", json={"name": "n"}).status == 201
    problem(client.post("/items", json={"name": "n" * 100}), 413)


def test_security_runs_before_parameter_errors(client: Client) -> None:
    response = client.get("/things?count=many")
    problem(response, 401)
    assert "errors" not in response.json()
    assert "www-authenticate" in response.headers
    problem(client.get("/things?count=many", headers={"X-API-Key": "wrong"}), 401)
    body = problem(client.get("/things?count=many", headers=AUTH), 400)
    assert body["errors"][0]["name"] == "count"
    assert client.get("/things?count=3", headers=AUTH).json() == {"count": 3}


def test_handler_http_error_reaches_the_client_as_problem(make_app: Callable[..., App]) -> None:
    def get_item(request: Request) -> dict[str, Any]:
        raise HTTPError(404, f"no item {request.path_params['id']}")

    client = Client(make_app(handlers={**http_handlers(), "get_item": get_item}))
    body = problem(client.get("/items/9", headers=AUTH), 404)
    assert body["detail"] == "no item 9" and body["instance"] == "/items/9"
