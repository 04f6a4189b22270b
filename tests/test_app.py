"""The WSGI app as a user sees it: routing, built-ins, request ids, the problem answers."""
from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from conftest import Serve
from http_app import AUTH, GENERATED_ID, SPECS, call, http_handlers, problem

from brrt_actors import Request
from brrt_actors.app import App
from brrt_actors.testing import Client
from brrt_actors.watching import spec_digest


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


def test_absolute_form_target_gives_the_handler_the_origin_path(
        make_app: Callable[..., App], serve: Serve) -> None:
    seen: list[str] = []

    def get_file(request: Request) -> dict[str, Any]:
        seen.append(request.path)
        return {"name": request.path_params["name"]}

    server = serve(make_app(handlers={**http_handlers(), "get_file": get_file}),
                   keepalive_timeout_s=2)
    reply = call(server, f"http://127.0.0.1:{server.address[1]}/files/a%2Fb?x=1")
    assert reply.status == 200
    assert seen == ["/files/a%2Fb"]


def test_base_path_comes_from_the_first_server_url(make_app: Callable[..., App]) -> None:
    client = Client(make_app(SPECS / "app_base.yaml", {"ping": lambda request: {"pong": True}}))
    assert client.get("/v2/ping").json() == {"pong": True}
    problem(client.get("/ping"), 404)
    paths = client.get("/openapi.json").json()["paths"]
    assert list(paths) == ["/ping"]  # served as written: the base path stays in servers


def test_health_and_ready(make_app: Callable[..., App]) -> None:
    app = make_app(SPECS / "app_base.yaml", {"ping": lambda request: {}})
    client = Client(app)
    health = client.get("/health")
    assert (health.status, health.json()) == (200, {"status": "ok"})
    assert health.headers["content-type"] == "application/json"
    assert (client.get("/ready").status, client.get("/ready").json()) == (200, {
        "status": "ready", "spec": {"title": app.spec.title, "version": app.spec.version,
                                    "sha256": spec_digest(app.spec)}})
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
