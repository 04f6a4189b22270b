"""A client's fault is not the server's error (issue 9, defect 3), on both engines.

A body that stalls (408 on the wire) or a chunked body over the limit (413 on the wire)
counts under the status the client got in ``brrt_requests_total``, never as a 500, and
logs one INFO line at most: a crowd of stalled clients fills no log with tracebacks.
"""
from __future__ import annotations

import http.client
import logging
import re
import socket
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import pytest
from conftest import ENTRIES, Serve, entry

from brrt_actors.engine import ENGINES
from brrt_actors.entrypoints.server import HTTPServer

STALLED = 50
_HEAD = (b"POST /items HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n")
_COUNT = re.compile(r'brrt_requests_total\{operation_id="create_item",method="POST",'
                    r'status="(\d+)"\} (\S+)')


@pytest.fixture(autouse=True)
def _bounded() -> Iterator[None]:
    with gevent.Timeout(20):  # NOTE: no test may hang the suite
        yield


def _status(server: HTTPServer, *parts: bytes) -> int:
    """Send `parts` on a new connection, one by one; return the status answered."""
    with socket.create_connection(server.address, timeout=5) as sock:
        for part in parts:
            sock.sendall(part)
            gevent.sleep(0.05)  # NOTE: the app is reading the body by now
        answer = b""
        while b"\r\n" not in answer:
            data = sock.recv(65536)
            assert data, f"closed without an answer: {answer!r}"
            answer += data
    return int(answer.split()[1])


def _counts(server: HTTPServer) -> dict[str, float]:
    connection = http.client.HTTPConnection(*server.address, timeout=5)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    return {status: float(value) for status, value in _COUNT.findall(text)}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("entry_name", ENTRIES)
def test_stalled_and_oversized_bodies_count_as_the_clients_fault(
        serve: Serve, make_app: Callable[..., Any], engine: str, entry_name: str,
        caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(BRRTR_MAX_BODY_BYTES="1000")
    # NOTE: keepalive_timeout_s is the stall timeout here
    server = serve(entry(app, entry_name), engine=engine, keepalive_timeout_s=0.3)
    caplog.set_level(logging.INFO)
    caplog.clear()
    stalled = [gevent.spawn(_status, server, _HEAD + b'Content-Length: 30\r\n\r\n{"na')
               for _ in range(STALLED)]
    gevent.joinall(stalled, raise_error=True)
    assert [client.value for client in stalled] == [408] * STALLED
    # NOTE: the chunks come after the head: the app is reading the body when it passes
    # the limit (a chunk that came with the head would be refused before the app).
    assert _status(server, _HEAD + b"Transfer-Encoding: chunked\r\n\r\n",
                   b"400\r\n" + b"x" * 1024 + b"\r\n0\r\n\r\n") == 413
    assert _counts(server) == {"408": STALLED, "413": 1}
    records = [record for record in caplog.records if record.name.startswith("brrt_actors")]
    assert not [record for record in records if record.levelno >= logging.WARNING], records
    assert len(records) <= STALLED + 1
    assert not any(record.exc_info for record in records)
