"""The hostile corpus, over real sockets: each probe gets its status, and the server goes on.

One pet store (``specs/petstore.yaml`` with ``handlers/``) on 127.0.0.1 takes every probe on
a connection of its own: request framing and smuggling variants, header limits, invalid
UTF-8 in each place, deep JSON, huge numbers, lone surrogates, path traversal, slowloris.
Each case asserts the status line the server sends (None: it closes without one), then
that a new connection is served: ``/health`` and ``GET /pets``, which reads the store that a
probe might have poisoned.
"""
from __future__ import annotations

import contextlib
import importlib
import socket
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest
from conftest import ENTRIES, PETSTORE_ENV, entry

from brrt_actors import create_app
from brrt_actors.entrypoints.server import HTTPServer

ROOT = Path(__file__).resolve().parents[2]
KEY = b"X-API-Key: " + PETSTORE_ENV["BRRTR_API_KEY__ApiKeyHeader"].encode() + b"\r\n"
BODY_LIMIT = 65536
TIMEOUT_S = 1.0  # the server's header, keep-alive and body-stall timeouts
ITEM = b"/items/7c9e6679-7425-40de-944b-e07fc1f90ae7"


@pytest.fixture(scope="module", params=ENTRIES)
def server(request: pytest.FixtureRequest) -> Iterator[HTTPServer]:
    # NOTE: every probe runs against the engine's direct entry into the app and its WSGI one.
    app = create_app(ROOT / "specs" / "petstore.yaml", handlers=str(ROOT / "handlers"),
                     environ={**PETSTORE_ENV, "BRRTR_MAX_BODY_BYTES": str(BODY_LIMIT)})
    importlib.import_module("handlers._store").STORE.reset()
    served = HTTPServer(entry(app, request.param), host="127.0.0.1", port=0,
                        header_timeout_s=TIMEOUT_S, keepalive_timeout_s=TIMEOUT_S)
    served.start()
    yield served
    served.stop(grace_s=0)
    app.stop(0.5)


@pytest.fixture(autouse=True)
def _bounded() -> Iterator[None]:
    # NOTE: no probe may hang the suite.
    with gevent.Timeout(20):
        yield


def exchange(server: HTTPServer, raw: bytes) -> tuple[int | None, bytes]:
    """Send `raw` on a new connection; return the answer's status (None: closed) and head."""
    with socket.create_connection(server.address, timeout=10) as sock:
        # NOTE: the server may close before it read everything (a 413 or 431).
        with contextlib.suppress(OSError):
            sock.sendall(raw)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
    if not data.startswith(b"HTTP/1.1 "):
        return None, data
    return int(data[9:12]), data.partition(b"\r\n\r\n")[0]


def post(path: bytes, body: bytes, content_type: bytes = b"application/json") -> bytes:
    return (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\n" + KEY + b"Content-Type: "
            + content_type + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
            + body)


def get(target: bytes, *headers: bytes) -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n" + KEY + b"".join(
        header + b"\r\n" for header in headers) + b"\r\n"


CHUNK = b"8000\r\n" + b"a" * 0x8000 + b"\r\n"
# (probe id, raw request, the statuses it may get: None means the server closes)
CASES: list[tuple[str, bytes, set[int | None]]] = [
    # -- request framing (RFC 9112) --
    ("no-host", b"GET /health HTTP/1.1\r\n\r\n", {400}),
    ("two-hosts", b"GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", {400}),
    ("http10-without-host", b"GET /health HTTP/1.0\r\n\r\n", {200}),
    ("unknown-method", b"BREW /pets HTTP/1.1\r\nHost: x\r\n\r\n", {501}),
    ("http2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", {505, None}),
    ("http3-version", b"GET /health HTTP/3.0\r\nHost: x\r\n\r\n", {505, None}),
    ("tls-client-hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,
     {400, None}),
    ("bare-lf", b"GET /health HTTP/1.1\nHost: x\n\n", {400}),
    ("obs-fold", b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n", {400}),
    ("space-before-colon", b"GET /health HTTP/1.1\r\nHost : x\r\n\r\n", {400}),
    ("nul-in-header", b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", {400}),
    ("cr-in-header", b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", {400}),
    ("negative-length", b"POST /pets HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
     {400}),
    ("bad-chunk-size", b"POST /pets HTTP/1.1\r\nHost: x\r\n" + KEY + b"Content-Type: "
     b"application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", {400}),
    # -- smuggling variants: refused, never read as two requests --
    ("two-content-lengths", b"POST /pets HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
     b"Content-Length: 6\r\n\r\nhello!", {400}),
    ("length-and-chunked", b"POST /pets HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", {400}),
    ("chunked-twice", b"POST /pets HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", {400}),
    ("chunked-then-identity", b"POST /pets HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
     b"chunked, identity\r\n\r\n", {400}),
    ("unknown-coding", b"POST /pets HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
     {400}),
    ("coding-name-space", b"POST /pets HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked"
     b"\r\n\r\n0\r\n\r\n", {400}),
    # -- limits: answered before the body or the rest of the head is read --
    ("101-headers", b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(
        b"X-%d: 1\r\n" % i for i in range(101)) + b"\r\n", {431}),
    ("70k-header", b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n",
     {431}),
    ("9k-target", b"GET /health?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", {414}),
    ("length-over-limit", b"POST /pets HTTP/1.1\r\nHost: x\r\n" + KEY + b"Content-Type: "
     b"application/json\r\nContent-Length: 99999999\r\n\r\n", {413}),
    ("chunked-over-limit", b"POST /pets HTTP/1.1\r\nHost: x\r\n" + KEY + b"Content-Type: "
     b"application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + CHUNK * 3 + b"0\r\n\r\n",
     {413}),
    # -- invalid UTF-8 in each place --
    ("utf8-path-raw", get(b"/users/\xff"), {400}),
    ("utf8-path-encoded", get(b"/users/%FF"), {400}),
    ("utf8-query-raw", get(b"/search?q=\xff"), {400}),
    ("utf8-query-encoded", get(b"/search?q=%FF%FE"), {400}),
    ("utf8-header", get(b"/search?q=a", b"X-Trace-Id: \xff\xfe"), {400}),
    ("utf8-cookie", get(b"/search?q=a", b"Cookie: session=\xff\xfe"), {400}),
    ("utf8-api-key", b"GET /pets HTTP/1.1\r\nHost: x\r\nX-API-Key: \xff\r\n\r\n", {401}),
    ("utf8-json-body", post(b"/pets", b'{"name":"\xff","breed":"Poodle"}'), {400}),
    ("utf8-form-body", post(b"/form", b"name=%FF&age=3",
                            b"application/x-www-form-urlencoded"), {400}),
    # -- JSON: depth, numbers, surrogates --
    ("deep-json-array", post(b"/pets", b"[" * 20000 + b"]" * 20000), {400}),
    ("deep-json-object", post(b"/pets", b'{"a":' * 10000 + b"1" + b"}" * 10000), {400}),
    ("number-1e400", post(b"/pets", b'{"name":"x","breed":"Poodle","age":1e400}'), {400}),
    ("price-1e400", post(ITEM, b'{"name":"x","price":1e400}'), {400}),
    ("price-minus-1e400", post(ITEM, b'{"name":"x","price":-1e400}'), {400}),
    ("number-nan", post(b"/pets", b'{"name":"x","breed":"Poodle","age":NaN}'), {400}),
    ("integer-5000-digits", post(b"/pets", b'{"name":"x","breed":"Poodle","age":'
                                 + b"9" * 5000 + b"}"), {400}),
    ("lone-surrogate-pet", post(b"/pets", b'{"name":"Evil\\ud800","breed":"Poodle"}'), {400}),
    ("lone-surrogate-item", post(ITEM, b'{"name":"\\udfff","price":1}'), {400}),
    ("surrogate-in-key", post(ITEM, b'{"\\ud800":1,"name":"x","price":1}'), {400}),
    # -- traversal: routes only, never files --
    ("dot-dot", b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", {404}),
    ("dot-dot-encoded", b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", {404}),
    ("dot-dot-docs", b"GET /docs/../../setup.cfg HTTP/1.1\r\nHost: x\r\n\r\n", {404}),
    ("dot-dot-docs-encoded", b"GET /docs/%2e%2e%2f%2e%2e%2fsetup.cfg HTTP/1.1\r\nHost: x\r\n"
     b"\r\n", {404}),
    # -- slow clients: the head or the body stalls; answered and closed after the timeout --
    ("slowloris-head", b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: ", {408, None}),
    ("stalled-body", b"POST /pets HTTP/1.1\r\nHost: x\r\n" + KEY + b"Content-Type: "
     b"application/json\r\nContent-Length: 10\r\n\r\n{\"a", {408}),
]


@pytest.mark.parametrize(("raw", "expected"), [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_probe_gets_its_answer_and_the_server_goes_on(server: HTTPServer, raw: bytes,
                                                      expected: set[int | None]) -> None:
    status, head = exchange(server, raw)
    assert status in expected, head[:300]
    assert b"root:" not in head
    health, _ = exchange(server, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert health == 200
    pets, head = exchange(server, get(b"/pets"))
    assert pets == 200, head[:300]



def test_a_known_method_the_route_does_not_declare_is_405_not_501(server: HTTPServer) -> None:
    status, answer = exchange(server, b"QUERY /pets HTTP/1.1\r\nHost: x\r\n"
                                      b"X-API-Key: test123\r\nConnection: close\r\n\r\n")
    assert status == 405
    assert b"\r\nAllow: " in answer
