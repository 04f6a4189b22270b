"""A full connection pool on the httptools engine, over real sockets (127.0.0.1, port 0).

A new client gets the slot of the longest-idle keep-alive connection; connections inside a
request are never closed for room. Also: the open files limit raised at start.

Not applicable to the pywsgi engine (it makes the new client wait for a free slot).
"""
from __future__ import annotations

import logging
import resource
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import gevent
import pytest
from conftest import Serve
from gevent.event import Event

from brrt_actors.engine import fdlimit
from brrt_actors.engine.httptools_server import HttptoolsServer
from brrt_actors.entrypoints.server import HTTPServer

StartResponse = Callable[..., Any]
Environ = dict[str, Any]


@pytest.fixture(autouse=True)
def _bounded() -> Iterator[None]:
    # NOTE: no test may hang the suite: each gets 10 s in all.
    with gevent.Timeout(10):
        yield


@pytest.fixture
def held() -> Iterator[dict[str, Event]]:
    """Requests to ``/hold?<name>`` wait until ``held[name]`` is set (all set at teardown)."""
    events: dict[str, Event] = {}
    yield events
    for event in events.values():
        event.set()


@pytest.fixture
def serve_pool(serve: Serve, held: dict[str, Event]) -> Callable[[int], HTTPServer]:
    """Start httptools servers with a pool of the given size and long timeouts."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/hold":
            held.setdefault(environ["QUERY_STRING"], Event()).wait()
        start_response("200 OK", [("Content-Length", "5")])
        return [b"hello"]

    def _serve(size: int) -> HTTPServer:
        return serve(app, engine="httptools", max_connections=size, keepalive_timeout_s=30,
                     header_timeout_s=30, max_body_bytes=1024)

    return _serve


def pool_of(server: HTTPServer) -> HttptoolsServer:
    """The engine behind `server`, whose pool these tests watch."""
    engine = server._engine
    assert isinstance(engine, HttptoolsServer)
    return engine


@pytest.fixture
def connect() -> Iterator[Callable[[HTTPServer], socket.socket]]:
    """Open client connections; all are closed at teardown."""
    socks: list[socket.socket] = []

    def _connect(server: HTTPServer) -> socket.socket:
        socks.append(socket.create_connection(server.address, timeout=2))
        return socks[-1]

    yield _connect
    for sock in socks:
        sock.close()


def send(sock: socket.socket, path: str = "/") -> None:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())


def answer(sock: socket.socket) -> bytes:
    """Read one (small, Content-Length: 5) answer."""
    data = b""
    while not data.endswith(b"hello"):
        chunk = sock.recv(4096)
        assert chunk, f"closed before the whole answer: {data!r}"
        data += chunk
    return data.split(b"\r\n", 1)[0]


def idle_client(sock: socket.socket) -> socket.socket:
    """Make `sock` a keep-alive connection that had one answer and now waits."""
    send(sock)
    assert answer(sock) == b"HTTP/1.1 200 OK"
    return sock


def wait_busy(server: HTTPServer, count: int) -> None:
    """Wait until the server holds `count` connections, none of them idle."""
    engine = pool_of(server)
    while len(engine.connections) != count or engine.idle_connections:
        gevent.sleep(0.01)


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_a_new_client_takes_the_slot_of_the_longest_idle_connection(
        serve_pool: Callable[[int], HTTPServer],
        connect: Callable[[HTTPServer], socket.socket]) -> None:
    server = serve_pool(4)
    oldest, *others = [idle_client(connect(server)) for _ in range(4)]
    assert pool_of(server).evicted_idle == 0  # filling the pool closes nothing
    newcomer = connect(server)
    send(newcomer)
    assert answer(newcomer) == b"HTTP/1.1 200 OK"
    assert closed_by_server(oldest)
    assert pool_of(server).evicted_idle == 1
    for sock in others:  # the others still serve
        send(sock)
        assert answer(sock) == b"HTTP/1.1 200 OK"


def test_connections_inside_a_request_are_never_closed_for_room(
        serve_pool: Callable[[int], HTTPServer], held: dict[str, Event],
        connect: Callable[[HTTPServer], socket.socket]) -> None:
    server = serve_pool(4)
    held["app"] = Event()
    in_app = connect(server)  # the oldest connection, its request in the app
    send(in_app, "/hold?app")
    in_head = connect(server)  # half of a request head sent
    in_head.sendall(b"GET / HTTP/1.1\r\nHost:")
    wait_busy(server, 2)
    idle = [idle_client(connect(server)), idle_client(connect(server))]
    newcomers = []
    for _ in range(2):
        newcomers.append(connect(server))
        send(newcomers[-1])
        assert answer(newcomers[-1]) == b"HTTP/1.1 200 OK"
    assert all(closed_by_server(sock) for sock in idle)
    assert pool_of(server).evicted_idle == 2
    held["app"].set()
    assert answer(in_app) == b"HTTP/1.1 200 OK"
    in_head.sendall(b" t\r\n\r\n")
    assert answer(in_head) == b"HTTP/1.1 200 OK"


def test_with_nothing_idle_the_new_client_waits_until_a_connection_is(
        serve_pool: Callable[[int], HTTPServer], held: dict[str, Event],
        connect: Callable[[HTTPServer], socket.socket]) -> None:
    server = serve_pool(2)
    held["first"], held["second"] = Event(), Event()
    first, second = connect(server), connect(server)
    send(first, "/hold?first")
    send(second, "/hold?second")
    wait_busy(server, 2)
    newcomer = connect(server)
    send(newcomer)
    newcomer.settimeout(0.3)
    with pytest.raises(TimeoutError):
        newcomer.recv(1)  # the backlog holds it: both slots are busy
    held["first"].set()
    assert answer(first) == b"HTTP/1.1 200 OK"  # now idle: the newcomer takes its slot
    newcomer.settimeout(2)
    assert answer(newcomer) == b"HTTP/1.1 200 OK"
    assert closed_by_server(first)
    assert pool_of(server).evicted_idle == 1
    held["second"].set()
    assert answer(second) == b"HTTP/1.1 200 OK"


# --- the open files limit ------------------------------------------------------------------


def test_idle_connections_hold_no_greenlet(
        serve_pool: Callable[[int], HTTPServer],
        connect: Callable[[HTTPServer], socket.socket]) -> None:
    # NOTE: a greenlet costs ~8.5 KB of stacks: idle keep-alive connections are parked on a
    # read watcher, and one greenlet serves them one after another.
    server = serve_pool(20)
    clients = [idle_client(connect(server)) for _ in range(20)]
    engine = pool_of(server)
    while len(engine.idle_connections) < 20:
        gevent.sleep(0.01)
    assert all(conn.greenlet is None for conn in engine.connections)
    assert len(engine._pool) <= 2  # the spare greenlet(s), not one per connection
    assert engine.connection_stats() == {"open": 20, "idle": 20, "limit": 20, "evicted": 0}
    for client in clients:  # woken, each is served again
        send(client)
        assert answer(client) == b"HTTP/1.1 200 OK"


def test_the_socket_is_closed_and_the_slot_freed_when_the_client_leaves(
        serve_pool: Callable[[int], HTTPServer],
        connect: Callable[[HTTPServer], socket.socket]) -> None:
    server = serve_pool(4)
    client = idle_client(connect(server))
    engine = pool_of(server)
    served = next(iter(engine.connections)).sock
    client.close()
    while engine.connections or server.open_connections:
        gevent.sleep(0.01)
    assert served.fileno() == -1


@pytest.fixture
def rlimit(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A fake RLIMIT_NOFILE: ``limits`` is (soft, hard); ``refuse`` makes setrlimit fail."""
    state: dict[str, Any] = {"limits": (1024, 4096), "refuse": False}

    def getrlimit(which: int) -> tuple[int, int]:
        assert which == resource.RLIMIT_NOFILE
        return state["limits"]  # type: ignore[no-any-return]

    def setrlimit(which: int, limits: tuple[int, int]) -> None:
        if state["refuse"]:
            raise ValueError("not allowed")
        state["limits"] = limits

    monkeypatch.setattr(resource, "getrlimit", getrlimit)
    monkeypatch.setattr(resource, "setrlimit", setrlimit)
    return state


def test_the_soft_limit_is_raised_to_fit_the_pool(rlimit: dict[str, Any],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, "brrt_actors.server"):
        assert fdlimit.ensure_fd_limit(2000, headroom=100) == 2100
    assert rlimit["limits"] == (2100, 4096)
    assert "raised the open files limit (RLIMIT_NOFILE) from 1024 to 2100" in caplog.text
    assert fdlimit.ensure_fd_limit(1000) == 2100  # enough already: unchanged


def test_a_hard_limit_too_low_warns_naming_the_setting(rlimit: dict[str, Any],
                                                       caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, "brrt_actors.server"):
        assert fdlimit.ensure_fd_limit(10000) == 4096
    assert rlimit["limits"] == (4096, 4096)
    assert "BRRTR_MAX_CONNECTIONS" in caplog.records[-1].getMessage()
    assert caplog.records[-1].levelno == logging.WARNING


def test_a_refused_raise_warns(rlimit: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    rlimit["refuse"] = True
    with caplog.at_level(logging.INFO, "brrt_actors.server"):
        assert fdlimit.ensure_fd_limit(2000) == 1024
    assert rlimit["limits"] == (1024, 4096)
    messages = [record.getMessage() for record in caplog.records]
    assert "could not raise the open files limit" in messages[0]
    assert "BRRTR_MAX_CONNECTIONS" in messages[1]
