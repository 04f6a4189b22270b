"""``brrt serve --workers N``: gunicorn's arbiter over N brrt_actors worker processes.

`serve_workers` builds the app once to report every start problem now, checks the
address, prepares the Prometheus multi-process folder, and replaces the process with a
fresh, unpatched interpreter running `main` (``python -m brrt_actors.entrypoints.gunicorn``).
There `SpecApplication` configures gunicorn from brrt_actors' settings and runs
`_SpecArbiter`, which refuses a SIGHUP reload when the new version cannot start
(`AppFactory.check`). `child_exit` is the hook that keeps /metrics right when a worker dies.
"""
from __future__ import annotations

import json
import logging
import math
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from brrt_actors.entrypoints.gunicorn.factory import AppFactory
from brrt_actors.entrypoints.gunicorn.worker import EXIT_MARGIN_S, WORKER_CLASS
from brrt_actors.errors import ConfigError

if TYPE_CHECKING:
    from brrt_actors.app import App

__all__ = ["MULTIPROC_ENV", "SpecApplication", "child_exit", "main", "serve_workers"]

# NOTE: the same as brrt_actors.metrics.figures.MULTIPROC_ENV; importing that module here
# would import prometheus_client into the arbiter.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# NOTE: the arbiter runs as this package's __main__ (`main`), never as this module: the
# package is what `python -m` must name, at the first exec and again on USR2.
_ARBITER_MODULE = "brrt_actors.entrypoints.gunicorn"


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn's ``child_exit`` hook: a dead worker's live gauges stop counting in /metrics.

    Put it in ``gunicorn.conf.py``
    (``from brrt_actors.entrypoints.gunicorn import child_exit``) when
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
                 metrics_dir: str | None = None, reexec_as_module: bool = False,
                 reload: bool = False) -> None:
        self.factory = factory
        # NOTE: not `self.reload`: that is gunicorn's BaseApplication.reload, run on SIGHUP.
        self.watch_files = reload
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
            "graceful_timeout": math.ceil(settings.shutdown_grace_s + EXIT_MARGIN_S),
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
        """Run the arbiter until it is stopped; exits the process.

        With `reload`, a change to the spec, the config file or the handlers sends the
        arbiter SIGHUP: the new version is checked, then the workers are replaced.
        """
        if self.watch_files:
            from brrt_actors.watching import watch_for_arbiter, watch_set

            factory = self.factory
            watch_for_arbiter(watch_set(factory.spec, factory.config_file, factory.handlers))
        try:
            _SpecArbiter(self).run()
        except RuntimeError as ex:
            print(f"\nError: {ex}\n", file=sys.stderr)
            sys.exit(1)

    def check(self) -> str | None:
        """Check in a new process that the app can start; return its problems, or None."""
        return self.factory.check()

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
            # NOTE: USR2 runs START_CTX["args"] again; sys.argv[0] is the package's
            # __main__.py, which run as a script would not be part of its package.
            self.START_CTX["args"] = [sys.executable, "-m", _ARBITER_MODULE, *sys.argv[1:]]

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
                  environ: Mapping[str, str] | None = None, dev: bool = False,
                  reload: bool = False) -> NoReturn:
    """Serve `spec` with several processes; replace this process with gunicorn's arbiter.

    The number of processes is ``Settings.workers``: `workers` (``--workers``), else
    ``BRRTR_WORKERS``, else the config file's ``server.workers``, else 1; like the address,
    the arbiter reads it again on SIGHUP.
    The app is built here once, to report every start problem now, then stopped. The
    arbiter runs in a fresh interpreter (``python -m brrt_actors.entrypoints.gunicorn``),
    unpatched, with `environ` (default ``os.environ``), ``PROMETHEUS_MULTIPROC_DIR`` set to
    an empty folder (a temporary one, unless given) when metrics are on, and the log level
    of this process' root logger. Its pid is this process' pid. With `reload`, it watches
    the spec, the config file and the handlers and reloads gracefully on a change (SIGHUP).

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
    # Building is enough to find every start problem; nothing is started.
    logging.disable(logging.WARNING)
    try:
        factory.build(env).stop(0)
    finally:
        logging.disable(logging.NOTSET)
    _check_address(settings.host, settings.port)
    metrics_dir = _prepare_metrics_dir(env) if settings.metrics else None
    options = {"app": asdict(factory), "workers": workers, "host": host, "port": port,
               "log_level": logging.getLevelName(logging.getLogger().getEffectiveLevel()),
               "metrics_dir": metrics_dir, "reload": reload}
    argv = [sys.executable, "-m", _ARBITER_MODULE, json.dumps(options)]
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
                                  reexec_as_module=True, reload=options.get("reload", False))
    application.run()
    sys.exit(0)
