"""The default HTTP/1.1 engine: gevent's StreamServer, httptools' C parser (llhttp).

Connections are bounded by the pool's size; a greenlet of the pool serves a `Connection`
while it has something to do (see `brrt_actors.engine.connection` for what a connection does
and answers by itself). A connection waiting for its next request is *parked*: a read
watcher, no greenlet. Its greenlet waits as a spare (`MAX_SPARE_WORKERS` at most) for the
next connection with bytes to read. Under load the next request is usually there when the
answer is sent, and the same greenlet goes on; an idle connection costs its socket, parser
and state (~4 KB), not a greenlet's stacks (~8.5 KB more).

Timeouts are enforced by one reaper per server instead of a socket timeout per read: a
connection blocked on its socket notes its ``deadline``; a periodic timer (a fraction of
the shortest timeout) throws `Expired` into the connections past theirs, and closes the
parked ones past their keep-alive timeout. A per-read gevent
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
#: Most greenlets kept, between two connections to serve, for the next one (~8.5 KB each):
#: above it, a greenlet whose connection went idle ends.
MAX_SPARE_WORKERS = 256
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
        pool: the bounded pool the serving greenlets are spawned from; its size bounds the
            connections: at the bound, a new connection closes the longest-idle keep-alive
            one to make room.
        keepalive_timeout_s: an idle keep-alive connection is closed after this.
        header_timeout_s: a request head must be complete this long after its first byte.
        stall_timeout_s: longest wait for the next piece of a body, or for the client to
            take the next piece of an answer.
        max_body_bytes: larger request bodies get 413 (a Content-Length above it is
            refused before reading).
        server_name: SERVER_NAME of the environ.
        max_spare_workers: most greenlets kept waiting for the next connection to serve.
    """

    def __init__(self, listener: socket.socket | tuple[str, int], application: WSGIApplication,
                 *, pool: Pool, keepalive_timeout_s: float, header_timeout_s: float,
                 stall_timeout_s: float, max_body_bytes: int, server_name: str,
                 max_target_bytes: int = MAX_TARGET_BYTES,
                 max_header_count: int = MAX_HEADER_COUNT,
                 max_header_bytes: int = MAX_HEADER_BYTES,
                 max_spare_workers: int = MAX_SPARE_WORKERS) -> None:
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
        #: The connections waiting for their next request (parked: a read watcher, no
        #: greenlet), longest-waiting first (the values are unused).
        self.idle_connections: dict[Connection, None] = {}
        #: Most greenlets kept waiting for the next connection with something to read.
        self.max_spare_workers = max_spare_workers
        self._spare_workers: list[Any] = []
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
        # NOTE: runs in the hub. A connection whose deadline is set is either parked (idle:
        # closed here) or blocked on its socket (it sets the deadline right before the wait
        # and clears it right after), so the throw lands in that wait, as a gevent Timeout's
        # would.
        now = time.monotonic()
        idle = self.idle_connections
        for conn in [conn for conn in self.connections if 0.0 < conn.deadline <= now]:
            if conn in idle:
                self._unpark(conn)
                self._close(conn)  # idle for keepalive_timeout_s: closed quietly
            elif 0.0 < conn.deadline <= now:  # NOTE: an earlier throw may have changed it
                conn.expire()
        if self.closed and not self.connections:
            self._reaper.stop()
            self._reaper.close()
            self._reaper = None
        elif idle and self.started and not self.has_room():
            # NOTE: accepting paused when the pool was full with nothing idle; a client may
            # be waiting in the backlog. No-op while accepting already.
            self.start_accepting()

    def has_room(self) -> bool:
        """Whether another connection fits under the bound (`max_connections`)."""
        size = self._pool.size
        return size is None or len(self.connections) < size

    def full(self) -> bool:
        """Whether accepting must pause: no room, and no connection is idle.

        gevent asks before each accept; with an idle connection the answer is no, and
        `do_read` makes room once a connection is accepted (none is when nobody waits).
        """
        return not self.has_room() and not self.idle_connections

    def do_read(self) -> tuple[Socket, Any]:
        """Accept a connection; when there is no room, close the longest-idle one for it."""
        accepted = super().do_read()
        if accepted is not None and self.idle_connections and not self.has_room():
            self._evict()
        return accepted

    def _evict(self) -> None:
        # NOTE: runs in the hub (in gevent's accept callback), or in the stopping greenlet
        # (`HTTPServer.stop` takes the backlog): an idle connection is parked, so it has no
        # greenlet to stop; its slot is free when this returns.
        conn = next(iter(self.idle_connections))
        self._unpark(conn)
        self._close(conn)
        self.evicted_idle += 1
        _log.debug("the pool is full: closed the longest-idle connection to make room for a "
                   "new one (%d so far)", self.evicted_idle)

    def close_idle(self) -> None:
        """Close the connections waiting for their next request, as a stop does.

        Call it in the hub (``loop.run_callback``), with `draining` set: an idle connection is
        parked, so none is taken in the middle of a request. Each is handed to a greenlet
        that answers what the client sent meanwhile (``Connection: close``) or sends its FIN
        and drops what the client sent before seeing it (no reset). The spare greenlets end.
        """
        for conn in list(self.idle_connections):
            self._unpark(conn)
            self._dispatch(conn)
        spare = self._spare_workers
        while spare:
            spare.pop().switch(None)  # NOTE: it ends within this call

    def connection_stats(self) -> dict[str, int]:
        """Return the connection figures, read on demand (for /metrics).

        Returns:
            ``open``: connections being served (busy or idle); ``idle``: of those, waiting
            for their next request; ``limit``: the bound (the pool's size; 0: unbounded);
            ``evicted``: idle connections closed so far to make room for a new one.
        """
        return {"open": len(self.connections), "idle": len(self.idle_connections),
                "limit": self._pool.size or 0, "evicted": self.evicted_idle}

    # --- connections and the greenlets serving them -----------------------------------------

    def do_handle(self, *accepted: Any) -> None:
        """Serve a connection `do_read` accepted (gevent's own spawns a greenlet for it)."""
        self.handle(*accepted)

    def handle(self, sock: Socket, address: Any) -> None:
        """Take an accepted connection: count it, hand it to a greenlet."""
        try:
            # PERF: without TCP_NODELAY, Nagle holds a small answer back until the client's
            # delayed ACK (~40 ms) on every keep-alive request after the first.
            with contextlib.suppress(OSError):  # NOTE: a peer that already reset
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(self, sock, address)
        except BaseException:
            self.do_close(sock, address)
            raise
        self.connections.add(conn)
        self._dispatch(conn)

    def _dispatch(self, conn: Connection) -> None:
        """Have a greenlet serve `conn`, from any greenlet (see `_hand_over`)."""
        hub = get_hub()
        if gevent.getcurrent() is not hub:
            # NOTE: a spare greenlet is switched to from the hub only (it waits in the hub).
            hub.loop.run_callback(self._hand_over, conn)
        else:
            self._hand_over(conn)

    def _hand_over(self, conn: Connection) -> None:
        """In the hub: a spare greenlet serves `conn`, else a new one from the pool.

        NOTE: the pool never blocks here: a new greenlet is spawned only when every one is
        serving a connection, so fewer than the connections (which are within the bound).
        """
        spare = self._spare_workers
        if spare:
            spare.pop().switch(conn)
        else:
            self._pool.spawn(self._work, conn)

    def _work(self, conn: Connection | None) -> None:
        """Serve connections, one after another, until none is handed over (a pool greenlet).

        A connection that waits for its next request is parked and the greenlet becomes a
        spare, waiting in the hub for the next connection with something to read: a greenlet
        (~8.5 KB of stacks) is held by a connection only while it is served, not while it
        idles (`benchmarks/idle_connections.py`).
        """
        me: Any = gevent.getcurrent()
        spare = self._spare_workers
        wait = get_hub().switch
        try:
            while conn is not None:
                conn.greenlet = me
                parked = False
                try:
                    parked = conn.serve()
                finally:
                    conn.greenlet = None
                    if parked:
                        self._park(conn)
                    else:
                        self._close(conn)
                if self.draining or len(spare) >= self.max_spare_workers:
                    return
                spare.append(me)
                conn = wait()
        finally:
            if me in spare:  # NOTE: killed while spare
                spare.remove(me)
            # NOTE: its slot is free before the next connection is handed out (the pool's
            # own discard would come a turn of the loop later).
            self._pool.discard(me)

    def _park(self, conn: Connection) -> None:
        """Keep the idle `conn` without a greenlet: a read watcher wakes it."""
        conn.deadline = conn._idle_until
        self.idle_connections[conn] = None
        watcher = conn.watcher
        if watcher is None:
            watcher = conn.watcher = get_hub().loop.io(conn.sock.fileno(), 1)
        watcher.start(self._wake, conn)

    def _unpark(self, conn: Connection) -> None:
        conn.watcher.stop()
        del self.idle_connections[conn]
        conn.deadline = 0.0

    def _wake(self, conn: Connection) -> None:
        # NOTE: runs in the hub: bytes came for a parked connection.
        self._unpark(conn)
        self._hand_over(conn)

    def _close(self, conn: Connection) -> None:
        """Close a connection that is over (served to its end, idled out, or evicted)."""
        self.connections.discard(conn)
        conn.release()
        if conn.watcher is not None:
            conn.watcher.close()
            conn.watcher = None
        self.do_close(conn.sock, None)  # NOTE: gevent's closes the socket, nothing more
        if self.started:
            # NOTE: accepting paused when there was no room; gevent resumes it only when the
            # pool frees a greenlet, and this one may go on serving others. No-op when
            # accepting already.
            self.start_accepting()
