"""HTTP/1.1 conformance of both engines over real sockets (127.0.0.1, port 0).

Every test runs on the httptools engine and on gevent.pywsgi. Where pywsgi cannot do what a
check asks (431, slowloris, 413 before reading, some malformed shapes) its case is marked
xfail(strict): the httptools engine must pass everything.
"""
from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest
from conftest import ENTRIES, Serve, entry
from gevent.event import Event
from http_app import AUTH

from brrt_actors.engine import ENGINES
from brrt_actors.entrypoints.server import HTTPServer

StartResponse = Callable[..., Any]
Environ = dict[str, Any]
App = Callable[[Environ, StartResponse], Iterable[bytes]]


def _pywsgi_cannot(reason: str) -> Any:
    """Engine parameters where only pywsgi is expected to fail."""
    return [pytest.param("httptools"),
            pytest.param("pywsgi", marks=pytest.mark.xfail(strict=True, reason=reason))]


@pytest.fixture(autouse=True)
def _bounded() -> Iterator[None]:
    # NOTE: no test may hang the suite: each gets 10 s in all.
    with gevent.Timeout(10):
        yield


# --- apps -------------------------------------------------------------------------------

def hello(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]


def echo(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Answer with the request body, read to its end."""
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(len(body)))])
    return [body]


def path_echo(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    body = environ["PATH_INFO"].encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


# --- servers and a small client -----------------------------------------------------------

class Client:
    """A raw socket with a read buffer: several answers may come in one packet."""

    def __init__(self, server: HTTPServer, timeout: float = 2.0) -> None:
        self.sock = socket.create_connection(server.address, timeout=timeout)
        self.buffer = b""

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _more(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def read_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            assert self._more(), f"closed before {marker!r}: {self.buffer!r}"
        data, _, self.buffer = self.buffer.partition(marker)
        return data + marker

    def read_exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            assert self._more(), f"closed inside a body: {self.buffer!r}"
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def head(self) -> tuple[int, dict[str, str]]:
        status_line, *lines = self.read_until(b"\r\n\r\n")[:-4].decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(status_line.split()[1]), headers

    def response(self, *, head_request: bool = False) -> tuple[int, dict[str, str], bytes]:
        status, headers = self.head()
        if head_request or status in (204, 304):
            return status, headers, b""
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while size := int(self.read_until(b"\r\n")[:-2], 16):
                body += self.read_exactly(size)
                assert self.read_exactly(2) == b"\r\n"
            assert self.read_exactly(2) == b"\r\n"
            return status, headers, body
        if "content-length" in headers:
            return status, headers, self.read_exactly(int(headers["content-length"]))
        while self._more():
            pass
        body, self.buffer = self.buffer, b""
        return status, headers, body

    def request(self, target: str = "/", method: str = "GET",
                extra: str = "") -> tuple[int, dict[str, str], bytes]:
        self.send(f"{method} {target} HTTP/1.1\r\nHost: t\r\n{extra}\r\n".encode())
        return self.response(head_request=method == "HEAD")

    def closed(self, within_s: float = 1.0) -> bool:
        """True when the server closes (EOF or reset) within `within_s`, nothing unread."""
        self.sock.settimeout(within_s)
        try:
            return self.sock.recv(1) == b"" and not self.buffer
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False


def problem(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    document: dict[str, Any] = json.loads(body)
    assert document["status"] == status and document["title"] and document["type"]
    assert document["detail"] and headers["x-request-id"] == document["request_id"]
    return document


# --- the basics ---------------------------------------------------------------------------

@pytest.mark.parametrize("engine", ENGINES)
def test_simple_get(serve: Serve, engine: str) -> None:
    server = serve(hello, engine=engine)
    conn = http.client.HTTPConnection(*server.address, timeout=2)
    try:
        conn.request("GET", "/x?y=1")
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"hello")
        assert response.getheader("Content-Type") == "text/plain"
        assert response.getheader("Date")
    finally:
        conn.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_environ_per_pep_3333(serve: Serve, engine: str) -> None:
    seen: list[Environ] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        seen.append(dict(environ))
        return hello(environ, start_response)

    server = serve(app, engine=engine)
    with Client(server) as client:
        assert client.request("/a%20b/c?q=%2F&r", extra="X-Thing: 1\r\nX-Thing: 2\r\n"
                              "Cookie: a=1\r\nCookie: b=2\r\n")[0] == 200
    environ = seen[0]
    assert environ["REQUEST_METHOD"] == "GET"
    assert environ["PATH_INFO"] == "/a b/c" and environ["SCRIPT_NAME"] == ""
    assert environ["QUERY_STRING"] == "q=%2F&r"
    assert environ["RAW_URI"] == "/a%20b/c?q=%2F&r"
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert environ["HTTP_HOST"] == "t" and environ["HTTP_X_THING"] == "1,2"
    assert environ["HTTP_COOKIE"] == "a=1; b=2"
    assert environ["REMOTE_ADDR"] == "127.0.0.1" and environ["REMOTE_PORT"].isdigit()
    assert environ["SERVER_PORT"] == str(server.address[1])
    assert environ["wsgi.url_scheme"] == "http" and environ["wsgi.version"] == (1, 0)
    assert environ["wsgi.input"].read() == b""


@pytest.mark.parametrize("engine", ENGINES)
def test_keep_alive_serves_two_requests_on_one_connection(
        serve: Serve, engine: str) -> None:
    ports: list[str] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        ports.append(environ["REMOTE_PORT"])
        return hello(environ, start_response)

    server = serve(app, engine=engine)
    with Client(server) as client:
        for _ in range(2):
            status, headers, body = client.request()
            assert (status, body) == (200, b"hello") and "connection" not in headers
    assert len(ports) == 2 and ports[0] == ports[1]


@pytest.mark.parametrize("engine", ENGINES)
def test_pipelined_requests_are_answered_in_order(
        serve: Serve, engine: str) -> None:
    server = serve(path_echo, engine=engine)
    with Client(server) as client:
        client.send(b"".join(b"GET /%d HTTP/1.1\r\nHost: t\r\n\r\n" % i for i in (1, 2, 3)))
        assert [client.response()[2] for _ in range(3)] == [b"/1", b"/2", b"/3"]


@pytest.mark.parametrize("engine", ENGINES)
def test_content_length_body(serve: Serve, engine: str) -> None:
    server = serve(echo, engine=engine)
    with Client(server) as client:
        client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello")
        gevent.sleep(0.05)
        client.send(b" world")
        assert client.response()[::2] == (200, b"hello world")
        assert client.request()[0] == 200  # the connection is still in step


@pytest.mark.parametrize("engine", ENGINES)
def test_chunked_request_body(serve: Serve, engine: str) -> None:
    server = serve(echo, engine=engine)
    with Client(server) as client:
        client.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"5\r\nhello\r\n")
        gevent.sleep(0.05)
        client.send(b"6;ext=1\r\n world\r\n0\r\n\r\n")
        assert client.response()[::2] == (200, b"hello world")
        assert client.request()[0] == 200


@pytest.mark.parametrize("engine", ENGINES)
def test_input_readline_and_iteration(serve: Serve, engine: str) -> None:
    def lines(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        stream = environ["wsgi.input"]
        first = stream.readline()
        rest = list(stream)
        body = b"|".join([first, *rest])
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    server = serve(lines, engine=engine)
    with Client(server) as client:
        client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 8\r\n\r\na\nbb\nccc")
        assert client.response()[2] == b"a\n|bb\n|ccc"


# --- Expect: 100-continue -----------------------------------------------------------------

@pytest.mark.parametrize("engine", ENGINES)
def test_100_continue_is_sent_when_the_app_reads(
        serve: Serve, engine: str) -> None:
    server = serve(echo, engine=engine)
    with Client(server) as client:
        client.send(b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                    b"Content-Length: 4\r\n\r\n")
        assert client.read_until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        client.send(b"body")
        assert client.response()[::2] == (200, b"body")


@pytest.mark.parametrize("engine", ENGINES)
def test_100_continue_is_not_sent_when_the_app_answers_first(
        serve: Serve, engine: str) -> None:
    def deny(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("401 Unauthorized", [("Content-Length", "2")])
        return [b"no"]

    server = serve(deny, engine=engine)
    with Client(server) as client:
        client.send(b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                    b"Content-Length: 4\r\n\r\n")
        status, _, body = client.response()
        assert (status, body) == (401, b"no")
        assert b"100 Continue" not in client.buffer


# --- HTTP/1.0 and Connection ------------------------------------------------------------

@pytest.mark.parametrize("engine", ENGINES)
def test_http_1_0_closes_by_default(serve: Serve, engine: str) -> None:
    server = serve(hello, engine=engine)
    with Client(server) as client:
        client.send(b"GET / HTTP/1.0\r\n\r\n")  # NOTE: without Host: HTTP/1.0 may omit it
        assert client.response()[::2] == (200, b"hello")
        assert client.closed()


@pytest.mark.parametrize("engine", ENGINES)
def test_http_1_0_keeps_alive_when_asked(serve: Serve, engine: str) -> None:
    server = serve(hello, engine=engine)
    with Client(server) as client:
        for _ in range(2):
            client.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            status, headers, body = client.response()
            assert (status, body) == (200, b"hello")
            assert headers["connection"].lower() == "keep-alive"


@pytest.mark.parametrize("engine", ENGINES)
def test_connection_close_from_the_client(serve: Serve, engine: str) -> None:
    server = serve(hello, engine=engine)
    with Client(server) as client:
        status, headers, _ = client.request(extra="Connection: close\r\n")
        assert status == 200
        assert client.closed()
    if engine == "httptools":  # NOTE: RFC 9112 9.6 says SHOULD; pywsgi does not
        assert headers["connection"] == "close"


@pytest.mark.parametrize("engine", ENGINES)
def test_connection_close_from_the_app(serve: Serve, engine: str) -> None:
    def closing(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Length", "3"), ("Connection", "close")])
        return [b"bye"]

    server = serve(closing, engine=engine)
    with Client(server) as client:
        status, headers, body = client.request()
        assert (status, headers["connection"], body) == (200, "close", b"bye")
        assert client.closed()


@pytest.mark.parametrize("engine", ENGINES)
def test_head_sends_no_body_and_keeps_the_length(
        serve: Serve, engine: str) -> None:
    server = serve(hello, engine=engine)  # hello answers HEAD with its body and Content-Length: 5
    with Client(server) as client:
        status, headers, _ = client.request(method="HEAD")
        assert (status, headers["content-length"]) == (200, "5")
        status, _, body = client.request()  # no stray body bytes came before this answer
        assert (status, body) == (200, b"hello")


# --- limits -----------------------------------------------------------------------------

@pytest.mark.parametrize("engine", ENGINES)
def test_long_request_target_gets_414(serve: Serve, engine: str) -> None:
    server = serve(hello, engine=engine)
    with Client(server) as client:
        client.send(b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
        status, headers, _ = client.response()
        assert (status, headers.get("connection")) == (414, "close")
        assert client.closed()


@pytest.mark.parametrize("engine", _pywsgi_cannot("pywsgi has no header limit of its own"))
def test_too_many_headers_get_431(serve: Serve, engine: str) -> None:
    server = serve(hello, engine=engine)
    with Client(server) as client:
        many = "".join(f"X-H{i}: {i}\r\n" for i in range(150))
        client.send(f"GET / HTTP/1.1\r\nHost: t\r\n{many}\r\n".encode())
        status, headers, body = client.response()
        assert status == 431
        assert "header" in problem(status, headers, body)["detail"]
        assert client.closed()


@pytest.mark.parametrize("engine", _pywsgi_cannot("pywsgi has no header limit of its own"))
def test_huge_header_gets_431(serve: Serve, engine: str) -> None:
    server = serve(hello, engine=engine)
    with Client(server) as client:
        client.send(b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"b" * 100_000 + b"\r\n\r\n")
        status, headers, body = client.response()
        assert status == 431
        problem(status, headers, body)


@pytest.mark.parametrize("engine", _pywsgi_cannot("pywsgi has no header limit of its own"))
def test_unterminated_huge_header_is_refused_without_buffering_it(
        serve: Serve, engine: str) -> None:
    server = serve(hello, engine=engine)
    with Client(server) as client:
        client.send(b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: ")
        with pytest.raises(OSError):  # NOTE: refused: the server resets while we still send
            for _ in range(64):
                client.send(b"b" * 65536)
        status, _, _ = client.response()
        assert status == 431


@pytest.mark.parametrize("engine", _pywsgi_cannot("pywsgi leaves body limits to the app"))
def test_content_length_over_the_limit_gets_413_before_reading(
        serve: Serve, engine: str) -> None:
    called: list[bool] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        called.append(True)
        return echo(environ, start_response)

    server = serve(app, engine=engine, max_body_bytes=1000)
    with Client(server) as client:
        client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n")
        status, headers, body = client.response()  # no body byte was sent
        assert status == 413
        assert "1000" in problem(status, headers, body)["detail"]
        assert client.closed()
    assert not called


@pytest.mark.parametrize("engine", _pywsgi_cannot("pywsgi leaves body limits to the app"))
def test_chunked_body_over_the_limit_gets_413(
        serve: Serve, engine: str) -> None:
    server = serve(echo, engine=engine, max_body_bytes=1000)
    with Client(server) as client:
        client.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + b"400\r\n" + b"x" * 1024 + b"\r\n0\r\n\r\n")
        status, headers, body = client.response()
        assert status == 413
        problem(status, headers, body)


# --- malformed requests: 400 and close ------------------------------------------------------

_MALFORMED = {
    "bad request line": b"GARBAGE\r\n\r\n",
    "no HTTP version": b"GET /\r\n\r\n",
    "space in the target": b"GET /a b HTTP/1.1\r\nHost: t\r\n\r\n",
    "bad chunk size": (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"zz\r\nhello\r\n0\r\n\r\n"),
    "CR injected in a header": b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\rX-B: b\r\n\r\n",
    "LF injected in a header": b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\nX-B: b\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n",
    "space before the colon": b"GET / HTTP/1.1\r\nHost : t\r\n\r\n",
    "CL and TE": (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    "TE and CL": (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                  b"Content-Length: 4\r\n\r\n0\r\n\r\n"),
    "TE not chunked": (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n"
                       b"hello"),
    "duplicate differing CL": (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
                               b"Content-Length: 5\r\n\r\nhello"),
    "CL not a number": b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4x\r\n\r\nabcd",
}
# What gevent.pywsgi lets through (it answers 200, or 500 once the app reads the body).
_PYWSGI_ACCEPTS = {"no HTTP version", "bad chunk size", "CR injected in a header",
                   "LF injected in a header", "obs-fold", "space before the colon",
                   "CL and TE", "TE and CL", "TE not chunked", "duplicate differing CL"}


def _malformed_cases() -> Iterator[Any]:
    for name, data in _MALFORMED.items():
        for engine in ENGINES:
            marks = (pytest.mark.xfail(strict=True, reason="gevent.pywsgi accepts it")
                     if engine == "pywsgi" and name in _PYWSGI_ACCEPTS else ())
            yield pytest.param(engine, data, id=f"{engine}-{name}", marks=marks)


@pytest.mark.parametrize(("engine", "data"), list(_malformed_cases()))
def test_malformed_request_gets_400_and_close(serve: Serve, engine: str,
                                              data: bytes) -> None:
    called: list[bool] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        called.append(True)
        return echo(environ, start_response)

    server = serve(app, engine=engine)
    with Client(server) as client:
        client.send(data)
        status, headers, _ = client.response()
        assert status == 400
        assert headers.get("connection") == "close"
        assert client.closed()
    assert not called  # NOTE: the engine answers, the app never sees such a request


@pytest.mark.parametrize("engine", _pywsgi_cannot("pywsgi lets the smuggled request through"))
def test_smuggled_request_is_never_served(serve: Serve,
                                          engine: str) -> None:
    server = serve(path_echo, engine=engine)
    with Client(server) as client:
        client.send(b"POST /front HTTP/1.1\r\nHost: t\r\nContent-Length: 35\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                    b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n")
        status, _, _ = client.response()
        assert status == 400
        assert client.closed()


# --- timeouts ---------------------------------------------------------------------------

@pytest.mark.parametrize("engine", ENGINES)
def test_idle_keep_alive_connection_is_closed_after_the_timeout(
        serve: Serve, engine: str) -> None:
    server = serve(hello, engine=engine, keepalive_timeout_s=0.3)
    with Client(server) as client:
        assert client.request()[0] == 200
        began = time.monotonic()
        assert client.closed(within_s=2)
        assert 0.25 < time.monotonic() - began < 1.5


@pytest.mark.parametrize("engine", _pywsgi_cannot("pywsgi bounds each read, not the head"))
def test_slowloris_header_dribble_is_cut_off(serve: Serve,
                                             engine: str) -> None:
    server = serve(hello, engine=engine, keepalive_timeout_s=1, header_timeout_s=0.5)
    with Client(server) as client:
        client.send(b"GET / HTTP/1.1\r\nHost: t\r\n")
        began = time.monotonic()

        def dribble() -> None:
            for _ in range(30):  # 3 s in all, each gap well under the idle timeout
                gevent.sleep(0.1)
                client.send(b"X: y\r\n")

        dribbler = gevent.spawn(dribble)
        try:
            client.sock.settimeout(3)
            status = client.response()[0]  # what comes back, before the dribble is over
        finally:
            dribbler.kill()
        assert status == 408
        assert time.monotonic() - began < 1.5
        assert client.closed(within_s=1)
    gevent.sleep(0.05)
    assert server.open_connections == 0


@pytest.mark.parametrize("engine", _pywsgi_cannot("pywsgi bounds each read, not the head"))
def test_slow_head_gets_408(serve: Serve, engine: str) -> None:
    server = serve(hello, engine=engine, keepalive_timeout_s=1, header_timeout_s=0.3)
    with Client(server) as client:
        client.send(b"GET / HTTP/1.1\r\nHost: t\r\n")
        status, headers, body = client.response()
        assert status == 408
        problem(status, headers, body)


@pytest.mark.parametrize("engine", ENGINES)
def test_stalled_body_is_cut(serve: Serve, engine: str) -> None:
    server = serve(echo, engine=engine, keepalive_timeout_s=0.3)
    with Client(server) as client:
        client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        client.sock.settimeout(2)
        answer = client.sock.recv(65536)  # an error answer or EOF, not a wait forever
        assert not answer.startswith(b"HTTP/1.1 200")


# --- answers ----------------------------------------------------------------------------

@pytest.mark.parametrize("engine", ENGINES)
def test_streamed_answer_is_chunked_and_flushed_as_it_comes(
        serve: Serve, engine: str) -> None:
    go_on = Event()

    def stream(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        yield b"data: one\n\n"
        go_on.wait(5)  # the test reads the first chunk before letting the app finish
        yield b"data: two\n\n"

    server = serve(stream, engine=engine)
    with Client(server) as client:
        client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        status, headers = client.head()
        assert (status, headers["transfer-encoding"]) == (200, "chunked")
        size = int(client.read_until(b"\r\n")[:-2], 16)
        assert client.read_exactly(size + 2) == b"data: one\n\n\r\n"
        assert not go_on.is_set()
        go_on.set()
        assert client.read_until(b"0\r\n\r\n").endswith(b"data: two\n\n\r\n0\r\n\r\n")
        assert client.request()[0] == 200  # still in step


@pytest.mark.parametrize("engine", ENGINES)
def test_streamed_answer_to_http_1_0_ends_with_the_close(
        serve: Serve, engine: str) -> None:
    def stream(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])
        yield b"one "
        yield b"two"

    server = serve(stream, engine=engine)
    with Client(server) as client:
        client.send(b"GET / HTTP/1.0\r\n\r\n")
        status, headers, body = client.response()
        assert (status, body) == (200, b"one two")
        assert "transfer-encoding" not in headers


@pytest.mark.parametrize("engine", ENGINES)
def test_body_list_without_length_gets_one(serve: Serve,
                                           engine: str) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"all at once"]

    server = serve(app, engine=engine)
    with Client(server) as client:
        status, headers, body = client.request()
        assert (status, headers["content-length"], body) == (200, "11", b"all at once")


@pytest.mark.parametrize("engine", ENGINES)
def test_write_callable(serve: Serve, engine: str) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        write = start_response("200 OK", [("Content-Length", "11")])
        write(b"hello ")
        return [b"world"]

    server = serve(app, engine=engine)
    with Client(server) as client:
        assert client.request()[::2] == (200, b"hello world")
        assert client.request()[0] == 200


@pytest.mark.parametrize("engine", ENGINES)
def test_exc_info_replaces_headers_not_yet_sent(serve: Serve,
                                                engine: str) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Length", "2")])
        try:
            raise ValueError("late")
        except ValueError as ex:
            start_response("502 Bad Gateway", [("Content-Length", "4")],
                           (type(ex), ex, ex.__traceback__))
        return [b"oops"]

    server = serve(app, engine=engine)
    with Client(server) as client:
        assert client.request()[::2] == (502, b"oops")


@pytest.mark.parametrize("engine", ENGINES)
def test_app_error_gets_500_and_close(serve: Serve, engine: str,
                                      caplog: pytest.LogCaptureFixture) -> None:
    def broken(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        raise RuntimeError("bug")

    server = serve(broken, engine=engine)
    with Client(server) as client:
        status, headers, _ = client.request()
        assert (status, headers.get("connection")) == (500, "close")
    assert any(record.exc_info for record in caplog.records)


@pytest.mark.parametrize("engine", ENGINES)
def test_header_injection_by_the_app_is_refused(serve: Serve,
                                                engine: str) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("X-Echo", "a\r\nSet-Cookie: evil=1"),
                                  ("Content-Length", "2")])
        return [b"ok"]

    server = serve(app, engine=engine)
    with Client(server) as client:
        status, headers, _ = client.request()
        assert status == 500 and "set-cookie" not in headers


class _CountingSocket:
    """The engine's socket, counting the calls that write to it (and to the real socket
    under gevent's, which the httptools engine writes to first)."""

    def __init__(self, sock: Any, writes: list[bytes]) -> None:
        self._inner = sock
        self.writes = writes
        raw = getattr(sock, "_sock", None)
        if raw is not None:
            self._sock = _CountingSocket(raw, writes)

    def send(self, data: bytes, *flags: int) -> int:
        self.writes.append(bytes(data))
        return int(self._inner.send(data, *flags))

    def sendall(self, data: bytes, *flags: int) -> None:
        self.writes.append(bytes(data))
        self._inner.sendall(data, *flags)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _wrap_accepted(server: HTTPServer, wrap: Callable[[Any], Any]) -> None:
    # NOTE: both engines are gevent StreamServers: `handle` gets each accepted socket.
    engine = server._engine
    handle = engine.handle  # type: ignore[attr-defined]
    engine.handle = lambda sock, address: handle(wrap(sock), address)  # type: ignore[attr-defined]


@pytest.mark.parametrize("engine", _pywsgi_cannot("pywsgi writes head and body apart"))
def test_small_answer_is_one_write(serve: Serve, engine: str) -> None:
    writes: list[bytes] = []
    server = serve(hello, engine=engine, before_start=lambda s: _wrap_accepted(
        s, lambda sock: _CountingSocket(sock, writes)))
    with Client(server) as client:
        for _ in range(3):
            assert client.request()[::2] == (200, b"hello")
            assert len(writes) == 1, writes  # status line, headers and body together
            assert writes.pop().endswith(b"\r\n\r\nhello")


@pytest.mark.parametrize("engine", ENGINES)
def test_tcp_nodelay_is_set(serve: Serve, engine: str) -> None:
    accepted: list[Any] = []

    def remember(sock: Any) -> Any:
        accepted.append(sock)
        return sock

    server = serve(hello, engine=engine, before_start=lambda s: _wrap_accepted(s, remember))
    with Client(server) as client:
        assert client.request()[0] == 200
        assert accepted[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


@pytest.mark.parametrize("engine", ENGINES)
def test_graceful_stop_finishes_an_in_flight_request(
        serve: Serve, engine: str) -> None:
    entered = Event()

    def slow(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        entered.set()
        gevent.sleep(0.3)
        return hello(environ, start_response)

    server = serve(slow, engine=engine, shutdown_grace_s=3)
    with Client(server) as client:
        client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert entered.wait(1)
        stopping = gevent.spawn(server.stop)
        status, headers, body = client.response()
        assert (status, headers["connection"], body) == (200, "close", b"hello")
        assert client.closed()
        stopping.join(2)
        assert stopping.successful()


@pytest.mark.parametrize("engine", _pywsgi_cannot("pywsgi reads one request at a time"))
def test_graceful_stop_answers_the_pipelined_requests_already_read(
        serve: Serve, engine: str) -> None:
    entered = Event()

    def slow_first(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/first":
            entered.set()
            gevent.sleep(0.2)
        return path_echo(environ, start_response)

    server = serve(slow_first, engine=engine, shutdown_grace_s=3)
    with Client(server) as client:
        client.send(b"GET /first HTTP/1.1\r\nHost: t\r\n\r\n"
                    b"GET /second HTTP/1.1\r\nHost: t\r\n\r\n")
        assert entered.wait(1)
        stopping = gevent.spawn(server.stop)
        status, headers, body = client.response()
        assert (status, body, headers.get("connection")) == (200, b"/first", None)
        status, headers, body = client.response()
        assert (status, body, headers["connection"]) == (200, b"/second", "close")
        assert client.closed()
        stopping.join(2)
        assert stopping.successful()


# --- more of HTTP/1.1 -------------------------------------------------------------------

@pytest.mark.parametrize("engine", ENGINES)
def test_large_body_read_in_pieces(serve: Serve, engine: str) -> None:
    payload = bytes(range(256)) * 1024  # 256 KiB: several packets

    def pieces(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        stream, parts = environ["wsgi.input"], []
        while part := stream.read(10_000):
            parts.append(part)
        body = b"".join(parts)
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    server = serve(pieces, engine=engine)
    with Client(server) as client:
        client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(payload)
                    + payload)
        assert client.response()[2] == payload


@pytest.mark.parametrize("engine", ENGINES)
def test_unread_body_in_hand_does_not_break_the_next_request(
        serve: Serve, engine: str) -> None:
    server = serve(path_echo, engine=engine)  # never reads the body
    with Client(server) as client:
        client.send(b"POST /1 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
                    b"GET /2 HTTP/1.1\r\nHost: t\r\n\r\n")
        assert client.response()[2] == b"/1"
        assert client.response()[2] == b"/2"


@pytest.mark.parametrize("engine", _pywsgi_cannot("pywsgi keeps the connection open"))
def test_unread_body_still_to_come_closes_the_connection(
        serve: Serve, engine: str) -> None:
    server = serve(path_echo, engine=engine)  # never reads the body
    with Client(server) as client:
        client.send(b"POST /1 HTTP/1.1\r\nHost: t\r\nContent-Length: 500000\r\n\r\nabc")
        status, headers, _ = client.response()
        assert (status, headers.get("connection")) == (200, "close")


@pytest.mark.parametrize("engine", ENGINES)
def test_pipelined_body_then_request(serve: Serve, engine: str) -> None:
    server = serve(echo, engine=engine)
    with Client(server) as client:
        client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
                    b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"2\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n"
                    b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert [client.response()[2] for _ in range(3)] == [b"abc", b"de", b""]


@pytest.mark.parametrize("engine", ENGINES)
def test_good_request_then_malformed_one(serve: Serve, engine: str) -> None:
    server = serve(path_echo, engine=engine)
    with Client(server) as client:
        client.send(b"GET /ok HTTP/1.1\r\nHost: t\r\n\r\nGARBAGE\r\n\r\n")
        assert client.response()[::2] == (200, b"/ok")
        assert client.response()[0] == 400
        assert client.closed()


@pytest.mark.parametrize("engine", ENGINES)
def test_header_bytes_are_latin_1_and_underscore_names_dropped(
        serve: Serve, engine: str) -> None:
    seen: list[Environ] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        seen.append(dict(environ))
        return hello(environ, start_response)

    server = serve(app, engine=engine)
    with Client(server) as client:
        client.send("GET / HTTP/1.1\r\nHost: t\r\nX-Name: é\r\nX_Forwarded_For: evil\r\n"
                    "X-Forwarded-For: good\r\n\r\n".encode())
        assert client.response()[0] == 200
    assert seen[0]["HTTP_X_NAME"] == "é".encode().decode("latin-1")
    assert seen[0]["HTTP_X_FORWARDED_FOR"] == "good"


@pytest.mark.parametrize("engine", ENGINES)
def test_absolute_form_target(serve: Serve, engine: str) -> None:
    seen: list[Environ] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        seen.append(dict(environ))
        return hello(environ, start_response)

    server = serve(app, engine=engine)
    with Client(server) as client:
        assert client.request("http://example.com/pets?x=1")[0] == 200
    assert seen[0]["RAW_URI"] == "http://example.com/pets?x=1"
    assert seen[0]["QUERY_STRING"] == "x=1"


@pytest.mark.parametrize("engine", ENGINES)
def test_no_body_statuses_send_no_body(serve: Serve, engine: str) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response(environ["PATH_INFO"][1:] + " X", [])
        return []

    server = serve(app, engine=engine)
    with Client(server) as client:
        for status in (204, 304):
            got, headers, _ = client.request(f"/{status}")
            assert got == status and "transfer-encoding" not in headers
        assert client.request("/200")[::2] == (200, b"")


@pytest.mark.parametrize("engine", _pywsgi_cannot("pywsgi runs the whole stream for HEAD"))
def test_head_with_a_streamed_body(serve: Serve, engine: str) -> None:
    closed = Event()

    def stream(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        try:
            while True:  # an endless event stream: HEAD must not wait for its end
                yield b"data: x\n\n"
                gevent.sleep(0.01)
        finally:
            closed.set()

    server = serve(stream, engine=engine)
    with Client(server) as client:
        client.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert client.head()[0] == 200
        assert closed.wait(2)
        client.sock.settimeout(0.2)
        with pytest.raises(TimeoutError):
            client.sock.recv(1)  # no body bytes follow


@pytest.mark.parametrize("engine", ENGINES)
def test_iterable_close_is_called(serve: Serve, engine: str) -> None:
    closed: list[bool] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            return iter([b"a", b"b"])

        def close(self) -> None:
            closed.append(True)

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Length", "2")])
        return Body()

    server = serve(app, engine=engine)
    with Client(server) as client:
        assert client.request()[::2] == (200, b"ab")
        assert client.request()[0] == 200
    assert closed == [True, True]


@pytest.mark.parametrize("engine", _pywsgi_cannot("pywsgi reuses the connection"))
def test_body_shorter_than_its_content_length_ends_the_connection(
        serve: Serve, engine: str) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Length", "10")])
        return [b"short"]

    server = serve(app, engine=engine)
    with Client(server) as client:
        client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        status, headers = client.head()
        assert (status, headers["connection"]) == (200, "close")
        assert client.read_exactly(5) == b"short"
        assert client.closed()


@pytest.mark.parametrize("engine", ENGINES)
def test_streamed_body_with_content_length_is_not_chunked(
        serve: Serve, engine: str) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Length", "6")])
        yield b"abc"
        yield b"def"

    server = serve(app, engine=engine)
    with Client(server) as client:
        status, headers, body = client.request()
        assert (status, body) == (200, b"abcdef") and "transfer-encoding" not in headers
        assert client.request()[0] == 200


@pytest.mark.parametrize("engine", ENGINES)
def test_failure_after_the_head_aborts_the_connection(
        serve: Serve, engine: str) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])
        yield b"partial"
        raise RuntimeError("bug in the middle")

    server = serve(app, engine=engine)
    with Client(server) as client:
        client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert client.head()[0] == 200
        while client._more():  # no terminating chunk: the client can tell it is cut
            pass
        assert not client.buffer.endswith(b"0\r\n\r\n")


@pytest.mark.parametrize("engine", _pywsgi_cannot("pywsgi takes the second call"))
def test_start_response_twice_without_exc_info_is_an_error(
        serve: Serve, engine: str) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])
        start_response("201 Created", [])
        return [b""]

    server = serve(app, engine=engine)
    with Client(server) as client:
        assert client.request()[0] == 500


@pytest.mark.parametrize("engine", ENGINES)
def test_exc_info_after_the_head_reraises(serve: Serve,
                                          engine: str) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        write = start_response("200 OK", [])
        write(b"begun")
        try:
            raise ValueError("late")
        except ValueError as ex:
            start_response("500 Oops", [], (type(ex), ex, ex.__traceback__))
        return [b"never"]

    server = serve(app, engine=engine)
    with Client(server) as client:
        client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert client.head()[0] == 200
        while client._more():
            pass
        assert b"never" not in client.buffer


@pytest.mark.parametrize("engine", _pywsgi_cannot("pywsgi serves HTTP/2.0 as 1.x"))
def test_http_2_request_line_gets_505(serve: Serve, engine: str) -> None:
    server = serve(hello, engine=engine)
    with Client(server) as client:
        client.send(b"GET / HTTP/2.0\r\nHost: t\r\n\r\n")
        assert client.response()[0] == 505
        assert client.closed()


@pytest.mark.parametrize("engine", _pywsgi_cannot("pywsgi passes any method to the app"))
def test_unknown_method_after_a_good_request_gets_501(serve: Serve, engine: str) -> None:
    server = serve(path_echo, engine=engine)
    with Client(server) as client:
        client.send(b"GET /ok HTTP/1.1\r\nHost: t\r\n\r\nBREW /pot HTTP/1.1\r\nHost: t\r\n\r\n")
        assert client.response()[::2] == (200, b"/ok")
        status, headers, body = client.response()
        assert status == 501
        problem(status, headers, body)
        assert client.closed()


@pytest.mark.parametrize("engine", _pywsgi_cannot("pywsgi answers 400"))
def test_http_2_prior_knowledge_gets_505_not_a_parse_error(serve: Serve, engine: str) -> None:
    server = serve(hello, engine=engine)
    with Client(server) as client:
        # NOTE: the preface, then the SETTINGS frame an HTTP/2 client sends right after it
        client.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        status, headers, body = client.response()
        assert status == 505
        assert "HTTP/1.1" in problem(status, headers, body)["detail"]
        assert client.closed()


@pytest.mark.parametrize("engine", ENGINES)
def test_upgrade_is_answered_as_a_plain_request(serve: Serve,
                                                engine: str) -> None:
    server = serve(path_echo, engine=engine)
    with Client(server) as client:
        client.send(b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\n"
                    b"Upgrade: websocket\r\n\r\n")
        assert client.response()[::2] == (200, b"/ws")


@pytest.mark.parametrize("engine", ENGINES)
def test_client_leaving_inside_the_body(serve: Serve, engine: str) -> None:
    reads: list[str] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        try:
            environ["wsgi.input"].read(100)
        except OSError as ex:
            reads.append(type(ex).__name__)
        else:
            reads.append("short")
        return hello(environ, start_response)

    server = serve(app, engine=engine)
    with Client(server) as client:
        client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc")
        gevent.sleep(0.1)
    gevent.sleep(0.2)
    assert reads  # the app learnt of it (an OSError, or a short read), nothing hung
    assert server.open_connections == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_empty_lines_do_not_keep_an_idle_connection_open(
        serve: Serve, engine: str) -> None:
    server = serve(hello, engine=engine, keepalive_timeout_s=0.4)
    with Client(server) as client:
        began = time.monotonic()
        with pytest.raises(OSError):
            for _ in range(20):  # 2 s of empty lines, each gap well under the timeout
                client.send(b"\r\n")
                gevent.sleep(0.1)
        assert time.monotonic() - began < 1.5


@pytest.mark.parametrize("engine", ENGINES)
def test_date_and_server_of_the_app_are_kept(serve: Serve,
                                             engine: str) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        headers = [("Content-Length", "2"), ("Server", "mine")]
        if environ["PATH_INFO"] == "/dated":
            headers.append(("Date", "Thu, 01 Jan 2099 00:00:00 GMT"))
        start_response("200 OK", headers)
        return [b"ok"]

    server = serve(app, engine=engine)
    with Client(server) as client:
        client.send(b"GET /dated HTTP/1.1\r\nHost: t\r\n\r\n")
        head = client.read_until(b"\r\n\r\n").lower()
        assert head.count(b"\r\ndate: ") == 1 and b"date: thu, 01 jan 2099" in head
        assert head.count(b"\r\nserver: ") == 1 and b"server: mine" in head
        client.read_exactly(2)
        status, headers, _ = client.request("/")
        assert (status, headers["server"]) == (200, "mine") and headers["date"]


@pytest.mark.parametrize("engine", _pywsgi_cannot("pywsgi sends the app's framing headers"))
def test_hop_by_hop_headers_of_the_app_are_replaced(serve: Serve,
                                                    engine: str) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Transfer-Encoding", "chunked"), ("Keep-Alive", "x"),
                                  ("Connection", "keep-alive")])
        return [b"plain"]

    server = serve(app, engine=engine)
    with Client(server) as client:
        status, headers, body = client.request()
        assert (status, headers["content-length"], body) == (200, "5", b"plain")
        assert not {"transfer-encoding", "keep-alive", "connection"} & set(headers)


@pytest.mark.parametrize("engine", _pywsgi_cannot("pywsgi sends what the app yields"))
def test_streamed_body_longer_than_its_content_length_is_cut(
        serve: Serve, engine: str) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Length", "3")])
        yield b"ab"
        yield b"cdef"

    server = serve(app, engine=engine)
    with Client(server) as client:
        client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        client.head()
        assert client.read_exactly(3) == b"abc"
        assert client.closed()


@pytest.mark.parametrize("engine", _pywsgi_cannot("pywsgi reuses the connection"))
def test_streamed_body_shorter_than_its_content_length_ends_the_connection(
        serve: Serve, engine: str) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Length", "6")])
        yield b"ab"

    server = serve(app, engine=engine)
    with Client(server) as client:
        client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        client.head()
        assert client.read_exactly(2) == b"ab"
        assert client.closed()


@pytest.mark.parametrize("engine", ENGINES)
def test_head_of_a_list_body_without_length(serve: Serve,
                                            engine: str) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])
        return [b"four"]

    server = serve(app, engine=engine)
    with Client(server) as client:
        status, headers, _ = client.request(method="HEAD")
        assert (status, headers.get("content-length")) == (200, "4")
        assert client.request()[::2] == (200, b"four")


@pytest.mark.parametrize("engine", ENGINES)
def test_input_readlines_with_a_hint(serve: Serve, engine: str) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        stream = environ["wsgi.input"]
        first = stream.readlines(3)  # NOTE: the hint is advisory (pywsgi reads all)
        rest = stream.readlines()
        assert first
        body = b"".join(first + rest)
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    server = serve(app, engine=engine)
    with Client(server) as client:
        client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n\r\na\nbb\nccc\n")
        assert client.response()[::2] == (200, b"a\nbb\nccc\n")


@pytest.mark.parametrize("engine", ENGINES)
def test_app_without_start_response_gets_500(serve: Serve,
                                             engine: str) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        return [b"no head"]

    server = serve(app, engine=engine)
    with Client(server) as client:
        assert client.request()[0] == 500


@pytest.mark.parametrize("engine", _pywsgi_cannot("pywsgi leaves body limits to the app"))
def test_chunked_body_read_as_it_comes_is_still_limited(
        serve: Serve, engine: str) -> None:
    def drain(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        total = 0
        while chunk := environ["wsgi.input"].read(100):
            total += len(chunk)
        body = str(total).encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    server = serve(drain, engine=engine, max_body_bytes=1000)
    with Client(server) as client:
        client.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        with contextlib.suppress(OSError):  # NOTE: refused while we still send
            for _ in range(20):
                client.send(b"64\r\n" + b"x" * 100 + b"\r\n")
                gevent.sleep(0.01)
        assert client.response()[0] == 413


# --- every runtime answer is a whole problem: the engine's and the app's ---------------------

_GENERATED_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{8}\Z")
_PROBLEMS_SPEC = Path(__file__).resolve().parents[1] / "specs" / "engine_problems.yaml"
_MANY = "".join(f"X-H{i}: {i}\r\n" for i in range(150))
_SLOW_HEAD = {"header_timeout_s": 0.3, "keepalive_timeout_s": 1}
# name: (what the client sends, server options, status, instance (None: the target was never
# parsed), the client's id echoed (None: a new one), why pywsgi cannot ("": it can)).
_ENGINE_ANSWERS: dict[str, tuple[bytes, dict[str, Any], int, str | None, str | None, str]] = {
    "400 garbage": (b"GARBAGE\r\nX-Request-ID: junk-1\r\n\r\n", {}, 400, None, None, ""),
    "400 bad header": (b"GET /bad?x=1 HTTP/1.1\r\nX-Request-ID: bad-1\r\nX-A: a\rX-B: b\r\n\r\n",
                       {}, 400, "/bad", "bad-1", "gevent.pywsgi accepts it"),
    "408 slow head": (b"GET /slow-head HTTP/1.1\r\nX-Request-ID: slow-1\r\nHost: t\r\n", _SLOW_HEAD,
                      408, "/slow-head", "slow-1", "pywsgi bounds each read, not the head"),
    "408 slow request line": (b"GET /slow-li", _SLOW_HEAD, 408, None, None,
                              "pywsgi bounds each read, not the head"),
    "413 Content-Length": (b"POST /big?x=1 HTTP/1.1\r\nX-Request-ID: big-1\r\n"
                           b"Content-Length: 1000000\r\n\r\n", {"max_body_bytes": 1000},
                           413, "/big", "big-1", "pywsgi leaves body limits to the app"),
    "413 chunked": (b"POST /chunks HTTP/1.1\r\nHost: t\r\nX-Request-ID: chunks-1\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n400\r\n" + b"x" * 1024 + b"\r\n",
                    {"max_body_bytes": 1000}, 413, "/chunks", "chunks-1",
                    "pywsgi leaves body limits to the app"),
    "414 long target": (b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nX-Request-ID: long-1\r\n\r\n",
                        {}, 414, None, None, ""),
    "431 too many headers": (f"GET /many HTTP/1.1\r\nX-Request-ID: many-1\r\n{_MANY}\r\n"
                             .encode(), {}, 431, "/many", "many-1",
                             "pywsgi has no header limit of its own"),
    "505 HTTP/2.0": (b"GET /v2 HTTP/2.0\r\nX-Request-ID: v2-1\r\n\r\n", {}, 505, "/v2", "v2-1",
                     "pywsgi serves HTTP/2.0 as 1.x"),
    "505 HTTP/2 preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", {}, 505, None, None,
                           "pywsgi answers 400"),
    "505 HTTP/3.0": (b"GET /v3 HTTP/3.0\r\nX-Request-ID: v3-1\r\n\r\n", {}, 505, None, None,
                     "pywsgi answers 400"),
    "400 no Host": (b"GET /nohost?x=1 HTTP/1.1\r\nX-Request-ID: nohost-1\r\n\r\n", {}, 400,
                    "/nohost", "nohost-1", "pywsgi does not check Host"),
    "400 two Hosts": (b"GET /hosts HTTP/1.0\r\nHost: a\r\nX-Request-ID: hosts-1\r\nHost: b\r\n\r\n",
                      {}, 400, "/hosts", "hosts-1", "pywsgi does not check Host"),
    "501 unknown method": (b"BREW /pot HTTP/1.1\r\nHost: t\r\nX-Request-ID: brew-1\r\n\r\n", {},
                           501, None, None, "pywsgi passes any method to the app"),
    "501 WebDAV method": (b"PROPFIND /dav HTTP/1.1\r\nHost: t\r\nX-Request-ID: dav-1\r\n\r\n",
                          {}, 501, "/dav", "dav-1", "pywsgi passes any method to the app"),
}


def _engine_answer_cases() -> Iterator[Any]:
    for name, (*_, pywsgi_cannot) in _ENGINE_ANSWERS.items():
        for engine in ENGINES:
            marks = (pytest.mark.xfail(strict=True, reason=pywsgi_cannot)
                     if engine == "pywsgi" and pywsgi_cannot else ())
            yield pytest.param(engine, name, id=f"{engine}-{name}", marks=marks)


def whole_problem(status: int, headers: dict[str, str], body: bytes,
                  instance: str | None) -> dict[str, Any]:
    """Check a runtime answer has every member of the problem and return the document."""
    assert headers["content-type"] == "application/problem+json", (status, body)
    document: dict[str, Any] = json.loads(body)
    assert document["status"] == status
    assert document["type"] and document["title"] and document["detail"]
    assert headers["x-request-id"] == document["request_id"]
    assert document.get("instance") == instance
    return document


@pytest.mark.parametrize(("engine", "case"), list(_engine_answer_cases()))
def test_engine_answers_are_whole_problems(serve: Serve, engine: str, case: str) -> None:
    data, options, status, instance, client_id, _ = _ENGINE_ANSWERS[case]
    server = serve(echo, engine=engine, **options)
    with Client(server) as client:
        client.send(data)
        got, headers, body = client.response()
        assert got == status
        assert headers["connection"] == "close"
        document = whole_problem(status, headers, body, instance)
        if client_id is None:  # never parsed, or not trusted: a new id
            assert _GENERATED_ID.match(document["request_id"]), document
        else:  # the client's sane X-Request-ID, echoed by the engine
            assert document["request_id"] == client_id
        assert client.closed()


@pytest.mark.parametrize("engine", ENGINES)
def test_engine_answer_keeps_the_request_id_the_app_chose(serve: Serve, engine: str) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("X-Request-ID", "app-7")])
        raise RuntimeError("bug after choosing the id")

    server = serve(app, engine=engine)
    with Client(server) as client:
        status, headers, body = client.request("/here?x=1", extra="X-Request-ID: client-1\r\n")
        assert status == 500
        document = whole_problem(status, headers, body, "/here")
        assert document["request_id"] == "app-7"  # the one the app's log line shows


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("entry_name", ENTRIES)
def test_app_answers_are_whole_problems_through_the_engine(
        serve: Serve, make_app: Callable[..., Any], engine: str, entry_name: str) -> None:
    def slow(request: Any) -> dict[str, Any]:
        gevent.sleep(2)  # NOTE: past the operation's 50 ms deadline: cancelled
        return {}

    app = make_app(_PROBLEMS_SPEC, {"get_item": lambda request: {}, "slow": slow})
    server = serve(entry(app, entry_name), engine=engine)
    key = "".join(f"{name}: {value}\r\n" for name, value in AUTH.items())
    with Client(server) as client:  # NOTE: all on one keep-alive connection
        for method, target, extra, status, instance in [
                ("GET", "/nowhere?x=1", "", 404, "/nowhere"),
                ("DELETE", "/slow", "", 405, "/slow"),
                ("GET", "/items/1", "", 401, "/items/1"),
                ("GET", "/items/x", key, 400, "/items/x"),
                ("GET", "/slow", "", 504, "/slow")]:
            got, headers, body = client.request(target, method, extra)
            assert got == status, body
            document = whole_problem(status, headers, body, instance)
            assert _GENERATED_ID.match(document["request_id"])
        got, headers, body = client.request("/nowhere", extra="X-Request-ID: mine-1\r\n")
        assert whole_problem(got, headers, body, "/nowhere")["request_id"] == "mine-1"
