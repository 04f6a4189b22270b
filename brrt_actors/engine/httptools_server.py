"""The default HTTP/1.1 engine: gevent's StreamServer, httptools' C parser (llhttp).

A greenlet per connection from the bounded pool; each runs a `Connection`. See
`brrt_actors.engine.connection` for what a connection does and answers by itself.

Timeouts are enforced by one reaper per server instead of a socket timeout per read: a
connection blocked on its socket notes its ``deadline``; a periodic timer (a fraction of
the shortest timeout) throws `Expired` into the connections past theirs. A per-read gevent
Timeout costs a timer start and stop per request (~25% of the engine's CPU on a trivial
app); the reaper costs a scan of the connections per tick.

A full pool does not starve new clients: gevent asks `HttptoolsServer.full` before each
accept, and while an idle keep-alive connection could make room the answer is no; a
connection accepted into a full pool then closes the longest-idle one (`do_read`), as
nginx reuses its idle connections. Connections in the middle of a request or an answer are
never closed for room: when none is idle, accepting pauses until a slot frees (the new
client waits in the listen backlog), and the reaper resumes it once one is idle.
"""
from __future__ import annotations

import contextlib
import logging
import socket
import sys
import time
from typing import TYPE_CHECKING, Any

import gevent
from gevent import get_hub
from gevent.pool import Pool
from gevent.server import StreamServer

from brrt_actors.engine.connection import Connection
from brrt_actors.engine.connection_base import DirectApp
from brrt_actors.engine.fdlimit import ensure_fd_limit

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication

    from gevent.socket import socket as Socket

__all__ = ["HttptoolsServer"]

_log = logging.getLogger("brrt_actors.server")

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
        pool: the bounded pool connection greenlets are spawned from; when it is full, a
            new connection closes the longest-idle keep-alive one to make room.
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
        # NOTE: gevent's set_spawn shadows `full` with pool.full on the instance; ours decides.
        vars(self).pop("full", None)
        self._pool = pool
        self.application = application
        #: A brrt app's direct entry (its ``brrt_respond``: `brrt_actors.app.App.respond`),
        #: or None for another WSGI app: the connection calls it without start_response.
        self.direct: DirectApp | None = getattr(application, "brrt_respond", None)
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
        #: The connections waiting for their next request, longest-waiting first (each
        #: connection adds and removes itself; the values are unused).
        self.idle_connections: dict[Connection, None] = {}
        #: Idle connections closed so far to make room in the full pool for a new one.
        self.evicted_idle = 0
        self.base_environ: dict[str, Any] = {}
        self._tick_s = min(_MAX_TICK_S, max(_MIN_TICK_S, min(
            keepalive_timeout_s, header_timeout_s, stall_timeout_s) / 4))
        self._reaper: Any = None

    def start(self) -> None:
        """Bind (when given an address) and start accepting."""
        if self._pool.size is not None:
            ensure_fd_limit(self._pool.size)
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
        elif self.idle_connections and self.started and self._pool.full():
            # NOTE: accepting paused when the pool was full with nothing idle; a client may
            # be waiting in the backlog. No-op while accepting already.
            self.start_accepting()

    def full(self) -> bool:
        """Whether accepting must pause: the pool is full and no connection is idle.

        gevent asks before each accept; a full pool with an idle connection says no, and
        `do_read` makes room once a connection is accepted (none is when nobody waits).
        """
        return self._pool.full() and not self.idle_connections

    def do_read(self) -> tuple[Socket, Any]:
        """Accept a connection; when the pool is full, close the longest-idle one for it."""
        accepted = super().do_read()
        if accepted is not None and self._pool.full() and self.idle_connections:
            self._evict()
        return accepted

    def _evict(self) -> None:
        # NOTE: runs in the hub (in gevent's accept callback). The connection is blocked in
        # its idle read, so Expired ends it within this call (as the idle timeout does); its
        # slot is freed here, not on the next turn of the loop, because the new connection
        # is spawned right after. Were it somehow still running, it is on its way out: the
        # pool stops counting it either way.
        conn = next(iter(self.idle_connections))
        greenlet = conn.greenlet
        conn.expire()
        self.idle_connections.pop(conn, None)
        self._pool.discard(greenlet)
        self.evicted_idle += 1
        _log.debug("the pool is full: closed the longest-idle connection to make room for a "
                   "new one (%d so far)", self.evicted_idle)

    def close_idle(self) -> None:
        """Close the connections waiting for their next request, as a stop does.

        Call it in the hub (``loop.run_callback``), with `draining` set: a connection is idle
        only while blocked in its wait for the next request, so none is taken in the middle
        of one, and one that got a request meanwhile answers it (``Connection: close``).
        Each sends its FIN and drops what the client sent before seeing it (no reset).
        """
        for conn in list(self.idle_connections):
            conn.expire()  # NOTE: synchronous: it leaves `idle_connections` within the call

    def connection_stats(self) -> dict[str, int]:
        """Return the connection figures, read on demand (for /metrics).

        Returns:
            ``open``: connections being served (the pool's slots in use); ``idle``: of those,
            waiting for their next request; ``limit``: the pool's bound (0: unbounded);
            ``evicted``: idle connections closed so far to make room for a new one.
        """
        pool = self._pool
        return {"open": len(pool), "idle": len(self.idle_connections),
                "limit": pool.size or 0, "evicted": self.evicted_idle}

    def do_handle(self, *accepted: Any) -> None:
        """Serve a connection `do_read` accepted, in a greenlet of the pool."""
        # PERF: gevent's own do_handle runs ``handle(*args)`` inside a helper: a second eval
        # loop on the C stack, which each idle connection's greenlet keeps a saved copy of
        # (~370 bytes each; benchmarks/idle_connections.py).
        try:
            self._pool.spawn(self._serve_and_close, *accepted)
        except BaseException:
            self.do_close(*accepted)
            raise

    def _serve_and_close(self, sock: Socket, address: Any) -> None:
        try:
            self.handle(sock, address)
        finally:
            self.do_close(sock, address)

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
