"""Multi-process serving on gunicorn: a worker class that runs brrt_actors' HTTP engine.

Two ways in, one worker class:

- ``gunicorn -k brrt_actors.entrypoints.gunicorn.Worker 'module:app'``, for people who run
  gunicorn already, with any WSGI app: a brrt_actors app (`app_from_env`, or
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

The parts: `worker` (the worker class, its drain and signals), `application` (the
arbiter: `SpecApplication`, `serve_workers`, `main`, `child_exit`), `factory` (what each
worker builds, `app_from_env`, and the ``brrt check`` subprocess a reload must pass).
"""
from __future__ import annotations

from brrt_actors.entrypoints.gunicorn.application import (
    SpecApplication,
    child_exit,
    main,
    serve_workers,
)
from brrt_actors.entrypoints.gunicorn.factory import AppFactory, app_from_env
from brrt_actors.entrypoints.gunicorn.worker import Worker

__all__ = ["AppFactory", "SpecApplication", "Worker", "app_from_env", "child_exit", "main",
           "serve_workers"]
