"""The default HTTP/1.1 engine: gevent's StreamServer, httptools' C parser (llhttp).

A greenlet per connection from the bounded pool; each runs a `Connection`. See
`brrt_actors.engine.connection` for what a connection does and answers by itself.

Timeouts are enforced by one reaper per server instead of a socket timeout per read: a
connection blocked on its socket notes its ``deadline``; a periodic timer (a fraction of
the shortest timeout) throws `Expired` into the connections past theirs. A per-read gevent
Timeout costs a timer start and stop per request (~25% of the engine's CPU on a trivial
app); the reaper costs a scan of the connections per tick.
"""
from __future__ import annotations

import contextlib
import socket
import sys
import time
from typing import TYPE_CHECKING, Any

import gevent
from gevent import get_hub
from gevent.pool import Pool
from gevent.server import StreamServer

from brrt_actors.engine.connection import Connection

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication

    from gevent.socket import socket as Socket

__all__ = ["HttptoolsServer"]

#: Longest request target (414 above it), as gevent.pywsgi's request line limit.
MAX_TARGET_BYTES = 8192
#: Most header fields in one request (431 above it), as http.client and h11.
MAX_HEADER_COUNT = 100
#: Largest request head: target plus header names and values (431 above it).
MAX_HEADER_BYTES = 65536
_BACKLOG = 1024
# NOTE: timeouts fire up to one tick late; the tick is a quarter of the shortest timeout,
# within these bounds.
_MIN_TICK_S = 0.01
_MAX_TICK_S = 0.5


class HttptoolsServer(StreamServer):
    """Serve a WSGI app with httptools' parser on gevent.

    Args:
        listener: a bound, listening socket, or a (host, port) to bind at `start`.
        application: the WSGI application.
        pool: the bounded pool connection greenlets are spawned from.
        keepalive_timeout_s: an idle keep-alive connection is closed after this.
        header_timeout_s: a request head must be complete this long after its first byte.
        stall_timeout_s: longest wait for the next piece of a body, or for the client to
            take the next piece of an answer.
        max_body_bytes: larger request bodies get 413 (a Content-Length above it is
            refused before reading).
        server_name: SERVER_NAME of the environ.
    """

    def __init__(self, listener: socket.socket | tuple[str, int], application: WSGIApplication,
                 *, pool: Pool, keepalive_timeout_s: float, header_timeout_s: float,
                 stall_timeout_s: float, max_body_bytes: int, server_name: str,
                 max_target_bytes: int = MAX_TARGET_BYTES,
                 max_header_count: int = MAX_HEADER_COUNT,
                 max_header_bytes: int = MAX_HEADER_BYTES) -> None:
        backlog = None if isinstance(listener, socket.socket) else _BACKLOG
        super().__init__(listener, spawn=pool, backlog=backlog)
        self.application = application
        self.keepalive_timeout_s = keepalive_timeout_s
        self.header_timeout_s = header_timeout_s
        self.stall_timeout_s = stall_timeout_s
        self.max_body_bytes = max_body_bytes
        self.max_target_bytes = max_target_bytes
        self.max_header_count = max_header_count
        self.max_header_bytes = max_header_bytes
        self.server_name = server_name
        #: Set by the owner when stopping: answers say ``Connection: close``.
        self.draining = False
        self.connections: set[Connection] = set()
        self.base_environ: dict[str, Any] = {}
        self._tick_s = min(_MAX_TICK_S, max(_MIN_TICK_S, min(
            keepalive_timeout_s, header_timeout_s, stall_timeout_s) / 4))
        self._reaper: Any = None

    def start(self) -> None:
        """Bind (when given an address) and start accepting."""
        super().start()
        # PERF: the keys every request shares; each connection copies this once, and each
        # request copies its connection's.
        self.base_environ = {
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_SOFTWARE": "brrt_actors",
            "SERVER_NAME": self.server_name,
            "SERVER_PORT": str(self.address[1]),
            "SCRIPT_NAME": "",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
        }
        if self._reaper is None:
            self._reaper = get_hub().loop.timer(self._tick_s, self._tick_s, ref=False)
            self._reaper.start(self._reap)

    def _reap(self) -> None:
        # NOTE: runs in the hub. A connection whose deadline is set is blocked on its socket
        # (it sets the deadline right before the wait and clears it right after), so the
        # throw lands in that wait, as a gevent Timeout's would.
        now = time.monotonic()
        for conn in [conn for conn in self.connections if 0.0 < conn.deadline <= now]:
            if 0.0 < conn.deadline <= now:  # NOTE: an earlier throw may have changed it
                conn.expire()
        if self.closed and not self.connections:
            self._reaper.stop()
            self._reaper.close()
            self._reaper = None

    def handle(self, sock: Socket, address: Any) -> None:
        """Serve one accepted connection (runs in its own greenlet)."""
        # PERF: without TCP_NODELAY, Nagle holds a small answer back until the client's
        # delayed ACK (~40 ms) on every keep-alive request after the first.
        with contextlib.suppress(OSError):  # NOTE: a peer that already reset; reads will fail
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Connection(self, sock, address)
        conn.greenlet = gevent.getcurrent()
        self.connections.add(conn)
        try:
            conn.serve()
        finally:
            self.connections.discard(conn)
