"""The actor stage: one 400 for what validation found, the actor (mailbox, workers, deadline),
and the handler's own errors; over real sockets and in process."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import gevent
import pytest
from conftest import Serve
from gevent.event import Event
from http_app import (
    ACTORS_SPEC,
    AUTH,
    Concurrency,
    assert_socket_problem,
    call,
    http_handlers,
    problem,
)

from brrt_actors import HTTPError, Request
from brrt_actors.app import App
from brrt_actors.testing import Client


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
