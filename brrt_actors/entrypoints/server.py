"""The HTTP server: serve a WSGI app on gevent, bounded, with a graceful stop.

`HTTPServer` is the one surface the CLI uses; behind it runs one of two engines
(`brrt_actors.engine`): ``httptools`` (the default: httptools' C parser on a gevent
StreamServer) or ``pywsgi`` (gevent.pywsgi, kept for comparison: building it logs a
warning naming the limits and smuggling defences it lacks), chosen with ``engine=`` or, through
`HTTPServer.from_settings`, ``Settings.http_engine`` (``BRRTR_HTTP_ENGINE``). Everything
else is shared: the bounded pool, the refusal to start unpatched, the graceful stop,
signals, the log line.

One greenlet per connection, spawned from a bounded pool (accepting pauses while the pool
is full). Idle keep-alive connections are closed after ``keepalive_timeout_s``. On stop the
listener closes at once, idle connections are closed cleanly (never in the middle of a
request, never with a reset), every request already read gets up to the grace period
(their responses carry ``Connection: close``), the rest is killed (503 with
``Retry-After``), and then the ``on_stop`` hooks run (the app drains its actors there,
once no connection can hand them a request any more).

Timeouts:

- waiting for a request (a fresh connection, or an idle keep-alive one): the connection is
  closed when nothing arrives for ``keepalive_timeout_s``;
- reading a request head (httptools engine): it must be complete ``header_timeout_s``
  after its first byte (a client dribbling header bytes is cut off: 408);
- reading a body, writing an answer: each read or write waits at most
  ``keepalive_timeout_s``, so an upload or a download that keeps moving is never cut, only
  one that stalls.
"""
from __future__ import annotations

import logging
import signal
import socket
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

import gevent
from gevent import get_hub, monkey
from gevent.event import Event
from gevent.pool import Pool

from brrt_actors.engine import ENGINES, Engine
from brrt_actors.errors import ConfigError

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication

__all__ = ["HTTPServer", "ServerSettings", "StopHook", "serve"]

_log = logging.getLogger("brrt_actors.server")

#: Called once after connections have stopped, with the seconds left of the grace period.
StopHook = Callable[[float], object]

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_HEADER_TIMEOUT_S = 10.0

# NOTE: pool.kill() is bounded too: a connection greenlet that swallows GreenletExit must not
# hold the process past the grace period by more than this.
_KILL_TIMEOUT_S = 1.0

# SECURITY: the pywsgi engine is kept to compare engines (the shared peer benchmark serves
# through it); whoever starts it is told what it leaves undefended.
_PYWSGI_WARNING = (
    "HTTP engine pywsgi (BRRTR_HTTP_ENGINE=pywsgi) is for comparison only: it lets request "
    "smuggling through (Content-Length together with Transfer-Encoding), has no header "
    "count or size limits (no 431), no body limit before the app (no 413) and no timeout "
    "on a request head (slowloris connections stay open); use the default httptools engine "
    "in production")


class ServerSettings(Protocol):
    """The settings the server reads (``brrt_actors.config.Settings`` has them).

    ``max_body_bytes``, ``header_timeout_s`` and ``http_engine`` are read too when present.
    """

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


def _check(max_connections: int, keepalive_timeout_s: float, shutdown_grace_s: float,
           port: int, engine: str, max_body_bytes: int, header_timeout_s: float) -> None:
    problems = []
    if engine not in ENGINES:
        problems.append(("engine (env BRRTR_HTTP_ENGINE)",
                         f"must be one of {', '.join(ENGINES)}, got {engine!r}"))
    if max_connections < 1:
        problems.append(("max_connections", f"must be at least 1, got {max_connections}"))
    if not keepalive_timeout_s > 0:
        problems.append(("keepalive_timeout_s", f"must be > 0, got {keepalive_timeout_s}"))
    if not header_timeout_s > 0:
        problems.append(("header_timeout_s", f"must be > 0, got {header_timeout_s}"))
    if not shutdown_grace_s >= 0:
        problems.append(("shutdown_grace_s", f"must be >= 0, got {shutdown_grace_s}"))
    if max_body_bytes < 0:
        problems.append(("max_body_bytes", f"must be >= 0, got {max_body_bytes}"))
    if not 0 <= port <= 65535:
        problems.append(("port", f"must be 0..65535, got {port}"))
    if problems:
        raise ConfigError(problems)


def _build_engine(engine: str, bind: socket.socket | tuple[str, int], app: WSGIApplication,
                  pool: Pool, *, keepalive_timeout_s: float, header_timeout_s: float,
                  max_body_bytes: int, server_name: str) -> Engine:
    if engine == "pywsgi":
        from brrt_actors.engine.pywsgi_server import PywsgiServer

        _log.warning(_PYWSGI_WARNING)
        return PywsgiServer(bind, app, pool=pool, keepalive_timeout_s=keepalive_timeout_s,
                            server_name=server_name)
    from brrt_actors.engine.httptools_server import HttptoolsServer

    return HttptoolsServer(bind, app, pool=pool, keepalive_timeout_s=keepalive_timeout_s,
                           header_timeout_s=header_timeout_s,
                           stall_timeout_s=keepalive_timeout_s,
                           max_body_bytes=max_body_bytes, server_name=server_name)


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
        engine: ``"httptools"`` (default) or ``"pywsgi"`` (for comparison only: no header,
            body or head-time limits, and it lets a smuggled request through; building it
            logs a warning that says so).
        max_body_bytes: the httptools engine answers 413 to larger request bodies (a
            Content-Length above it before reading the body); by default the app's own
            limit (``app.settings.max_body_bytes``) for a brrt app, else 16 MiB.
        header_timeout_s: the httptools engine answers 408 and closes when a request head
            is not complete this long after its first byte.
        max_accept: connections accepted per wake-up of the listener (gevent's default,
            100, when None); several processes sharing one listening socket use 1, so
            that a burst of connections spreads over them.

    Raises:
        ConfigError: a setting is out of range, or the engine is unknown.
    """

    def __init__(self, app: WSGIApplication, *, host: str = "127.0.0.1", port: int = 8080,
                 max_connections: int = 10000, keepalive_timeout_s: float = 5.0,
                 shutdown_grace_s: float = 10.0, listener: socket.socket | None = None,
                 on_stop: Iterable[StopHook] = (), engine: str = ENGINES[0],
                 max_body_bytes: int | None = None,
                 header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
                 max_accept: int | None = None) -> None:
        if max_body_bytes is None:
            # NOTE: one limit: the engine's early 413 uses the app's own setting.
            max_body_bytes = getattr(getattr(app, "settings", None), "max_body_bytes",
                                     DEFAULT_MAX_BODY_BYTES)
        _check(max_connections, keepalive_timeout_s, shutdown_grace_s, port, engine,
               max_body_bytes, header_timeout_s)
        #: Hooks run once by `stop`, after connections stopped, with the grace seconds left.
        self.on_stop: list[StopHook] = list(on_stop)
        self.shutdown_grace_s = shutdown_grace_s
        #: The engine's name: ``"httptools"`` or ``"pywsgi"``.
        self.engine = engine
        self._pool = Pool(max_connections)
        server_name = str(listener.getsockname()[0]) if listener is not None else host
        bind = listener if listener is not None else (host, port)
        self._engine = _build_engine(engine, bind, app, self._pool,
                                     keepalive_timeout_s=keepalive_timeout_s,
                                     header_timeout_s=header_timeout_s,
                                     max_body_bytes=max_body_bytes,
                                     server_name=server_name or "localhost")
        if max_accept is not None:
            # NOTE: both engines are gevent StreamServers, which read this per wake-up.
            self._engine.max_accept = max_accept  # type: ignore[attr-defined]
        self._stopping = False
        self._stopped = Event()

    @classmethod
    def from_settings(cls, app: WSGIApplication, settings: ServerSettings, *,
                      listener: socket.socket | None = None,
                      on_stop: Iterable[StopHook] = (),
                      max_accept: int | None = None) -> HTTPServer:
        """Build a server from settings (host, port, max_connections, and the timeouts).

        The engine is ``settings.http_engine`` when the settings have it (`load_settings`
        reads it from ``BRRTR_HTTP_ENGINE`` or the config file), else ``httptools``.
        """
        engine = getattr(settings, "http_engine", None) or ENGINES[0]
        return cls(app, host=settings.host, port=settings.port,
                   max_connections=settings.max_connections,
                   keepalive_timeout_s=settings.keepalive_timeout_s,
                   shutdown_grace_s=settings.shutdown_grace_s,
                   listener=listener, on_stop=on_stop, engine=engine,
                   max_body_bytes=getattr(settings, "max_body_bytes", DEFAULT_MAX_BODY_BYTES),
                   header_timeout_s=getattr(settings, "header_timeout_s",
                                            DEFAULT_HEADER_TIMEOUT_S),
                   max_accept=max_accept)

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); the real port once started, even when asked for port 0."""
        address = self._engine.address
        return str(address[0]), int(address[1])

    @property
    def url(self) -> str:
        """The base URL, ``http://HOST:PORT``."""
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def started(self) -> bool:
        """True between `start` and `stop`."""
        return bool(self._engine.started)

    @property
    def open_connections(self) -> int:
        """Connections being served right now (busy or idle keep-alive)."""
        return self._engine.connection_stats()["open"]

    def connection_stats(self) -> dict[str, int]:
        """Return the connection figures /metrics shows, read now (nothing is kept per request).

        Returns:
            ``open``: connections being served (busy or idle keep-alive); ``idle``: of
            those, waiting for their next request; ``limit``: ``max_connections``;
            ``evicted``: idle connections closed so far to admit a new client into the full
            pool (always 0 on the pywsgi engine, which makes the new client wait instead).
        """
        return self._engine.connection_stats()

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
        self._engine.start()
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
        engine = self._engine
        engine.draining = True
        self._close_listener()  # from here on connecting is refused
        # NOTE: in the hub, where a connection seen idle is still blocked in its wait for
        # the next request; from here, one that got a request first would be cut in it.
        closed_idle = Event()
        get_hub().loop.run_callback(self._close_idle, closed_idle)
        closed_idle.wait()  # NOTE: an idle connection may hold no greenlet the join would see
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

    def _close_idle(self, done: Event) -> None:
        try:
            self._engine.close_idle()
        finally:
            done.set()

    def _close_listener(self) -> None:
        # NOTE: the connections the kernel accepted and the engine did not yet would be reset
        # when the listener closes (under gunicorn, by the last worker to close it), the
        # request a client sent in one lost: they are taken first, as the stop's own (what
        # they sent is answered, or they are closed cleanly). Bounded by the pool.
        engine = self._engine
        while engine.has_room():
            try:
                accepted = engine.do_read()
            except OSError:
                break
            if accepted is None:
                break
            engine.do_handle(*accepted)
        engine.close()

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
