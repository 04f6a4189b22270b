"""The gunicorn worker class: brrt_actors' gevent HTTP engine in a gunicorn worker process.

`Worker` patches the process with gevent, loads the app (a brrt_actors app builds its own
in this process), serves each listening socket gunicorn hands over with an
`brrt_actors.entrypoints.server.HTTPServer`, beats gunicorn's heartbeat, and drains on TERM
(connections first, then the app's actors) within gunicorn's graceful timeout.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from gunicorn.arbiter import Arbiter
from gunicorn.workers import base

from brrt_actors.errors import StartError

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication

    from gevent.event import Event

    from brrt_actors.app import App
    from brrt_actors.entrypoints.server import HTTPServer

__all__ = ["EXIT_MARGIN_S", "WORKER_CLASS", "Worker"]

#: The name gunicorn loads the worker class by (``-k``); the package re-exports `Worker`.
WORKER_CLASS = "brrt_actors.entrypoints.gunicorn.Worker"

# NOTE: a worker drains for at most gunicorn's graceful_timeout minus this, so that it
# has exited (connections killed after 1 s at most, actors drained) before the arbiter's
# SIGKILL at graceful_timeout.
EXIT_MARGIN_S = 2.0
_HEARTBEAT_S = 1.0
_DEFAULT_KEEPALIVE_S = 5.0


@dataclass(frozen=True, slots=True)
class _WorkerServerSettings:
    """Server settings of a plain WSGI app, from gunicorn's configuration."""

    host: str
    port: int
    max_connections: int
    keepalive_timeout_s: float
    shutdown_grace_s: float
    http_engine: str
    gc_threshold: int


class Worker(base.Worker):  # type: ignore[misc]
    """A gunicorn worker serving the WSGI app with brrt_actors' gevent HTTP engine.

    Use it with ``gunicorn -k brrt_actors.entrypoints.gunicorn.Worker``. Each listening
    socket gunicorn hands over is served by a `brrt_actors.entrypoints.server.HTTPServer`
    (the engine is ``Settings.http_engine``: ``BRRTR_HTTP_ENGINE``, or for a brrt_actors
    app its config file's ``server.http_engine``; httptools by default).

    A brrt_actors app brings its own server settings (``BRRTR_MAX_CONNECTIONS``,
    ``BRRTR_KEEPALIVE_TIMEOUT_S``, ``BRRTR_MAX_BODY_BYTES``, ``BRRTR_SHUTDOWN_GRACE_S`` or
    the config file), so it serves alike under ``brrt serve`` and gunicorn; any other WSGI
    app gets gunicorn's ``--worker-connections``, ``--keep-alive`` and
    ``--graceful-timeout``. gunicorn's graceful timeout always bounds the drain, and
    ``--max-requests`` (with its jitter) restarts the worker gracefully. gunicorn's access
    log and its pre/post request hooks are not used. A brrt_actors app's /metrics counts
    the connections of this worker's servers (one per listening socket), added up.
    """

    sockets: list[Any]
    _stop_requested: Event
    _draining = False
    _http_engine: str
    _gc_threshold: int

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        """Refuse what the engine cannot serve (runs in the arbiter, at start).

        Raises:
            RuntimeError: TLS is configured, or an address is not TCP.
        """
        problems = []
        if cfg.is_ssl:
            problems.append("TLS (--certfile/--keyfile) is not supported: terminate TLS in "
                            "front of it")
        problems += [f"{address!r}: only TCP addresses (HOST:PORT) are supported"
                     for address in cfg.address if not isinstance(address, tuple)]
        if problems:
            raise RuntimeError(f"{WORKER_CLASS}: " + "; ".join(problems))

    def init_process(self) -> None:
        """Patch the process with gevent, then let gunicorn load the app and call `run`."""
        # NOTE: a worker process is an entry point (DESIGN.md, gevent discipline): the
        # arbiter forks it unpatched, so it patches first, before the app is imported.
        from gevent import monkey

        monkey.patch_all()
        import gevent
        from gevent import socket as gsocket
        from gevent.event import Event

        gevent.reinit()  # NOTE: the arbiter forked without gevent knowing it
        self.sockets = [gsocket.socket(listener.FAMILY, socket.SOCK_STREAM,
                                       fileno=listener.sock.detach())
                        for listener in self.sockets]
        self._stop_requested = Event()
        self._route_logging()
        super().init_process()

    def _route_logging(self) -> None:
        # A process whose logging nobody configured logs through gunicorn's error log.
        root = logging.getLogger()
        error_log = getattr(self.log, "error_log", None)
        if not root.handlers and isinstance(error_log, logging.Logger):
            for handler in error_log.handlers:
                root.addHandler(handler)
            root.setLevel(error_log.level)

    def init_signals(self) -> None:
        """Install gunicorn's signal handling, with TERM, QUIT, INT and USR1 run by gevent."""
        super().init_signals()
        import gevent

        # NOTE: gevent runs these in a greenlet of their own; a Python signal handler runs
        # in whatever greenlet was interrupted, the hub included, where nothing may block.
        self._signal_watchers = [
            gevent.signal_handler(signal.SIGTERM, self._on_term),
            gevent.signal_handler(signal.SIGQUIT, self._on_quit, signal.SIGQUIT),
            gevent.signal_handler(signal.SIGINT, self._on_quit, signal.SIGINT),
            gevent.signal_handler(signal.SIGUSR1, self.log.reopen_files),
        ]

    def load_wsgi(self) -> None:
        """Load the app (in this process); a start problem ends the boot with its message."""
        try:
            super().load_wsgi()
            if _brrt_app(self.wsgi) is None:
                from brrt_actors.config import load_settings

                # NOTE: a plain WSGI app takes only the engine and the collector's pace
                # from brrt's settings.
                own = load_settings(os.environ)
                self._http_engine = own.http_engine
                self._gc_threshold = own.gc_threshold
        except StartError as ex:
            self.log.error("cannot start: %s", ex)
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
        if self.cfg.preload_app and _brrt_app(self.wsgi) is not None:
            self.log.error("cannot start: --preload builds the app in the arbiter, before "
                           "gevent patches the workers (its actors would start there); "
                           "drop --preload: each worker builds its own app")
            sys.exit(Arbiter.WORKER_BOOT_ERROR)

    def run(self) -> None:
        """Serve until told to stop, then drain: connections, then the app's actors."""
        import gevent

        from brrt_actors.app import WARM_UP_DELAY_S
        from brrt_actors.entrypoints.collector import tune_collector
        from brrt_actors.entrypoints.server import HTTPServer

        app = _brrt_app(self.wsgi)
        grace = max(0.0, self.cfg.graceful_timeout - EXIT_MARGIN_S)
        if app is not None:
            grace = min(grace, app.settings.shutdown_grace_s)
            settings: Any = app.settings
        else:
            settings = _WorkerServerSettings(
                host="", port=0, max_connections=self.cfg.worker_connections,
                keepalive_timeout_s=self.cfg.keepalive or _DEFAULT_KEEPALIVE_S,
                shutdown_grace_s=grace, http_engine=self._http_engine,
                gc_threshold=self._gc_threshold)
        tune_collector(settings.gc_threshold)
        wsgi = self.wsgi if self.max_requests == sys.maxsize else self._counting(self.wsgi)
        # PERF: with several workers on one socket, each takes one connection per wake-up
        # (as gunicorn's gevent worker does), so that a burst spreads over the workers.
        max_accept = 1 if self.cfg.workers > 1 else None
        servers: list[HTTPServer] = []
        heartbeat = gevent.spawn(self._heartbeat)
        heartbeat.name = "gunicorn-heartbeat"
        try:
            if not self._draining:
                for listener in self.sockets:
                    server = HTTPServer.from_settings(wsgi, settings, listener=listener,
                                                      max_accept=max_accept)
                    server.start()
                    servers.append(server)
                    if app is not None and app.metrics is not None:
                        app.metrics.watch_connections(server.connection_stats)
                if app is not None:
                    gevent.spawn_later(WARM_UP_DELAY_S, app.warm_up)
            self._stop_requested.wait()
            deadline = time.monotonic() + grace
            gevent.joinall([gevent.spawn(server.stop, grace) for server in servers])
            if app is not None:
                app.stop(max(0.0, deadline - time.monotonic()))
        finally:
            heartbeat.kill(block=False)

    def _counting(self, app: WSGIApplication) -> WSGIApplication:
        def counted(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            self.nr += 1
            if self.nr >= self.max_requests and not self._draining:
                self.log.info("Autorestarting worker after current request.")
                self._drain()
            return app(environ, start_response)

        return counted

    def _heartbeat(self) -> None:
        import gevent

        # NOTE: the arbiter kills a worker silent for its timeout; a handler that blocks
        # the loop (CPU-bound, unpatched I/O) stops this heartbeat too, which is the point.
        interval = min(_HEARTBEAT_S, self.timeout / 2) if self.timeout else _HEARTBEAT_S
        while True:
            self.notify()
            if not self._draining:
                if self.ppid != os.getppid():
                    self.log.info("Parent changed, shutting down: %s", self)
                    self._drain()
                elif not self.alive:  # NOTE: gunicorn's --reload thread says so this way
                    self._drain()
            gevent.sleep(interval)

    def _drain(self) -> None:
        self.alive = False
        self._draining = True
        self._stop_requested.set()

    def _on_term(self) -> None:
        if self._draining:  # NOTE: a second TERM: no more patience
            self._on_quit(signal.SIGTERM)
        else:
            self._drain()

    def _on_quit(self, signum: int) -> NoReturn:
        self.alive = False
        self.log.info("%s: %s, exiting now", self, signal.Signals(signum).name)
        self.cfg.worker_int(self)
        # NOTE: raised in this signal greenlet, gevent re-raises it in the main greenlet.
        sys.exit(0)


def _brrt_app(wsgi: object) -> App | None:
    # NOTE: without brrt_actors.app imported, `wsgi` cannot be an App; a plain WSGI app's
    # worker does not import it.
    module = sys.modules.get("brrt_actors.app")
    return wsgi if module is not None and isinstance(wsgi, module.App) else None
