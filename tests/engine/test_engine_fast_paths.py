"""The engine's fast paths give what its slow paths give: no behaviour change.

Fed in process (no sockets) through a real `Connection`, compared with what httptools
itself reports of the same bytes.
"""
from __future__ import annotations

import itertools
from typing import Any

import httptools
import pytest

from brrt_actors.engine import wire
from brrt_actors.engine.connection import Connection

_VERSIONS = ("1.1", "1.0", "0.9", "2.0")
_FIELDS = (
    b"",
    b"Connection: keep-alive\r\n",
    b"connection: Keep-Alive\r\n",
    b"Connection: close\r\n",
    b"Connection: keep-alive\r\nConnection: close\r\n",
    b"Proxy-Connection: keep-alive\r\n",
    b"Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n",
    b"Keep-Alive: timeout=5\r\n",
    b"Content-Length: 0\r\n",
    b"Transfer-Encoding: chunked\r\n",
)
_METHODS = ("GET", "HEAD", "POST", "CONNECT")


class _Server:
    """What a connection reads of its server."""

    application: Any = None
    direct: Any = None
    base_environ: dict[str, Any] = {"wsgi.url_scheme": "http"}
    idle_connections: dict[Any, None] = {}
    draining = False
    keepalive_timeout_s = header_timeout_s = stall_timeout_s = 5.0
    max_body_bytes = 1 << 20
    max_target_bytes = 8192
    max_header_count = 100
    max_header_bytes = 65536


class _Sock:
    def send(self, data: bytes) -> int:
        return len(data)


class _Reference:
    """httptools' own view of a request head."""

    def __init__(self) -> None:
        self.parser: Any = None
        self.seen: tuple[str, bool, bool] | None = None

    def on_headers_complete(self) -> None:
        parser = self.parser
        self.seen = (parser.get_http_version(), parser.should_keep_alive(),
                     parser.should_upgrade())


def _reference(data: bytes) -> tuple[str, bool, bool] | None:
    reference = _Reference()
    reference.parser = httptools.HttpRequestParser(reference)
    try:
        reference.parser.feed_data(data)
    except httptools.HttpParserUpgrade:
        pass
    except httptools.HttpParserError:
        return None
    return reference.seen


@pytest.mark.parametrize(("version", "fields", "method"),
                         list(itertools.product(_VERSIONS, _FIELDS, _METHODS)))
def test_protocol_and_keep_alive_agree_with_httptools(version: str, fields: bytes,
                                                      method: str) -> None:
    data = (method.encode() + b" /pets HTTP/" + version.encode() + b"\r\nHost: a\r\n" + fields
            + b"\r\n")
    seen = _reference(data)
    conn = Connection(_Server(), _Sock(), ("127.0.0.1", 5555))  # type: ignore[arg-type]
    conn._feed(data)
    if seen is None:  # llhttp refuses the head itself
        assert conn._failed is not None and not conn._queue
        return
    http_version, keep_alive, upgrade = seen
    if http_version not in ("1.0", "1.1"):
        assert conn._failed is not None
        assert conn._failed[0] == (505 if http_version[:1] > "1" else 400)
        return
    [req] = conn._queue
    assert req.environ["SERVER_PROTOCOL"] == "HTTP/" + http_version
    assert req.http10 == (http_version == "1.0")
    assert req.keep_alive == (keep_alive and not upgrade)


def test_the_ends_of_heads_are_the_connection_line_the_date_lines_and_crlf() -> None:
    ends = wire.head_ends()
    dates = wire.date_lines()
    for said, line in ((wire.KEPT, b""), (wire.KEPT_HTTP10, b"Connection: keep-alive\r\n"),
                       (wire.CLOSED, b"Connection: close\r\n")):
        for dated in (wire.DATED, wire.DATE_ONLY, wire.UNDATED):
            assert ends[said + dated] == line + dates[dated] + b"\r\n"
