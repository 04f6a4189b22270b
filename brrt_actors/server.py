"""The HTTP engine: serve a WSGI app on gevent, bounded, with a graceful stop.

One greenlet per connection, spawned from a bounded pool (accepting pauses while the pool
is full). Idle keep-alive connections are closed after ``keepalive_timeout_s``. On stop the
listener closes at once, idle connections are closed, in-flight requests get up to the
grace period (their responses carry ``Connection: close``), the rest is killed, and then
the ``on_stop`` hooks run (the app drains its actors there).

Timeouts, all from ``keepalive_timeout_s``:

- waiting for a request line (a fresh connection, or an idle keep-alive one): the
  connection is closed when nothing arrives for that long;
- reading headers and body: each read waits at most that long, so an upload that keeps
  sending is never cut, only one that stalls;
- writing the response: each write waits at most that long for the client to take data
  (again a stall bound, not a bound on the whole response).

This module is the engine seam: `HTTPServer` (start / stop / serve_forever) and `serve`
are what the CLI uses; a later engine keeps that surface.
"""
from __future__ import annotations

import contextlib
import logging
import signal
import socket
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, cast

import gevent
from gevent import monkey, pywsgi
from gevent.event import Event
from gevent.pool import Pool
from gevent.pywsgi import WSGIHandler, WSGIServer
from greenlet import greenlet

from brrt_actors.errors import ConfigError

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication, WSGIEnvironment

__all__ = ["HTTPServer", "ServerSettings", "StopHook", "serve"]

_log = logging.getLogger("brrt_actors.server")

#: Called once after connections have stopped, with the seconds left of the grace period.
StopHook = Callable[[float], object]

# NOTE: pywsgi's own limit (answers 414 at or above it); the stubs do not declare it.
_MAX_REQUEST_LINE: int = getattr(pywsgi, "MAX_REQUEST_LINE", 8192)

# NOTE: pool.kill() is bounded too: a connection greenlet that swallows GreenletExit must not
# hold the process past the grace period by more than this.
_KILL_TIMEOUT_S = 1.0


class ServerSettings(Protocol):
    """The settings the server reads (``brrt_actors.config.Settings`` has them)."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def max_connections(self) -> int: ...
    @property
    def keepalive_timeout_s(self) -> float: ...
    @property
    def shutdown_grace_s(self) -> float: ...


class _ConnectionHandler(WSGIHandler):
    """One client connection: pywsgi's handler plus the timeouts and the drain."""

    server: _WSGIServer
    # True only while waiting for the next request line (nothing in flight): stop() may
    # close such a connection at once.
    idle = False
    greenlet: greenlet | None = None

    def handle(self) -> None:
        server = self.server
        sock = self.socket
        # PERF: without TCP_NODELAY, Nagle holds the small response back until the client's
        # delayed ACK (~40 ms) on every keep-alive request after the first.
        with contextlib.suppress(OSError):  # NOTE: a peer that already reset; reads will fail
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(server.keepalive_timeout_s)
        self.greenlet = gevent.getcurrent()
        server.connections.add(self)
        try:
            super().handle()
        finally:
            server.connections.discard(self)
            self.greenlet = None

    def read_requestline(self) -> str:
        if self.server.draining:
            return ""  # NOTE: stopping: end the keep-alive connection instead of waiting
        self.idle = True
        try:
            line = self.rfile.readline(_MAX_REQUEST_LINE)
        except TimeoutError:
            return ""  # idle for keepalive_timeout_s: close quietly
        finally:
            self.idle = False
        return line.decode("latin-1")

    def get_environ(self) -> WSGIEnvironment:
        env = super().get_environ()
        # NOTE: PATH_INFO is already percent-decoded, so "%2F" and "/" look alike there; the
        # router matches on the raw target and decodes each path parameter itself.
        env["RAW_URI"] = self.path
        return env

    def finalize_headers(self) -> None:
        super().finalize_headers()
        if self.server.draining and not self.close_connection:
            # NOTE: tell the client this connection ends here, so it does not send its next
            # request into a socket we are about to close.
            self.close_connection = True
            # NOTE: pywsgi stores the headers latin-1 encoded (its stub says str).
            headers = cast("list[tuple[bytes, bytes]]", self.response_headers)
            headers[:] = [(name, value) for name, value in headers
                          if name.lower() != b"connection"]
            headers.append((b"Connection", b"close"))

    def _sendall(self, data: bytes | bytearray | memoryview) -> None:
        # NOTE: gevent's sendall() applies the socket timeout to the whole call, which would cut
        # a slow reader of a large response after keepalive_timeout_s. send() applies it per
        # write, so only a client that stops reading is dropped.
        view = memoryview(data)
        send = self.socket.send
        try:
            while view:
                view = view[send(view):]
        except OSError as ex:
            # Same bookkeeping as pywsgi's own _sendall (the access log reads it).
            self.status = f"socket error: {ex}"
            if self.code is not None and self.code > 0:
                self.code = -self.code
            raise

    def _log_error(self, t: type[BaseException], v: BaseException,
                   tb: TracebackType | None) -> None:
        # NOTE: pywsgi prints these to stderr through the hub; send them to our logger.
        if issubclass(t, TimeoutError):  # a client that stalled mid-request: its fault, not ours
            _log.info("closing a stalled connection (%s %s, over %ss without progress)",
                      self.command, self.path, self.server.keepalive_timeout_s)
        elif not issubclass(t, gevent.GreenletExit):
            _log.error("unhandled error in the WSGI app on %s %s", self.command, self.path,
                       exc_info=(t, v, tb))


class _WSGIServer(WSGIServer):
    """pywsgi's server plus the state its connection handlers share."""

    handler_class = _ConnectionHandler

    def __init__(self, listener: socket.socket | tuple[str, int], app: WSGIApplication,
                 pool: Pool, keepalive_timeout_s: float, server_name: str) -> None:
        super().__init__(
            listener, app, spawn=pool,
            log=None,  # PERF: no access log line per request
            error_log=_log,
            # NOTE: a given SERVER_NAME spares pywsgi a reverse DNS lookup at start.
            environ={"SERVER_NAME": server_name},
        )
        self.keepalive_timeout_s = keepalive_timeout_s
        self.draining = False
        self.connections: set[_ConnectionHandler] = set()


def _check(max_connections: int, keepalive_timeout_s: float, shutdown_grace_s: float,
           port: int) -> None:
    problems = []
    if max_connections < 1:
        problems.append(("max_connections", f"must be at least 1, got {max_connections}"))
    if not keepalive_timeout_s > 0:
        problems.append(("keepalive_timeout_s", f"must be > 0, got {keepalive_timeout_s}"))
    if not shutdown_grace_s >= 0:
        problems.append(("shutdown_grace_s", f"must be >= 0, got {shutdown_grace_s}"))
    if not 0 <= port <= 65535:
        problems.append(("port", f"must be 0..65535, got {port}"))
    if problems:
        raise ConfigError(problems)


class HTTPServer:
    """Serve a WSGI app over HTTP/1.1 with gevent, bounded and gracefully stoppable.

    Args:
        app: the WSGI application.
        host: address to bind (ignored when ``listener`` is given).
        port: port to bind, 0 for any free port (ignored when ``listener`` is given).
        max_connections: connections served at once; accepting pauses while full.
        keepalive_timeout_s: idle keep-alive connections are closed after this; also the
            longest stall allowed on any single read or write.
        shutdown_grace_s: how long `stop` lets in-flight requests finish.
        listener: an already bound and listening TCP socket to serve on.
        on_stop: hooks run by `stop` after the connections have stopped.

    Raises:
        ConfigError: a setting is out of range.
    """

    def __init__(self, app: WSGIApplication, *, host: str = "127.0.0.1", port: int = 8080,
                 max_connections: int = 10000, keepalive_timeout_s: float = 5.0,
                 shutdown_grace_s: float = 10.0, listener: socket.socket | None = None,
                 on_stop: Iterable[StopHook] = ()) -> None:
        _check(max_connections, keepalive_timeout_s, shutdown_grace_s, port)
        #: Hooks run once by `stop`, after connections stopped, with the grace seconds left.
        self.on_stop: list[StopHook] = list(on_stop)
        self.shutdown_grace_s = shutdown_grace_s
        self._pool = Pool(max_connections)
        server_name = str(listener.getsockname()[0]) if listener is not None else host
        bind = listener if listener is not None else (host, port)
        self._wsgi = _WSGIServer(bind, app, self._pool, keepalive_timeout_s,
                                 server_name or "localhost")
        self._stopping = False
        self._stopped = Event()

    @classmethod
    def from_settings(cls, app: WSGIApplication, settings: ServerSettings, *,
                      listener: socket.socket | None = None,
                      on_stop: Iterable[StopHook] = ()) -> HTTPServer:
        """Build a server from settings (host, port, max_connections, and the timeouts)."""
        return cls(app, host=settings.host, port=settings.port,
                   max_connections=settings.max_connections,
                   keepalive_timeout_s=settings.keepalive_timeout_s,
                   shutdown_grace_s=settings.shutdown_grace_s,
                   listener=listener, on_stop=on_stop)

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); the real port once started, even when asked for port 0."""
        address = self._wsgi.address
        return str(address[0]), int(address[1])

    @property
    def url(self) -> str:
        """The base URL, ``http://HOST:PORT``."""
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def started(self) -> bool:
        """True between `start` and `stop`."""
        return bool(self._wsgi.started)

    @property
    def open_connections(self) -> int:
        """Connections being served right now (busy or idle keep-alive)."""
        return len(self._pool)

    def start(self) -> None:
        """Bind (unless given a listener) and start accepting connections.

        Raises:
            RuntimeError: the process is not gevent monkey-patched.
        """
        if not monkey.is_module_patched("socket"):
            raise RuntimeError(
                "brrt_actors needs a gevent monkey-patched process: start it with the `brrt` "
                "entry point, or call `gevent.monkey.patch_all()` first thing in your program "
                "(before importing anything else)")
        self._wsgi.start()
        _log.info("listening on %s", self.url)

    def stop(self, grace_s: float | None = None) -> None:
        """Stop gracefully: refuse new connections, drain, kill leftovers, run `on_stop`.

        Idle keep-alive connections are closed at once; requests in flight get up to
        ``grace_s`` (default ``shutdown_grace_s``) to finish and answer with
        ``Connection: close``; whatever remains is then killed. Each `on_stop` hook is then
        called with the seconds left of the grace period. A second call waits for the first.
        """
        grace = self.shutdown_grace_s if grace_s is None else max(0.0, grace_s)
        if self._stopping:
            self._stopped.wait(timeout=grace + _KILL_TIMEOUT_S + 1.0)
            return
        self._stopping = True
        deadline = time.monotonic() + grace
        wsgi = self._wsgi
        wsgi.draining = True
        wsgi.close()  # stop accepting: from here on connecting is refused
        for conn in list(wsgi.connections):
            if conn.idle and conn.greenlet is not None:
                gevent.kill(conn.greenlet)  # NOTE: asynchronous; it wakes up in readline
        if not self._pool.join(timeout=grace):
            _log.warning("%d connection(s) still busy after the %.1fs grace period; "
                         "killing them", len(self._pool), grace)
            self._pool.kill(block=True, timeout=_KILL_TIMEOUT_S)
        for hook in self.on_stop:
            try:
                hook(max(0.0, deadline - time.monotonic()))
            except Exception:
                _log.exception("on_stop hook %r failed", hook)
        _log.info("stopped")
        self._stopped.set()

    def serve_forever(self) -> None:
        """Start if needed and serve until `stop` or SIGTERM/SIGINT, then return.

        SIGTERM or SIGINT runs a graceful `stop`; a second one kills the remaining
        connections at once. Returning normally lets the process exit 0.
        """
        if not self.started and not self._stopping:
            self.start()
        watchers = [gevent.signal_handler(signum, self._on_signal, signum)
                    for signum in (signal.SIGTERM, signal.SIGINT)]
        try:
            self._stopped.wait()
        finally:
            for watcher in watchers:
                watcher.cancel()

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self._stopping:
            _log.warning("%s again: killing %d remaining connection(s) now",
                         name, len(self._pool))
            self._pool.kill(block=False)
            return
        _log.info("%s received: stopping (grace %.1fs)", name, self.shutdown_grace_s)
        self.stop()


def serve(app: WSGIApplication, settings: ServerSettings, *,
          listener: socket.socket | None = None, on_stop: Iterable[StopHook] = ()) -> None:
    """Serve `app` until SIGTERM or SIGINT, stop gracefully, and return.

    Args:
        app: the WSGI application.
        settings: host, port, max_connections, keepalive_timeout_s, shutdown_grace_s.
        listener: an already bound and listening socket (host and port are then unused).
        on_stop: hooks called after connections stop, with the grace seconds left.

    Raises:
        ConfigError: a setting is out of range.
        RuntimeError: the process is not gevent monkey-patched.
        OSError: the address cannot be bound.
    """
    HTTPServer.from_settings(app, settings, listener=listener, on_stop=on_stop).serve_forever()
