"""CORS through real sockets: answers to allowed and other origins, preflights before security,
the headers on every error answer (the app's and the engine's), x-cors per operation, and the
settings refused at start."""
from __future__ import annotations

import http.client
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_SPECS, Serve
from http_app import AUTH, ENV, HTTP_SPEC, Reply, assert_socket_problem, http_handlers

from brrt_actors import Response, build_app, create_app
from brrt_actors.config import load_settings
from brrt_actors.entrypoints.server import HTTPServer
from brrt_actors.errors import ConfigError, SpecError

APP_ORIGIN = "https://app.example"
OTHER_ORIGIN = "https://evil.example"
CORS_ENV = {
    "BRRTR_CORS_ORIGINS": f"{APP_ORIGIN}, http://localhost:3000",
    "BRRTR_CORS_ALLOWED_HEADERS": "Content-Type, X-API-Key",
    "BRRTR_CORS_EXPOSE_HEADERS": "X-Request-ID",
    "BRRTR_CORS_MAX_AGE": "600",
}
CORS_SPEC = TEST_SPECS / "cors.yaml"
MakeApp = Callable[..., Any]


def send(server: HTTPServer, method: str, target: str, headers: dict[str, str] | None = None,
         body: bytes | None = None) -> Reply:
    conn = http.client.HTTPConnection(*server.address, timeout=2)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        return Reply(conn.getresponse())
    finally:
        conn.close()


def cors_headers(reply: Reply) -> dict[str, str]:
    return {name: value for name, value in reply.headers.items()
            if name.startswith("access-control-allow-")}


def preflight(server: HTTPServer, target: str, method: str, origin: str = APP_ORIGIN,
              headers: str | None = None) -> Reply:
    asked = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        asked["Access-Control-Request-Headers"] = headers
    return send(server, "OPTIONS", target, asked)


@pytest.fixture()
def server(make_app: MakeApp, serve: Serve) -> HTTPServer:
    """The HTTP test spec with CORS on for two origins."""
    return serve(make_app(**CORS_ENV))


# -- answers ---------------------------------------------------------------------------------

def test_an_allowed_origin_gets_the_cors_headers(server: HTTPServer) -> None:
    reply = send(server, "GET", "/items", {"Origin": APP_ORIGIN})
    assert reply.status == 200 and reply.json() == [{"id": 1, "name": "one"}]
    assert cors_headers(reply) == {"access-control-allow-origin": APP_ORIGIN}
    assert reply.headers["access-control-expose-headers"] == "X-Request-ID"
    assert "Origin" in reply.headers["vary"]


def test_another_origin_is_served_without_cors_headers(server: HTTPServer) -> None:
    reply = send(server, "GET", "/items", {"Origin": OTHER_ORIGIN})
    assert reply.status == 200 and reply.json() == [{"id": 1, "name": "one"}]
    assert cors_headers(reply) == {}
    assert "access-control-expose-headers" not in reply.headers
    assert reply.headers["vary"] == "Origin"


def test_answers_without_origin_still_vary_on_it(server: HTTPServer) -> None:
    reply = send(server, "GET", "/items")
    assert cors_headers(reply) == {} and reply.headers["vary"] == "Origin"


def test_cors_off_adds_nothing(make_app: MakeApp, serve: Serve) -> None:
    server = serve(make_app())
    reply = send(server, "GET", "/items", {"Origin": APP_ORIGIN})
    assert cors_headers(reply) == {} and "vary" not in reply.headers
    reply = preflight(server, "/items/1", "GET")
    assert reply.status == 204 and cors_headers(reply) == {}


# -- preflights --------------------------------------------------------------------------------

def test_preflight_is_answered_before_authentication(server: HTTPServer) -> None:
    # GET /items/{id} needs the API key; a preflight never carries it.
    reply = preflight(server, "/items/1", "DELETE", headers="x-api-key,content-type")
    assert reply.status == 204, reply
    assert cors_headers(reply) == {
        "access-control-allow-origin": APP_ORIGIN,
        "access-control-allow-methods": "GET, POST, PUT, DELETE, OPTIONS",
        "access-control-allow-headers": "Content-Type, X-API-Key",
    }
    assert reply.headers["access-control-max-age"] == "600"
    assert reply.headers["allow"] == "DELETE, GET, HEAD, OPTIONS"
    assert "Access-Control-Request-Method" in reply.headers["vary"]
    # ... and the request it cleared is then checked as any other
    assert send(server, "DELETE", "/items/1", {"Origin": APP_ORIGIN}).status == 401
    assert send(server, "DELETE", "/items/1", {"Origin": APP_ORIGIN, **AUTH}).status == 204


@pytest.mark.parametrize(("origin", "method", "headers", "refused"), [
    (OTHER_ORIGIN, "GET", None, "the origin is not allowed"),
    (APP_ORIGIN, "PATCH", None, "the method 'PATCH' is not allowed"),
    (APP_ORIGIN, "GET", "x-api-key, x-secret", "request headers not allowed: 'x-secret'"),
])
def test_a_refused_preflight_gets_no_allow_headers(server: HTTPServer, origin: str, method: str,
                                                   headers: str | None, refused: str) -> None:
    reply = preflight(server, "/items/1", method, origin, headers)
    body = assert_socket_problem(reply, 403)
    assert refused in body["detail"]
    assert cors_headers(reply) == {} and "access-control-max-age" not in reply.headers


# -- errors ----------------------------------------------------------------------------------

def test_a_401_carries_the_cors_headers(server: HTTPServer) -> None:
    reply = send(server, "GET", "/items/1", {"Origin": APP_ORIGIN})
    assert_socket_problem(reply, 401)
    assert cors_headers(reply) == {"access-control-allow-origin": APP_ORIGIN}
    assert reply.headers["access-control-expose-headers"] == "X-Request-ID"
    assert cors_headers(send(server, "GET", "/items/1", {"Origin": OTHER_ORIGIN})) == {}


def test_a_400_and_a_404_carry_the_cors_headers(server: HTTPServer) -> None:
    reply = send(server, "POST", "/items", {"Origin": APP_ORIGIN,
                                           "Content-Type": "application/json"}, b"{}")
    assert_socket_problem(reply, 400)
    assert cors_headers(reply) == {"access-control-allow-origin": APP_ORIGIN}
    reply = send(server, "GET", "/nowhere", {"Origin": APP_ORIGIN})
    assert_socket_problem(reply, 404)
    assert cors_headers(reply) == {"access-control-allow-origin": APP_ORIGIN}
    assert "Origin" in reply.headers["vary"]


def test_the_engines_own_answers_carry_the_cors_headers(make_app: MakeApp,
                                                        serve: Serve) -> None:
    server = serve(make_app(**CORS_ENV), max_body_bytes=16)
    reply = send(server, "POST", "/items", {"Origin": APP_ORIGIN,
                                           "Content-Type": "application/json"}, b"x" * 64)
    assert_socket_problem(reply, 413)
    assert cors_headers(reply) == {"access-control-allow-origin": APP_ORIGIN}

    conn = http.client.HTTPConnection(*server.address, timeout=2)
    try:
        conn.putrequest("GET", "/items")
        conn.putheader("Origin", APP_ORIGIN)
        for index in range(120):  # the engine answers 431 past 100 header fields
            conn.putheader(f"X-Filler-{index}", "x")
        conn.endheaders()
        reply = Reply(conn.getresponse())
    finally:
        conn.close()
    assert_socket_problem(reply, 431)
    assert cors_headers(reply) == {"access-control-allow-origin": APP_ORIGIN}

    reply = send(server, "POST", "/items", {"Origin": OTHER_ORIGIN}, b"x" * 64)
    assert_socket_problem(reply, 413)
    assert cors_headers(reply) == {} and reply.headers["vary"] == "Origin"


# -- x-cors per operation ----------------------------------------------------------------------

def _notes_handlers() -> dict[str, Callable[..., Any]]:
    return {"list_notes": lambda request: ["one"],
            "replace_notes": lambda request: Response(204, headers={"X-Count": "1"}),
            "get_private": lambda request: {},
            "widget_options": lambda request: Response(200, headers={"X-From": "handler"}),
            "list_widgets": lambda request: []}


@pytest.fixture()
def notes(apps: list[object], serve: Serve) -> HTTPServer:
    app = create_app(CORS_SPEC, _notes_handlers(),
                     environ={"BRRTR_API_KEY__ApiKey": "k", "BRRTR_CORS_ORIGINS": APP_ORIGIN})
    apps.append(app)
    return serve(app)


def test_an_operation_narrows_its_own_policy(notes: HTTPServer) -> None:
    reply = preflight(notes, "/notes", "PUT", headers="x-trace")
    assert reply.status == 204, reply
    assert cors_headers(reply) == {
        "access-control-allow-origin": APP_ORIGIN,
        "access-control-allow-credentials": "true",
        "access-control-allow-methods": "PUT",
        "access-control-allow-headers": "Content-Type, X-API-Key, X-Trace",
    }
    assert reply.headers["access-control-max-age"] == "60"
    reply = send(notes, "PUT", "/notes", {"Origin": APP_ORIGIN, "X-API-Key": "k",
                                          "Content-Type": "application/json"}, b'["a"]')
    assert reply.status == 204
    assert reply.headers["access-control-allow-credentials"] == "true"
    assert reply.headers["access-control-expose-headers"] == "X-Count"
    # the GET of the same path keeps the app's policy: X-Trace is not allowed there
    assert preflight(notes, "/notes", "GET", headers="x-trace").status == 403


def test_x_cors_false_turns_cors_off_for_the_operation(notes: HTTPServer) -> None:
    reply = send(notes, "GET", "/private", {"Origin": APP_ORIGIN, "X-API-Key": "k"})
    assert reply.status == 200 and cors_headers(reply) == {} and "vary" not in reply.headers
    reply = send(notes, "GET", "/private", {"Origin": APP_ORIGIN})
    assert_socket_problem(reply, 401)
    assert cors_headers(reply) == {}
    assert_socket_problem(preflight(notes, "/private", "GET"), 403)


def test_a_declared_options_operation_leaves_preflights_to_cors(notes: HTTPServer) -> None:
    reply = preflight(notes, "/widgets", "GET")
    assert reply.status == 204 and "x-from" not in reply.headers
    assert cors_headers(reply)["access-control-allow-origin"] == APP_ORIGIN
    reply = send(notes, "OPTIONS", "/widgets", {"X-API-Key": "k"})
    assert reply.status == 200 and reply.headers["x-from"] == "handler"


def test_brrtrouter_config_yaml_turns_cors_on(apps: list[object], serve: Serve) -> None:
    config = TEST_SPECS / "brrtrouter_config.yaml"
    settings = load_settings({}, str(config)).cors
    assert settings.origins == ("http://localhost:3000",)
    assert settings.allowed_methods == ("GET", "POST", "PUT", "DELETE", "OPTIONS")
    assert settings.max_age is None and not settings.allow_credentials
    app = create_app(HTTP_SPEC, http_handlers(), environ=ENV, config_file=config)
    apps.append(app)
    reply = send(serve(app), "GET", "/items", {"Origin": "http://localhost:3000"})
    assert cors_headers(reply) == {"access-control-allow-origin": "http://localhost:3000"}


# -- refused at start --------------------------------------------------------------------------

def test_wildcard_origin_with_credentials_is_refused_naming_the_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        build_app(HTTP_SPEC, {}, mock=True, environ={"BRRTR_CORS_ORIGINS": "*",
                                                     "BRRTR_CORS_ALLOW_CREDENTIALS": "true"})
    assert caught.value.problems[0][0] == "BRRTR_CORS_ALLOW_CREDENTIALS"
    assert "BRRTR_CORS_ORIGINS holds '*'" in caught.value.problems[0][1]
    config = tmp_path / "config.yaml"
    config.write_text("cors:\n  origins: ['*']\n  allow_credentials: true\n")
    with pytest.raises(ConfigError, match=r"cors\.allow_credentials: cannot be true while "
                                          r".*cors\.origins holds '\*'"):
        build_app(HTTP_SPEC, {}, mock=True, environ={}, config_file=config)


def test_an_operation_asking_credentials_of_a_wildcard_policy_is_refused() -> None:
    with pytest.raises(SpecError, match=r"/paths/~1notes/put/x-cors/allowCredentials: cannot "
                                        r"be true while BRRTR_CORS_ORIGINS holds"):
        build_app(CORS_SPEC, _notes_handlers(),
                  environ={"BRRTR_API_KEY__ApiKey": "k", "BRRTR_CORS_ORIGINS": "*"})


@pytest.mark.parametrize(("env", "where"), [
    ({"BRRTR_CORS_ORIGINS": "https://app.example/"}, "BRRTR_CORS_ORIGINS"),
    ({"BRRTR_CORS_ORIGINS": "app.example"}, "BRRTR_CORS_ORIGINS"),
    ({"BRRTR_CORS_MAX_AGE": "soon"}, "BRRTR_CORS_MAX_AGE"),
    ({"BRRTR_CORS_ALLOWED_HEADERS": "X Bad"}, "BRRTR_CORS_ALLOWED_HEADERS"),
])
def test_bad_cors_settings_are_refused(env: dict[str, str], where: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert [name for name, _ in caught.value.problems] == [where]


def test_a_malformed_x_cors_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(CORS_SPEC.read_text().replace("maxAge: 60", "maxAge: -1")
                    .replace("x-cors: inherit", "x-cors: sometimes"))
    with pytest.raises(SpecError) as caught:
        build_app(spec, _notes_handlers(), environ={"BRRTR_API_KEY__ApiKey": "k"})
    assert sorted(where for where, _ in caught.value.problems) == [
        "/paths/~1notes/get/x-cors", "/paths/~1notes/put/x-cors/maxAge"]


def test_wildcard_origin_answers_any_origin(make_app: MakeApp, serve: Serve) -> None:
    server = serve(make_app(BRRTR_CORS_ORIGINS="*"))
    reply = send(server, "GET", "/items", {"Origin": OTHER_ORIGIN})
    assert cors_headers(reply) == {"access-control-allow-origin": "*"}
