"""Multi-process serving on gunicorn: a worker class that runs brrt_actors' HTTP engine.

Two ways in, one worker class:

- ``gunicorn -k brrt_actors.entrypoints.gunicorn.Worker 'module:app'``, for people who run gunicorn
  already, with any WSGI app: a brrt_actors app (`app_from_env`, or
  ``'brrt_actors:create_app("openapi.yaml", "handlers")'``) or any other WSGI callable.
- ``brrt serve SPEC --workers N`` (or ``BRRTR_WORKERS=N``, or ``server.workers`` in the
  config file): `serve_workers` checks that the app can start, prepares
  the Prometheus multi-process folder, and replaces the process with gunicorn's arbiter
  running `SpecApplication` (`main`).

The arbiter never builds a brrt_actors app: each worker builds its own after the fork and
after gevent has patched it, so the actors' greenlets live in the process that runs them,
handlers import patched libraries, and SIGHUP (new workers, old ones drained) re-reads the
spec and re-imports the handlers. For the same reason gunicorn's ``--preload`` is refused
for a brrt_actors app.

Signals, as gunicorn defines them: on the arbiter TERM drains every worker and exits 0,
INT/QUIT stop them at once, HUP reloads, TTIN/TTOU add or remove a worker. On a worker
TERM stops accepting, lets requests in flight finish (within the drain time), drains the
actors and exits; QUIT/INT exit at once.
"""
from __future__ import annotations

import json
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.workers import base

from brrt_actors.errors import ConfigError, StartError

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication

    from gevent.event import Event

    from brrt_actors.app import App
    from brrt_actors.entrypoints.server import HTTPServer

__all__ = ["AppFactory", "SpecApplication", "Worker", "app_from_env", "child_exit", "main",
           "serve_workers"]

_log = logging.getLogger("brrt_actors.gunicorn")

#: The environment variables `app_from_env` reads.
SPEC_ENV = "BRRTR_SPEC"
HANDLERS_ENV = "BRRTR_HANDLERS"
CONFIG_ENV = "BRRTR_CONFIG"
MOCK_ENV = "BRRTR_MOCK"
# NOTE: the same as brrt_actors.metrics.figures.MULTIPROC_ENV; importing that module here would
# import prometheus_client into the arbiter.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
WORKER_CLASS = "brrt_actors.entrypoints.gunicorn.Worker"

# NOTE: a worker drains for at most gunicorn's graceful_timeout minus this, so that it
# has exited (connections killed after 1 s at most, actors drained) before the arbiter's
# SIGKILL at graceful_timeout.
_EXIT_MARGIN_S = 2.0
_HEARTBEAT_S = 1.0
_DEFAULT_KEEPALIVE_S = 5.0
_CHECK_TIMEOUT_S = 120
_SWITCHES = {"1": True, "true": True, "yes": True, "on": True,
             "0": False, "false": False, "no": False, "off": False}


# -- the worker ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _WorkerServerSettings:
    """Server settings of a plain WSGI app, from gunicorn's configuration."""

    host: str
    port: int
    max_connections: int
    keepalive_timeout_s: float
    shutdown_grace_s: float
    http_engine: str


class Worker(base.Worker):  # type: ignore[misc]
    """A gunicorn worker serving the WSGI app with brrt_actors' gevent HTTP engine.

    Use it with ``gunicorn -k brrt_actors.entrypoints.gunicorn.Worker``. Each listening socket gunicorn
    hands over is served by a `brrt_actors.entrypoints.server.HTTPServer` (the engine is
    ``Settings.http_engine``: ``BRRTR_HTTP_ENGINE``, or for a brrt_actors app its config
    file's ``server.http_engine``; httptools by default).

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

                # NOTE: a plain WSGI app takes only the engine from brrt's settings.
                self._http_engine = load_settings(os.environ).http_engine
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
        from brrt_actors.entrypoints.server import HTTPServer

        app = _brrt_app(self.wsgi)
        grace = max(0.0, self.cfg.graceful_timeout - _EXIT_MARGIN_S)
        if app is not None:
            grace = min(grace, app.settings.shutdown_grace_s)
            settings: Any = app.settings
        else:
            settings = _WorkerServerSettings(
                host="", port=0, max_connections=self.cfg.worker_connections,
                keepalive_timeout_s=self.cfg.keepalive or _DEFAULT_KEEPALIVE_S,
                shutdown_grace_s=grace, http_engine=self._http_engine)
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


# -- building the app in each worker ---------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AppFactory:
    """What each worker builds: `brrt_actors.create_app`'s arguments, as plain values.

    Calling it builds the app; `SpecApplication` calls it in each worker process.

    Attributes:
        spec: path to the OpenAPI document.
        handlers: handlers package or module name, or a path to either (None with `mock`).
        config_file: the YAML config file.
        mock: answer operations without a handler with examples.
        dev: development defaults for unconfigured security schemes (never in production).
    """

    spec: str
    handlers: str | None = None
    config_file: str | None = None
    mock: bool = False
    dev: bool = False

    def __call__(self, environ: Mapping[str, str] | None = None) -> App:
        """Build the app (and start its actors)."""
        from brrt_actors.app import create_app

        return create_app(self.spec, self.handlers, mock=self.mock, environ=environ,
                          config_file=self.config_file, dev=self.dev)

    def check_command(self) -> list[str]:
        """Return the ``brrt check`` command line telling whether this app can start."""
        command = [sys.executable, "-m", "brrt_actors", "check", self.spec]
        if self.handlers is not None:
            command += ["--handlers", self.handlers]
        if self.config_file is not None:
            command += ["--config", self.config_file]
        return command + ["--mock"] * self.mock + ["--dev"] * self.dev


def app_from_env(environ: Mapping[str, str] | None = None, *, dev: bool = False) -> App:
    """Build the app named by ``BRRTR_SPEC``, ``BRRTR_HANDLERS``, ``BRRTR_CONFIG``, ``BRRTR_MOCK``.

    A factory for gunicorn, which calls it in each worker::

        BRRTR_SPEC=openapi.yaml BRRTR_HANDLERS=handlers \\
            gunicorn -k brrt_actors.entrypoints.gunicorn.Worker -w 4 'brrt_actors.entrypoints.gunicorn:app_from_env()'

    Args:
        environ: where the variables (and the settings and secrets) are read; default
            ``os.environ``.
        dev: development defaults for unconfigured security schemes; never in production
            (deliberately not an environment variable).

    Raises:
        ConfigError: ``BRRTR_SPEC`` is unset, or ``BRRTR_MOCK`` is not a switch.
        SpecError: as `brrt_actors.create_app`.
    """
    env = os.environ if environ is None else environ
    problems = []
    spec = env.get(SPEC_ENV, "").strip()
    if not spec:
        problems.append((SPEC_ENV, "is not set: name the OpenAPI document to serve"))
    mock = _SWITCHES.get(env.get(MOCK_ENV, "off").strip().lower())
    if mock is None:
        problems.append((MOCK_ENV, f"{env[MOCK_ENV]!r} is not valid; expected on or off"))
    if problems:
        raise ConfigError(problems)
    factory = AppFactory(spec, env.get(HANDLERS_ENV, "").strip() or None,
                         env.get(CONFIG_ENV, "").strip() or None, bool(mock), dev)
    return factory(env)


# -- the arbiter: brrt serve --workers N ------------------------------------------------------

def child_exit(server: Any, worker: Any) -> None:
    """gunicorn's ``child_exit`` hook: a dead worker's live gauges stop counting in /metrics.

    Put it in ``gunicorn.conf.py`` (``from brrt_actors.entrypoints.gunicorn import child_exit``) when
    ``PROMETHEUS_MULTIPROC_DIR`` is set; `SpecApplication` installs it by itself.
    """
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def _bind(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class SpecApplication(BaseApplication):  # type: ignore[misc]
    """Serve one spec with gunicorn's arbiter: N worker processes sharing one socket.

    The address, the drain time and the number of workers come from
    `brrt_actors.config.load_settings` (config file, environment, `host`/`port`/`workers`
    as given on the command line), read again on SIGHUP. Each worker builds the app
    with `factory`. gunicorn's access log is off.

    Prometheus figures add up over the workers when ``PROMETHEUS_MULTIPROC_DIR`` is set
    in the environment before this process imports prometheus_client (`serve_workers`
    sees to it); `metrics_dir` is a folder to delete when the arbiter exits.
    """

    def __init__(self, factory: AppFactory, *, workers: int | None = None,
                 host: str | None = None,
                 port: int | None = None, log_level: str = "info",
                 metrics_dir: str | None = None, reexec_as_module: bool = False) -> None:
        self.factory = factory
        self.workers = workers
        self.host = host
        self.port = port
        self.log_level = log_level.lower()
        self.metrics_dir = metrics_dir
        self.reexec_as_module = reexec_as_module
        super().__init__(prog="brrt")

    def load_config(self) -> None:
        """Configure gunicorn from brrt_actors' settings (at start and on SIGHUP)."""
        from brrt_actors.config import load_settings

        settings = load_settings(os.environ, self.factory.config_file, host=self.host,
                                 port=self.port, workers=self.workers)
        options: dict[str, Any] = {
            "bind": [_bind(settings.host, settings.port)],
            "workers": settings.workers,
            "worker_class": WORKER_CLASS,
            "graceful_timeout": math.ceil(settings.shutdown_grace_s + _EXIT_MARGIN_S),
            "keepalive": max(1, math.ceil(settings.keepalive_timeout_s)),
            "worker_connections": settings.max_connections,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": self.log_level,
            "proc_name": "brrt",
            "preload_app": False,
            "child_exit": child_exit,
            "on_exit": self._on_exit,
        }
        # NOTE: gunicorn >= 25.1 opens a control socket at a fixed path by default.
        if "control_socket_disable" in self.cfg.settings:
            options["control_socket_disable"] = True
        for name, value in options.items():
            self.cfg.set(name, value)

    def load(self) -> App:
        """Build the app (called in each worker, after the fork)."""
        return self.factory()

    def run(self) -> None:
        """Run the arbiter until it is stopped; exits the process."""
        try:
            _SpecArbiter(self).run()
        except RuntimeError as ex:
            print(f"\nError: {ex}\n", file=sys.stderr)
            sys.exit(1)

    def check(self) -> str | None:
        """Check in a new process that the app can start; return its problems, or None."""
        try:
            done = subprocess.run(self.factory.check_command(), capture_output=True,
                                  text=True, timeout=_CHECK_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as ex:
            return f"the check did not run: {ex}"
        return None if done.returncode == 0 else (done.stdout + done.stderr).strip()

    def _on_exit(self, arbiter: Any) -> None:
        # NOTE: after USR2 two arbiters share the folder; the last one removes it.
        if self.metrics_dir and arbiter.reexec_pid == arbiter.master_pid == 0:
            import shutil

            shutil.rmtree(self.metrics_dir, ignore_errors=True)


class _SpecArbiter(Arbiter):  # type: ignore[misc]
    app: SpecApplication

    def __init__(self, app: SpecApplication) -> None:
        super().__init__(app)
        if app.reexec_as_module:
            # NOTE: USR2 runs START_CTX["args"] again; sys.argv[0] is this module's file,
            # and running it as a script would shadow gunicorn with this module.
            self.START_CTX["args"] = [sys.executable, "-m", __name__, *sys.argv[1:]]

    def reload(self) -> None:
        # A spec or handlers that cannot start must not replace workers that serve.
        problems = self.app.check()
        if problems is not None:
            self.log.error("reload refused, the workers keep serving the previous version:"
                           "\n%s", problems)
            return
        super().reload()


def _prepare_metrics_dir(env: dict[str, str]) -> str | None:
    """Give the workers an empty multi-process folder; return it if it is ours to delete."""
    given = env.get(MULTIPROC_ENV)
    if given:
        for stale in Path(given).glob("*.db"):  # NOTE: figures of an earlier run
            stale.unlink(missing_ok=True)
        return None
    folder = tempfile.mkdtemp(prefix="brrt-metrics-")
    env[MULTIPROC_ENV] = folder
    return folder


def serve_workers(spec: str | Path, handlers: str | Path | None, *,
                  workers: int | None = None, mock: bool = False, host: str | None = None,
                  port: int | None = None, config_file: str | None = None,
                  environ: Mapping[str, str] | None = None, dev: bool = False) -> NoReturn:
    """Serve `spec` with several processes; replace this process with gunicorn's arbiter.

    The number of processes is ``Settings.workers``: `workers` (``--workers``), else
    ``BRRTR_WORKERS``, else the config file's ``server.workers``, else 1; like the address,
    the arbiter reads it again on SIGHUP.
    The app is built here once, to report every start problem now, then stopped. The
    arbiter runs in a fresh interpreter (``python -m brrt_actors.entrypoints.gunicorn``), unpatched,
    with `environ` (default ``os.environ``), ``PROMETHEUS_MULTIPROC_DIR`` set to an empty
    folder (a temporary one, unless given) when metrics are on, and the log level of this
    process' root logger. Its pid is this process' pid.

    Raises:
        ConfigError: a setting is wrong (`workers` below 1 among them), or the address
            is taken.
        SpecError: the app cannot be built.
    """
    from brrt_actors.config import load_settings

    env = dict(os.environ if environ is None else environ)
    settings = load_settings(env, config_file, host=host, port=port, workers=workers)
    factory = AppFactory(str(spec), None if handlers is None else str(handlers),
                         config_file, mock, dev)
    # NOTE: the workers log the start warnings (mock, dev, spec notes); this check is quiet.
    logging.disable(logging.WARNING)
    try:
        factory(env).stop(0)
    finally:
        logging.disable(logging.NOTSET)
    _check_address(settings.host, settings.port)
    metrics_dir = _prepare_metrics_dir(env) if settings.metrics else None
    options = {"app": asdict(factory), "workers": workers, "host": host, "port": port,
               "log_level": logging.getLevelName(logging.getLogger().getEffectiveLevel()),
               "metrics_dir": metrics_dir}
    argv = [sys.executable, "-m", __name__, json.dumps(options)]
    sys.stdout.flush()
    sys.stderr.flush()
    # NOTE: exec keeps the signal mask; gevent may have blocked signals it watches.
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    os.execve(sys.executable, argv, env)


def _check_address(host: str, port: int) -> None:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(infos[0][4])
    except OSError as ex:
        reason = os.strerror(ex.errno) if ex.errno else str(ex)
        raise ConfigError([("--host/--port (env BRRTR_HOST/PORT)",
                            f"cannot listen on {host}:{port}: {reason}; pick another "
                            "address")]) from ex


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run gunicorn's arbiter with the options `serve_workers` passes (one JSON argument)."""
    options = json.loads((sys.argv[1:] if argv is None else argv)[0])
    level = options["log_level"]
    logging.basicConfig(level=level,
                        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")
    application = SpecApplication(AppFactory(**options["app"]), workers=options["workers"],
                                  host=options["host"], port=options["port"],
                                  log_level=level, metrics_dir=options["metrics_dir"],
                                  reexec_as_module=True)
    application.run()
    sys.exit(0)
