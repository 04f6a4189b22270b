"""The HTTP server on real sockets (127.0.0.1, port 0): keep-alive, timeouts, bounds, stop.

Every test taking `start` runs on both engines (httptools and pywsgi); the HTTP details each
engine must get right are in test_engine_conformance.py.
"""
from __future__ import annotations

import http.client
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
import pytest
from conftest import Serve
from gevent import monkey
from gevent.event import Event

from brrt_actors.config import load_settings
from brrt_actors.engine import ENGINES
from brrt_actors.entrypoints.server import HTTPServer
from brrt_actors.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
StartResponse = Callable[..., Any]
Environ = dict[str, Any]


def hello(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]


def echo(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    body = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def start(serve: Serve, engine: str) -> Callable[..., HTTPServer]:
    """Start servers on 127.0.0.1:0 with the engine under test (conftest's `serve`)."""

    def _start(app: Callable[..., Iterable[bytes]] = hello, **options: Any) -> HTTPServer:
        options.setdefault("engine", engine)
        return serve(app, **options)

    return _start


def connect(server: HTTPServer) -> socket.socket:
    sock = socket.create_connection(server.address, timeout=2)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one response with a Content-Length body from a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a full response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, value in
               (line.split(":", 1) for line in lines)}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside the body"
        body += chunk
    return int(status_line.split()[1]), headers, body


def get(sock: socket.socket, target: str = "/") -> tuple[int, dict[str, str], bytes]:
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    return read_response(sock)


def closed_by_peer(sock: socket.socket, within_s: float) -> bool:
    """True when the peer closes `sock` (EOF or reset) within `within_s` seconds."""
    sock.settimeout(within_s)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_answers_and_keeps_the_connection_alive(
        start: Callable[..., HTTPServer]) -> None:
    ports: list[str] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        ports.append(environ["REMOTE_PORT"])
        return hello(environ, start_response)

    server = start(app)
    conn = http.client.HTTPConnection(*server.address, timeout=2)
    try:
        for _ in range(2):
            conn.request("GET", "/")
            response = conn.getresponse()
            assert (response.status, response.read()) == (200, b"hello")
    finally:
        conn.close()
    assert len(ports) == 2 and ports[0] == ports[1]  # one connection served both


def test_listener_given_and_log_line(start: Callable[..., HTTPServer],
                                     caplog: pytest.LogCaptureFixture) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    expected = listener.getsockname()
    with caplog.at_level(logging.INFO, logger="brrt_actors.server"):
        server = start(listener=listener)
    assert server.address == expected
    assert f"listening on http://127.0.0.1:{expected[1]}" in caplog.messages
    with connect(server) as sock:
        assert get(sock)[0] == 200


def test_only_the_pywsgi_engine_warns_of_its_gaps(start: Callable[..., HTTPServer], engine: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="brrt_actors.server"):
        start()
    warnings = [record.getMessage() for record in caplog.records
                if record.levelno == logging.WARNING and "comparison only" in record.getMessage()]
    if engine == "httptools":
        assert warnings == []
        return
    assert len(warnings) == 1
    for gap in ("request smuggling", "Content-Length together with Transfer-Encoding",
                "no header count or size limits (no 431)", "no body limit before the app (no 413)",
                "slowloris", "use the default httptools engine in production"):
        assert gap in warnings[0]


def test_connection_stats_count_open_and_idle_connections(
        start: Callable[..., HTTPServer]) -> None:
    held = Event()

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/hold":
            held.wait(5)
        return hello(environ, start_response)

    server = start(app, max_connections=3)
    assert server.connection_stats() == {"open": 0, "idle": 0, "limit": 3, "evicted": 0}
    with connect(server) as idle, connect(server) as busy:
        assert get(idle)[0] == 200
        busy.sendall(b"GET /hold HTTP/1.1\r\nHost: test\r\n\r\n")
        # The idle one waits for its next request; the busy one is, soon, inside the app.
        expected = {"open": 2, "idle": 1, "limit": 3, "evicted": 0}
        deadline = time.monotonic() + 2
        while server.connection_stats() != expected and time.monotonic() < deadline:
            gevent.sleep(0.01)
        assert server.connection_stats() == expected
        held.set()
        assert read_response(busy)[0] == 200


def test_idle_keepalive_connection_is_closed(start: Callable[..., HTTPServer]) -> None:
    server = start(keepalive_timeout_s=0.2)
    with connect(server) as sock:
        assert get(sock)[0] == 200
        began = time.monotonic()
        assert closed_by_peer(sock, within_s=1.5)
        assert 0.15 < time.monotonic() - began < 1.0
    with connect(server) as silent:  # never sends a request line
        assert closed_by_peer(silent, within_s=1.0)
    assert server.open_connections == 0


def test_slow_but_active_upload_is_not_cut(start: Callable[..., HTTPServer]) -> None:
    server = start(echo, keepalive_timeout_s=0.2)
    with connect(server) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n")
        for byte in b"abcde":  # 5 x 0.1 s: longer than the timeout in all, each gap shorter
            gevent.sleep(0.1)
            sock.sendall(bytes([byte]))
        assert read_response(sock)[::2] == (200, b"abcde")


def test_stalled_upload_is_cut(start: Callable[..., HTTPServer]) -> None:
    server = start(echo, keepalive_timeout_s=0.2)
    with connect(server) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nab")
        sock.settimeout(1.5)
        answer = sock.recv(65536)  # an error answer or EOF, but not a wait forever
        assert not answer.startswith(b"HTTP/1.1 200")
        assert closed_by_peer(sock, within_s=1.0)


def test_slow_but_steady_reader_of_a_large_response_is_not_cut(
        start: Callable[..., HTTPServer]) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB

    def big(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Length", str(len(payload)))])
        return [payload]

    # Small buffers on both ends, so the server's writes wait on our reads.
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)  # accepted ones inherit it
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    server = start(big, keepalive_timeout_s=0.2, listener=listener)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.settimeout(2)
    with sock:
        sock.connect(server.address)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        received = b""
        began = time.monotonic()
        while len(received.partition(b"\r\n\r\n")[2]) < len(payload):
            gevent.sleep(0.02)  # short pauses, but well over the 0.2 s timeout in all
            chunk = sock.recv(65536)
            assert chunk, f"cut after {len(received)} bytes"
            received += chunk
        assert time.monotonic() - began > 0.3
    assert received.partition(b"\r\n\r\n")[2] == payload


def test_pool_bound_holds_the_third_connection(start: Callable[..., HTTPServer]) -> None:
    server = start(max_connections=2, keepalive_timeout_s=5)
    first, second = connect(server), connect(server)
    third = None
    try:
        # Both slots taken by connections in the middle of a request head: nothing idle to
        # close for room (an idle one would be; see test_engine_pool.py), so the third waits.
        first.sendall(b"GET / HTTP/1.1\r\n")
        second.sendall(b"GET / HTTP/1.1\r\n")
        gevent.sleep(0.2)  # the server has read both partial heads
        third = connect(server)
        third.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        third.settimeout(0.3)
        with pytest.raises(TimeoutError):
            third.recv(1)
        first.close()  # frees a slot: accepting resumes and the third is served
        third.settimeout(1.0)
        assert read_response(third)[0] == 200
    finally:
        for sock in (first, second, third):
            if sock is not None:
                sock.close()


def test_raw_uri_keeps_the_percent_encoding(start: Callable[..., HTTPServer]) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        body = f"{environ['RAW_URI']} {environ['PATH_INFO']} {environ['QUERY_STRING']}"
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body.encode()]

    server = start(app)
    with connect(server) as sock:
        status, _, body = get(sock, "/pets/a%2Fb/x%20y?q=%2F")
    assert status == 200
    assert body == b"/pets/a%2Fb/x%20y?q=%2F /pets/a/b/x y q=%2F"


def test_stop_finishes_in_flight_requests_and_refuses_new_ones(
        start: Callable[..., HTTPServer]) -> None:
    entered = Event()
    hook_calls: list[float] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/slow":
            entered.set()
            gevent.sleep(0.3)
        return hello(environ, start_response)

    server = start(app, shutdown_grace_s=2, keepalive_timeout_s=5,
                   on_stop=[hook_calls.append])
    address = server.address
    idle, busy = connect(server), connect(server)
    try:
        assert get(idle)[0] == 200  # now an idle keep-alive connection
        busy.sendall(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        assert entered.wait(timeout=1)
        began = time.monotonic()
        stopping = gevent.spawn(server.stop)
        gevent.sleep(0.05)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(address, timeout=1).close()
        assert closed_by_peer(idle, within_s=0.2)  # idle: closed at once, not after 2 s
        status, headers, body = read_response(busy)
        assert (status, body, headers["connection"]) == (200, b"hello", "close")
        stopping.join(timeout=1.5)
        assert stopping.ready() and stopping.successful()
        assert time.monotonic() - began < 1.0  # the in-flight request, not the grace period
        assert len(hook_calls) == 1 and 1.0 < hook_calls[0] <= 2.0
        assert not server.started and server.open_connections == 0
    finally:
        idle.close()
        busy.close()


def test_stop_never_resets_a_request_that_comes_to_an_idle_connection(
        start: Callable[..., HTTPServer]) -> None:
    server = start(shutdown_grace_s=2)
    with connect(server) as sock:
        assert get(sock)[0] == 200
        gevent.sleep(0.05)  # the connection waits for its next request
        # NOTE: the request is in the server's socket before the stop, not yet read by it:
        # answered (with Connection: close), or the connection is closed before any byte of
        # it is read; never a reset, nor a request cut in the middle.
        sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        server.stop()
        data = sock.recv(65536)  # NOTE: raises ConnectionResetError on a reset
        if data:
            assert data.startswith(b"HTTP/1.1 200 OK\r\n") and b"Connection: close" in data
        assert closed_by_peer(sock, within_s=1)


def test_stop_answers_the_connections_waiting_in_the_listen_backlog(
        start: Callable[..., HTTPServer]) -> None:
    server = start(shutdown_grace_s=2)
    # NOTE: blocking sockets connect and send without letting the server's loop run: the
    # kernel accepted the connections, the server did not yet (as under gunicorn, where
    # the last worker to stop closes a listener that the clients still reach).
    blocking = monkey.get_original("socket", "socket")
    with blocking() as early, blocking() as late:
        for sock in (early, late):
            sock.settimeout(2)
            sock.connect(server.address)
        early.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        stopping = gevent.spawn(server.stop)
        gevent.sleep(0.1)
        late.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")  # its first request, awaited
        stopping.join(2)
        assert stopping.successful()
        for sock in (early, late):
            status, headers, body = read_response(sock)  # NOTE: never a reset
            assert (status, headers["connection"], body) == (200, "close", b"hello")
            assert closed_by_peer(sock, within_s=1)


def test_stop_kills_requests_past_the_grace_period(start: Callable[..., HTTPServer],
                                                  engine: str) -> None:
    entered = Event()
    hook_calls: list[float] = []

    def stuck(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        entered.set()
        gevent.sleep(10)
        return hello(environ, start_response)

    server = start(stuck, on_stop=[hook_calls.append])
    with connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert entered.wait(timeout=1)
        began = time.monotonic()
        first = gevent.spawn(server.stop, grace_s=0.2)
        gevent.sleep(0)
        server.stop(grace_s=0.2)  # a second call waits for the first one to finish
        assert first.ready()
        assert 0.15 < time.monotonic() - began < 1.2
        # A killed request is answered: 503 by the httptools engine, 500 by pywsgi.
        status, headers, _ = read_response(sock)
        assert (status, headers["connection"]) == ((500 if engine == "pywsgi" else 503),
                                                   "close")
        if status == 503:  # NOTE: as every 503 of a stop: another process may answer it
            assert headers["retry-after"] == "1"
        assert closed_by_peer(sock, within_s=0.5)
    assert hook_calls == [0.0]


@dataclass(frozen=True)
class _Settings:
    host: str = "127.0.0.1"
    port: int = 0
    max_connections: int = 8
    keepalive_timeout_s: float = 1.0
    shutdown_grace_s: float = 0.5


@dataclass(frozen=True)
class _EngineSettings(_Settings):
    http_engine: str = "pywsgi"
    max_body_bytes: int = 10


def test_serve_forever_returns_after_stop_and_hooks_run_in_order(
        caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    def failing(remaining_s: float) -> None:
        calls.append("failing")
        raise RuntimeError("hook broke")

    server = HTTPServer.from_settings(hello, _Settings(),
                                      on_stop=[failing, lambda s: calls.append("next")])
    serving = gevent.spawn(server.serve_forever)
    try:
        gevent.sleep(0.05)
        assert server.started
        with connect(server) as sock:
            assert get(sock)[0] == 200
        server.stop()
        serving.join(timeout=1)
        assert serving.successful()
    finally:
        serving.kill()
    assert calls == ["failing", "next"]  # a failing hook does not skip the others
    assert any("on_stop hook" in r.message and r.exc_info for r in caplog.records)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="max_connections") as info:
        HTTPServer(hello, port=0, max_connections=0, keepalive_timeout_s=0, engine="nginx",
                   header_timeout_s=0, max_body_bytes=-1)
    for name in ("keepalive_timeout_s", "BRRTR_HTTP_ENGINE", "header_timeout_s",
                 "max_body_bytes"):
        assert name in str(info.value)


def test_from_settings_chooses_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    assert HTTPServer.from_settings(hello, _Settings()).engine == "httptools"
    assert HTTPServer.from_settings(hello, _EngineSettings()).engine == "pywsgi"
    # The engine comes from the settings only (load_settings reads the variable).
    monkeypatch.setenv("BRRTR_HTTP_ENGINE", "pywsgi")
    assert HTTPServer.from_settings(hello, _Settings()).engine == "httptools"
    settings = load_settings({"BRRTR_HTTP_ENGINE": "pywsgi"}, port=0)
    assert HTTPServer.from_settings(hello, settings).engine == "pywsgi"
    with pytest.raises(ConfigError, match="BRRTR_HTTP_ENGINE"):
        HTTPServer.from_settings(hello, _EngineSettings(http_engine="fast"))


def test_from_settings_passes_the_body_limit() -> None:
    server = HTTPServer.from_settings(hello, _EngineSettings(http_engine="httptools"))
    server.start()
    try:
        with connect(server) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n")
            assert read_response(sock)[0] == 413
    finally:
        server.stop(0)


_SERVE_SCRIPT = """
import logging, sys
from gevent import monkey; monkey.patch_all()
import gevent
from brrt_actors.entrypoints.server import HTTPServer

def app(environ, start_response):
    gevent.sleep(0.4 if environ["PATH_INFO"] == "/slow" else 30)
    start_response("200 OK", [("Content-Length", "4")])
    return [b"done"]

logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
HTTPServer(app, host="127.0.0.1", port=0, shutdown_grace_s=5,
           engine=sys.argv[1]).serve_forever()
print("returned", flush=True)
"""


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


@pytest.fixture
def child(engine: str) -> Iterator[tuple[subprocess.Popen[str], tuple[str, int]]]:
    """A server process running _SERVE_SCRIPT, and the address it listens on."""
    proc = subprocess.Popen([sys.executable, "-c", _SERVE_SCRIPT, engine], cwd=ROOT,
                            env=_child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with gevent.Timeout(5):
            assert proc.stderr is not None
            while not (match := re.search(r"listening on http://127\.0\.0\.1:(\d+)",
                                          proc.stderr.readline())):
                assert proc.poll() is None, "server process ended before listening"
        yield proc, ("127.0.0.1", int(match[1]))
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_finishes_in_flight_request_and_exits_0(
        child: tuple[subprocess.Popen[str], tuple[str, int]], signum: signal.Signals) -> None:
    proc, address = child
    with socket.create_connection(address, timeout=2) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        gevent.sleep(0.15)  # the request is inside the app's 0.4 s sleep
        proc.send_signal(signum)
        status, headers, body = read_response(sock)
    assert (status, body, headers["connection"]) == (200, b"done", "close")
    stdout, stderr = proc.communicate(timeout=3)
    assert proc.returncode == 0, stderr
    assert stdout == "returned\n"
    assert f"{signum.name} received" in stderr


def test_second_signal_stops_at_once(
        child: tuple[subprocess.Popen[str], tuple[str, int]]) -> None:
    proc, address = child
    with socket.create_connection(address, timeout=2) as sock:
        sock.sendall(b"GET /stuck HTTP/1.1\r\nHost: t\r\n\r\n")
        gevent.sleep(0.15)
        proc.send_signal(signal.SIGTERM)
        gevent.sleep(0.15)
        assert proc.poll() is None  # draining: the grace period is 5 s
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=3)
    assert time.monotonic() - began < 1.0
    assert proc.returncode == 0, stderr
    assert "SIGTERM again" in stderr


def test_refuses_to_start_in_an_unpatched_process() -> None:
    script = ("from brrt_actors.entrypoints.server import HTTPServer\n"
              "HTTPServer(lambda e, s: [], host='127.0.0.1', port=0).start()\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=_child_env(),
                          capture_output=True, text=True, timeout=10)
    assert done.returncode != 0
    assert "RuntimeError" in done.stderr
    assert "monkey.patch_all()" in done.stderr and "brrt" in done.stderr


def test_the_engine_refuses_a_body_over_the_apps_own_limit(serve: Serve) -> None:
    from conftest import PETSTORE_ENV

    from brrt_actors import create_app

    app = create_app(ROOT / "specs" / "petstore.yaml", "handlers",
                     environ={**PETSTORE_ENV, "BRRTR_MAX_BODY_BYTES": "100"})
    server = serve(app)
    assert server._engine.max_body_bytes == 100  # type: ignore[attr-defined]
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(b"POST /pets HTTP/1.1\r\nHost: x\r\nX-API-Key: test123\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n")
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"larger than 100 bytes" in answer
