"""The app called from threads whose hub does not run it (brrt_actors/thread_bridge.py).

This process is monkey-patched (conftest), so its threads are greenlets: the threaded WSGI
servers run in a subprocess that does NOT patch, serving the pet store; the clients here are
greenlets. A real thread of this patched process (gevent's thread pool) calls the app in
process.
"""
from __future__ import annotations

import http.client
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest
from conftest import PETSTORE_ENV, ROOT, SPECS, TEST_SPECS, Serve

from brrt_actors import create_app
from brrt_actors.app import App
from brrt_actors.thread_bridge import ThreadBridge

KEY = {"X-API-Key": "test123"}
# How long a test may wait for the subprocess to listen, and for any one answer.
START_S = 30.0
ANSWER_S = 10.0

# NOTE: the server process imports nothing of gevent.monkey: its threads are real threads.
SERVER = '''\
import signal
import socketserver
import sys
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from brrt_actors import create_app


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 128


def stop(signum, frame):
    sys.exit(0)


def main():
    kind, spec, handlers = sys.argv[1:4]
    app = create_app(spec, handlers)
    signal.signal(signal.SIGTERM, stop)
    if kind == "threads":
        server = make_server("127.0.0.1", 0, app, ThreadingWSGIServer, QuietHandler)
    else:  # gevent.pywsgi in a process that is not patched either
        from gevent.pywsgi import WSGIServer as GreenletServer
        server = GreenletServer(("127.0.0.1", 0), app, log=None)
        server.init_socket()
    print(server.server_port, flush=True)
    try:
        server.serve_forever()
    finally:
        app.stop(1)
        print("stopped", flush=True)


main()
'''


class Served:
    """A server subprocess and what it printed."""

    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process = process
        self.port = port

    def request(self, method: str, target: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=ANSWER_S)
        try:
            connection.request(method, target, body=body, headers={**KEY, **(headers or {})})
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, \
                response.read()
        finally:
            connection.close()


@pytest.fixture()
def run_server(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start ``SERVER`` in a subprocess: ``run_server(kind, spec, handlers, **env)``."""
    script = tmp_path / "serve_unpatched.py"
    script.write_text(SERVER)
    started: list[subprocess.Popen[str]] = []

    def _run(kind: str, spec: Path, handlers: Path | str, **env: str) -> Served:
        environ = {**os.environ, **PETSTORE_ENV, **env,
                   "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        process = subprocess.Popen([sys.executable, str(script), kind, str(spec), str(handlers)],
                                   cwd=ROOT, env=environ, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        started.append(process)
        with gevent.Timeout(START_S, AssertionError("the server did not start")):
            line = process.stdout.readline() if process.stdout else ""
        if not line.strip().isdigit():
            process.kill()
            raise AssertionError(f"no port: {line!r}\n{process.communicate(timeout=ANSWER_S)[1]}")
        return Served(process, int(line))

    yield _run
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(ANSWER_S)


def stop(served: Served) -> str:
    """SIGTERM the server; return what it printed after its port; it must exit cleanly."""
    served.process.terminate()
    out, err = served.process.communicate(timeout=ANSWER_S)
    assert served.process.returncode == 0, err
    return out


def problem(status: int, headers: dict[str, str], body: bytes, expected: int) -> dict[str, Any]:
    assert status == expected, body
    assert headers["content-type"] == "application/problem+json"
    document: dict[str, Any] = json.loads(body)
    assert document["status"] == expected
    assert document["request_id"] == headers["x-request-id"]
    return document


def test_a_threaded_wsgi_server_serves_the_pet_store(run_server: Callable[..., Served]) -> None:
    served = run_server("threads", SPECS / "petstore.yaml", "handlers",
                        BRRTR_MAX_BODY_BYTES="4096")

    def get_pet() -> None:
        status, headers, body = served.request("GET", "/pets/1")
        assert status == 200, body
        assert json.loads(body)["id"] == 1
        assert headers["x-request-id"]

    def add_pet() -> None:
        status, headers, body = served.request(
            "POST", "/pets", json.dumps({"name": "Rex", "breed": "Poodle"}).encode(),
            {"Content-Type": "application/json"})
        assert status == 201, body
        pet = json.loads(body)
        assert pet["name"] == "Rex" and headers["location"] == f"/pets/{pet['id']}"

    def too_many() -> None:
        document = problem(*served.request("GET", "/pets?limit=500"), 400)
        assert [error["name"] for error in document["errors"]] == ["limit"]

    def missing() -> None:
        document = problem(*served.request("GET", "/no/such/thing"), 404)
        assert document["instance"] == "/no/such/thing"

    def too_large() -> None:
        # NOTE: the body is announced, not sent: the app refuses it unread, and a server
        # closing a socket with unread bytes would reset it before the answer arrives.
        problem(*served.request("POST", "/pets", headers={
            "Content-Type": "application/json", "Content-Length": "100000"}), 413)

    checks = [get_pet, add_pet, too_many, missing, too_large] * 6
    with gevent.Timeout(4 * ANSWER_S, AssertionError("the answers did not come")):
        clients = [gevent.spawn(check) for check in checks]
        gevent.joinall(clients, raise_error=True)
    assert "stopped" in stop(served)


def test_a_stuck_hub_answers_504_not_never(run_server: Callable[..., Served]) -> None:
    # fx_slow sleeps with time.sleep: not patched here, so it stops the whole hub thread and
    # the actor's own deadline cannot fire; the waiting thread gives up after its bound.
    served = run_server("threads", TEST_SPECS / "slow.yaml",
                        ROOT / "tests" / "fixtures_handlers" / "fx_slow.py",
                        BRRTR_HANDLER_DEADLINE_MS="100")
    began = time.monotonic()
    document = problem(*served.request("GET", "/slow?seconds=3"), 504)
    waited = time.monotonic() - began
    assert waited < 3.0, waited  # NOTE: the bound is 0.1 s + 0.05 s (mailbox) + 1 s margin
    assert "did not answer within" in document["detail"]
    # Once the handler is done the hub serves again.
    with gevent.Timeout(ANSWER_S, AssertionError("the hub did not come back")):
        while (answer := served.request("GET", "/fast"))[0] != 200:
            gevent.sleep(0.1)
    assert json.loads(answer[2]) == {"ok": True}
    stop(served)


def test_a_greenlet_server_in_an_unpatched_process_keeps_its_concurrency(
        run_server: Callable[..., Served], tmp_path: Path) -> None:
    # gevent.pywsgi without patching: its greenlets wait for the app's hub thread on their
    # own hub, not on a lock that would stop every other connection.
    handlers = tmp_path / "cooperative.py"
    handlers.write_text("import gevent\n\n\ndef slow(request):\n"
                        "    gevent.sleep(request.query['seconds'])\n"
                        "    return {'slept': request.query['seconds']}\n\n\n"
                        "def fast(request):\n    return {'ok': True}\n")
    served = run_server("pywsgi", TEST_SPECS / "slow.yaml", handlers)
    answers: list[int] = []
    began = time.monotonic()
    with gevent.Timeout(4 * ANSWER_S, AssertionError("the answers did not come")):
        gevent.joinall([gevent.spawn(lambda: answers.append(
            served.request("GET", "/slow?seconds=1")[0])) for _ in range(4)], raise_error=True)
    assert answers == [200] * 4
    # NOTE: one after the other they would take 4 s.
    assert time.monotonic() - began < 2.5
    assert "stopped" in stop(served)


def _environ(path: str) -> dict[str, Any]:
    return {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "",
            "SERVER_NAME": "test", "SERVER_PORT": "80", "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(), "HTTP_X_API_KEY": "test123"}


def _call(app: App, path: str) -> tuple[str, bytes]:
    statuses: list[str] = []
    body = b"".join(app(_environ(path), lambda status, headers, *exc: statuses.append(status)))
    return statuses[0], body


def test_a_real_thread_of_a_patched_process_is_handed_to_the_owners_hub(
        apps: list[object], petstore_env: dict[str, str]) -> None:
    app = create_app(SPECS / "petstore.yaml", "handlers", environ=petstore_env)
    apps.append(app)
    pool = gevent.get_hub().threadpool
    with gevent.Timeout(ANSWER_S):
        status, body = pool.apply(_call, (app, "/pets/1"))
    assert status == "200 OK" and json.loads(body)["id"] == 1


def test_a_greenlet_server_in_a_patched_process_takes_the_direct_path(
        serve: Serve, apps: list[object], petstore_env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> object:
        raise AssertionError("the call went through the bridge")

    monkeypatch.setattr(ThreadBridge, "dispatch", refuse)
    app = create_app(SPECS / "petstore.yaml", "handlers", environ=petstore_env)
    server = serve(app)
    connection = http.client.HTTPConnection(*server.address, timeout=ANSWER_S)
    connection.request("GET", "/pets/1", headers=KEY)
    response = connection.getresponse()
    assert response.status == 200 and json.loads(response.read())["id"] == 1
    connection.close()


def test_a_call_before_start_or_after_stop_from_another_thread_gets_503(
        apps: list[object], petstore_env: dict[str, str]) -> None:
    from brrt_actors.build import build_app

    app = build_app(SPECS / "petstore.yaml", "handlers", environ=petstore_env)
    pool = gevent.get_hub().threadpool
    with gevent.Timeout(ANSWER_S):
        status, body = pool.apply(_call, (app, "/pets/1"))
        assert status.startswith("503") and b"not started" in body
        app.start()
        app.stop(0)
        status, body = pool.apply(_call, (app, "/health"))
    assert status.startswith("503") and b"shutting down" in body
