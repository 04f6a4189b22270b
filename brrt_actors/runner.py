"""What the command line does, as library functions: serve, list routes, check a spec."""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from .app import App, create_app
from .config import load_settings
from .discovery import HandlersArg
from .errors import ConfigError, StartError

logger = logging.getLogger("brrt_actors")


def serve_spec(spec: str | Path, handlers: HandlersArg, *, mock: bool = False,
               host: str | None = None, port: int | None = None,
               config_file: str | None = None,
               environ: Mapping[str, str] | None = None) -> int:
    """Build the app and serve it until SIGTERM/SIGINT; return the exit code (0)."""
    from . import validation
    from .server import HTTPServer

    started = time.perf_counter()
    env = os.environ if environ is None else environ
    settings = load_settings(env, config_file, host=host, port=port)
    app = create_app(spec, handlers, mock=mock, environ=env, settings=settings)
    try:
        server = HTTPServer.from_settings(app, settings, on_stop=[app.stop])
        server.start()
    except OSError as ex:
        app.stop(0)
        reason = os.strerror(ex.errno) if ex.errno else str(ex)
        raise ConfigError([("--host/--port (env BRRTR_HOST/PORT)",
                            f"cannot listen on {settings.host}:{settings.port}: {reason}; "
                            "pick another address")]) from ex
    except BaseException:
        app.stop(0)  # NOTE: the actors already run; do not leave them behind
        raise
    logger.info("%s %s: %d operations ready in %.0f ms%s", app.spec.title, app.spec.version,
                len(app.spec.operations), (time.perf_counter() - started) * 1000,
                " (mock mode)" if mock else "")
    import gevent

    # NOTE: the full-error validator is imported off the request path, once listening.
    gevent.spawn_later(0.2, validation.warm_up)
    server.serve_forever()
    return 0


def route_rows(app: App) -> list[dict[str, Any]]:
    """Return the route table: one row per operation."""
    rows = []
    for method, template, pipeline in app.router.routes():
        operation = pipeline.operation
        tuning = pipeline.actor.settings
        security = " | ".join(
            " + ".join(f"{name}[{','.join(scopes)}]" if scopes else name
                       for name, scopes in group.items()) or "anonymous"
            for group in operation.security) or "public"
        rows.append({
            "method": method, "path": template, "operation": operation.operation_id,
            "security": security, "workers": tuning.workers, "mailbox": tuning.mailbox,
            "policy": tuning.policy,
            "deadline_ms": tuning.deadline_ms,
        })
    return rows


def print_routes(spec: str | Path, handlers: HandlersArg, out: TextIO, *,
                 config_file: str | None = None,
                 environ: Mapping[str, str] | None = None) -> int:
    """Print the route table of `spec` to `out`; return the exit code."""
    env = os.environ if environ is None else environ
    settings = load_settings(env, config_file)
    app = create_app(spec, handlers, mock=True, environ=env, settings=settings)
    try:
        rows = route_rows(app)
    finally:
        app.stop(0)
    columns = ["method", "path", "operation", "security", "workers", "mailbox", "policy",
               "deadline_ms"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) if rows else len(c)
              for c in columns}
    out.write("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip() + "\n")
    for row in rows:
        out.write("  ".join(str(row[c]).ljust(widths[c]) for c in columns).rstrip() + "\n")
    return 0


def check_spec(spec: str | Path, handlers: HandlersArg, out: TextIO, *,
               config_file: str | None = None,
               environ: Mapping[str, str] | None = None) -> int:
    """Load and compile everything; print every problem; return 0 (fine) or 1."""
    env = os.environ if environ is None else environ
    try:
        settings = load_settings(env, config_file)
        # Without handlers, only the spec and its settings are checked.
        app = create_app(spec, handlers, mock=handlers is None, environ=env, settings=settings)
    except StartError as ex:
        out.write(f"{spec}: {len(ex.problems)} problem(s)\n")
        for where, message in ex.problems:
            out.write(f"  {where or '-'}: {message}\n")
        return 1
    app.stop(0)
    out.write(f"{spec}: OK ({len(app.spec.operations)} operations)\n")
    return 0
