"""The request-side fast paths give exactly what the full stages give.

The security, parameter and body stages each pick, at build time, a fast path for the usual
request (one API key in a header; path and query parameters read whole; a JSON body) and
fall back to the full stage for anything else. Each test here runs the built stage and the
full code on the same requests and compares everything the request carries afterwards:
values, error items (the 400's body), principals, raised errors, logs and counters.
"""
from __future__ import annotations

import io
import logging
from typing import Any

import pytest

from brrt_actors.config import Settings
from brrt_actors.context import BuildContext
from brrt_actors.errors import HTTPError
from brrt_actors.handler import Request
from brrt_actors.security import ApiKeyProvider
from brrt_actors.spec.model import (
    MISSING,
    MediaType,
    Operation,
    Parameter,
    RequestBody,
    SecurityScheme,
)
from brrt_actors.stages import body, parameters, security
from brrt_actors.stages.body import BodyReader
from brrt_actors.stages.parameters import ParameterDecoder
from brrt_actors.stages.security import SecurityCheck


def operation(**kwargs: Any) -> Operation:
    return Operation("op", "GET", "/things/{id}", "/paths/~1things~1{id}/get", "op", **kwargs)


def context(**kwargs: Any) -> BuildContext:
    return BuildContext(Settings(max_body_bytes=64), {}, {}, **kwargs)


def request(environ: dict[str, Any], raw_path_params: dict[str, str] | None = None) -> Request:
    return Request({"REQUEST_METHOD": "GET", **environ}, operation(), "req-1", "/things",
                   raw_path_params or {})


def outcome(request: Request) -> dict[str, Any]:
    return {"path": request.path_params, "query": request.query,
            "headers": request.header_params, "cookies": request.cookies,
            "problems": request.problems, "body": request.body,
            "principal": request.principal, "claims": request.claims}


# --- parameters ------------------------------------------------------------------------

def param(name: str, location: str, schema: dict[str, Any], *, required: bool = False,
          default: Any = MISSING) -> Parameter:
    return Parameter(name, location, f"/parameters/{name}", required=required,
                     style="simple" if location in ("path", "header") else "form",
                     explode=location != "path", schema=schema, default=default)


PARAMS = [
    param("id", "path", {"type": "integer", "minimum": 1}, required=True),
    param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
          default=10),
    param("name", "query", {"type": "string", "minLength": 2}),
    param("ratio", "query", {"type": "number", "minimum": -1.5, "maximum": 2000}),
    param("page", "query", {"type": "integer", "exclusiveMaximum": 5}),
    param("flag", "query", {"type": "boolean"}, required=True),
]


def full_parameters(params: list[Parameter], req: Request) -> None:
    decoded = ParameterDecoder(params).decode(req.raw_path_params, req.environ)
    req.path_params, req.query = decoded.path, decoded.query
    req.header_params, req.cookies = decoded.headers, decoded.cookies
    if decoded.errors:
        req.add_problems(decoded.errors)


def test_plain_parameters_get_the_fast_path() -> None:
    stage = parameters.build(operation(parameters=PARAMS), context())
    assert stage is not None and stage.__name__ == "plain_parameter_stage"
    # A header, a cookie or a styled parameter keeps the full stage.
    for other in (param("X-Trace", "header", {"type": "string"}),
                  param("session", "cookie", {"type": "string"}),
                  param("tags", "query", {"type": "array", "items": {"type": "string"}}),
                  param("either", "query", {"type": ["integer", "object"]})):
        stage = parameters.build(operation(parameters=[*PARAMS, other]), context())
        assert stage is not None and stage.__name__ == "parameter_stage"


@pytest.mark.parametrize("raw_id", [
    "12345", "1", "0", "-5", "+7", "007", "abc", "", "1.0", "1e3", "%31%32", "%ff", "%",
    "12%20", "\uff11\uff12", "\xc3\xa9", "9" * 5000, "\ud800"])
@pytest.mark.parametrize("query", [
    "flag=true", "flag=0&limit=5", "flag=TRUE&limit=5&limit=7", "flag=1&limit=0",
    "flag=1&limit=abc", "flag=1&limit=", "limit=5", "", "flag=yes", "flag=1&name=a+b",
    "flag=1&name=%E2%82%AC%20x", "flag=1&name=%ff", "flag=1&name=x", "flag=1&ratio=1e400",
    "flag=1&ratio=-2.5e3", "flag=1&ratio=nan", "fl%61g=1", "flag=1&&&", "flag=1&limit=1%2B1",
    "flag=1&name=caf\xc3\xa9", "flag=1&name=\xe9t\xe9", "flag=1&ratio=-1.5", "flag=1&ratio=-1.6",
    "flag=1&ratio=2000.0", "flag=1&ratio=2e3", "flag=1&ratio=2000.01", "flag=1&page=4",
    "flag=1&page=5", "flag=1&limit=100&ratio=-0", "flag=1&limit=101"])
def test_plain_parameters_match_the_full_stage(raw_id: str, query: str) -> None:
    stage = parameters.build(operation(parameters=PARAMS), context())
    assert stage is not None
    environ = {"QUERY_STRING": query}
    fast, full = request(environ, {"id": raw_id}), request(environ, {"id": raw_id})
    stage(fast)
    full_parameters(PARAMS, full)
    assert outcome(fast) == outcome(full)


@pytest.mark.parametrize("cookie", [None, "", "a=1; b=%31; a=2", "junk; c=\"q\""])
def test_every_cookie_still_reaches_the_handler(cookie: str | None) -> None:
    stage = parameters.build(operation(parameters=PARAMS), context())
    assert stage is not None
    environ = {"QUERY_STRING": "flag=1"} | ({} if cookie is None else {"HTTP_COOKIE": cookie})
    fast, full = request(environ, {"id": "3"}), request(environ, {"id": "3"})
    stage(fast)
    full_parameters(PARAMS, full)
    assert outcome(fast) == outcome(full)


@pytest.mark.parametrize("raw_id", ["12345", "0", "abc", "%31", "\xc3\xa9", "%ff", ""])
@pytest.mark.parametrize("environ", [{}, {"HTTP_COOKIE": "a=1"}, {"QUERY_STRING": "x=1"}])
def test_one_path_parameter(raw_id: str, environ: dict[str, Any]) -> None:
    params = PARAMS[:1]
    stage = parameters.build(operation(parameters=params), context())
    assert stage is not None and stage.__name__ == "path_parameter_stage"
    fast, full = request(environ, {"id": raw_id}), request(environ, {"id": raw_id})
    stage(fast)
    full_parameters(params, full)
    assert outcome(fast) == outcome(full)


def test_a_missing_path_value_and_defaults() -> None:
    params = [param("id", "path", {"type": "string"}, required=True),
              param("page", "query", {"type": "integer"}, default=1)]
    stage = parameters.build(operation(parameters=params), context())
    assert stage is not None and stage.__name__ == "plain_parameter_stage"
    for raw_params in ({}, {"id": "x"}, {"id": ""}):
        fast, full = request({}, raw_params), request({}, raw_params)
        stage(fast)
        full_parameters(params, full)
        assert outcome(fast) == outcome(full)


# --- security --------------------------------------------------------------------------

KEY = "s3cr3t-key"


class Counter:
    def __init__(self) -> None:
        self.failures: list[tuple[str, int]] = []

    def auth_failure_counter(self, schemes: list[str]) -> Any:
        return lambda status: self.failures.extend((name, status) for name in schemes)


def api_key_stage(location: str = "header", *, requirements: Any = None,
                  keys: tuple[str, ...] = (KEY,)) -> tuple[Any, Counter]:
    scheme = SecurityScheme("Key", "apiKey", "/components/securitySchemes/Key",
                            location=location, parameter_name="X-API-Key")
    counter = Counter()
    ctx = context(providers={"Key": ApiKeyProvider(scheme, keys)}, metrics=counter)
    stage = security.build(operation(security=requirements or [{"Key": []}]), ctx)
    return stage, counter


def test_a_single_header_key_gets_the_fast_path() -> None:
    stage, _ = api_key_stage()
    assert stage.__name__ == "api_key_stage"
    # Scopes, or an AND of two schemes first, keep the full check.
    stage, _ = api_key_stage(requirements=[{"Key": ["read"]}])
    assert stage.__name__ == "counted_security_stage"


@pytest.mark.parametrize("keys", [(KEY,), ("other-key", KEY)])
@pytest.mark.parametrize("location", ["header", "query", "cookie"])
def test_a_valid_key_gives_the_principal_the_full_check_gives(location: str,
                                                                keys: tuple[str, ...]) -> None:
    stage, counter = api_key_stage(location, keys=keys)
    environ = {"header": {"HTTP_X_API_KEY": KEY}, "query": {"QUERY_STRING": f"X-API-Key={KEY}"},
               "cookie": {"HTTP_COOKIE": f"X-API-Key={KEY}"}}[location]
    req = request(environ)
    stage(req)
    assert req.principal is not None and req.principal.scheme == "Key"
    check = SecurityCheck([{"Key": []}], {"Key": ApiKeyProvider(
        SecurityScheme("Key", "apiKey", "", location=location, parameter_name="X-API-Key"),
        keys)})
    full = check(environ, "req-1")
    assert full is not None and (full.scheme, full.claims) == (req.principal.scheme,
                                                               req.principal.claims)
    assert counter.failures == []


@pytest.mark.parametrize("presented", [None, "", "wrong-key-0123456789", KEY + "x", KEY[:-1],
                                       "s3cr3t-k\xe9y", "\udcff"])
def test_a_missing_or_wrong_key_is_answered_logged_and_counted_as_before(
        presented: str | None, caplog: pytest.LogCaptureFixture) -> None:
    stage, counter = api_key_stage()
    environ = {} if presented is None else {"HTTP_X_API_KEY": presented}
    with (caplog.at_level(logging.INFO, logger="brrt_actors.security"),
          pytest.raises(HTTPError) as raised):
        stage(request(environ))
    assert raised.value.status == 401
    assert raised.value.detail == "missing or invalid credentials"
    if presented:
        assert raised.value.headers["WWW-Authenticate"] == (
            'ApiKey realm="Key", name="X-API-Key", in="header", error="invalid_token"')
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 1 and "req-1" in lines[0] and "invalid_key" in lines[0]
    else:
        assert raised.value.headers["WWW-Authenticate"] == (
            'ApiKey realm="Key", name="X-API-Key", in="header"')
        assert not caplog.records
    assert counter.failures == [("Key", 401)]


# --- body ------------------------------------------------------------------------------

NEW_PET = {"type": "object", "required": ["name"], "additionalProperties": False,
           "properties": {"name": {"type": "string", "minLength": 1},
                          "status": {"enum": ["available", "sold"]}}}


def body_operation(content: dict[str, dict[str, Any] | None], required: bool = True
                   ) -> Operation:
    media = {ct: MediaType(ct, f"/requestBody/content/{ct}", schema=schema)
             for ct, schema in content.items()}
    return operation(request_body=RequestBody("/requestBody", required, media))


def body_environ(data: bytes, content_type: str | None = "application/json",
                 length: str | None = "auto") -> dict[str, Any]:
    environ: dict[str, Any] = {"REQUEST_METHOD": "POST", "wsgi.input": io.BytesIO(data),
                               "wsgi.input_terminated": True}
    if content_type is not None:
        environ["CONTENT_TYPE"] = content_type
    if length is not None:
        environ["CONTENT_LENGTH"] = str(len(data)) if length == "auto" else length
    return environ


def run_body(stage: Any, environ: dict[str, Any]) -> dict[str, Any]:
    req = request(environ)
    try:
        stage(req)
    except HTTPError as ex:
        return {"status": ex.status, "detail": ex.detail, "headers": ex.headers}
    return outcome(req)


def full_body(op: Operation) -> Any:
    assert op.request_body is not None
    read = BodyReader(op.request_body, 64).read

    def stage(req: Request) -> None:
        req.body, problems = read(req.environ)
        if problems:
            req.add_problems(problems)

    return stage


@pytest.mark.parametrize(("data", "content_type", "length"), [
    (b'{"name":"Tom","status":"sold"}', "application/json", "auto"),
    (b'{"name":"Tom"}', "Application/JSON; charset=utf-8", "auto"),
    (b'{"name":"Tom"}', "application/merge-patch+json", "auto"),
    (b'{"name":""}', "application/json", "auto"),
    (b'{"name":1,"extra":true,"status":"x"}', "application/json", "auto"),
    (b'{"name":"Tom"', "application/json", "auto"),
    (b'{"name":"\\ud800"}', "application/json", "auto"),
    (b'{"name":"Tom","n":1e400}', "application/json", "auto"),
    (b'[' * 2000 + b']' * 2000, "application/json", "auto"),
    (b'{"name":"Tom"}', "application/json", "40"),
    (b'{"name":"Tom"}', "application/json", "0"),
    (b'{"name":"Tom"}', "application/json", "-1"),
    (b'{"name":"Tom"}', "application/json", " 14"),
    (b'{"name":"Tom"}', "application/json", "\uff11\uff14"),
    (b'{"name":"Tom"}', "application/json", None),
    (b'{"name":"' + b"x" * 80 + b'"}', "application/json", "auto"),
    (b'{"name":"Tom"}', "text/plain", "auto"),
    (b'{"name":"Tom"}', None, "auto"),
    (b"", "application/json", "auto"),
])
def test_a_json_body_matches_the_full_stage(data: bytes, content_type: str | None,
                                            length: str | None) -> None:
    op = body_operation({"application/json": NEW_PET, "text/plain": {"type": "string"}})
    stage = body.build(op, context())
    assert stage is not None and stage.__name__ == "json_body_stage"
    assert (run_body(stage, body_environ(data, content_type, length))
            == run_body(full_body(op), body_environ(data, content_type, length)))


def test_a_json_body_without_a_schema_is_not_validated() -> None:
    op = body_operation({"application/json": None}, required=False)
    stage = body.build(op, context())
    assert stage is not None and stage.__name__ == "json_body_stage"
    for data in (b'{"any": [1, 2]}', b"nope", b"NaN"):
        assert (run_body(stage, body_environ(data))
                == run_body(full_body(op), body_environ(data)))


def test_bodies_without_json_keep_the_full_stage() -> None:
    stage = body.build(body_operation({"text/plain": {"type": "string"}}), context())
    assert stage is not None and stage.__name__ == "body_stage"
