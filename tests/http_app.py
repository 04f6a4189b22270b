"""The HTTP test spec's handlers and the helpers the app and stage tests share.

`tests/specs/app_http.yaml` (routing, bodies, responses) and `tests/specs/app_actors.yaml`
(actors) are served by the handlers below; the `make_app` and `client` fixtures of
conftest.py build apps from them.
"""
from __future__ import annotations

import http.client
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import ujson

from brrt_actors import HTTPError, Request, Response
from brrt_actors.entrypoints.server import HTTPServer
from brrt_actors.testing import TestResponse

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

def events() -> Iterator[bytes]:
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
        "get_events": lambda request: Response(200, events(),
                                               headers={"Cache-Control": "no-cache"}),
        "probe_get": lambda request: Response(200, b"from get", headers={"X-From": "get"}),
        "probe_head": lambda request: Response(200, headers={"X-From": "head"}),
        "probe_options": lambda request: Response(200, headers={"X-From": "options"}),
        "get_answer": lambda request: answers[request.query.get("mode", "valid")](),
    }


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
