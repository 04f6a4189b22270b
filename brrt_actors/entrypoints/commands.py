"""What the command line does, as library functions: serve, list routes, check a spec."""
from __future__ import annotations

import logging
import os
import textwrap
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from brrt_actors.app import WARM_UP_DELAY_S, App
from brrt_actors.build import SpecAndConfigError, build_app
from brrt_actors.config import load_settings, resolve_actor_settings
from brrt_actors.discovery import HandlersArg
from brrt_actors.entrypoints.collector import tune_collector
from brrt_actors.errors import ConfigError, StartError

logger = logging.getLogger("brrt_actors")


def serve_spec(spec: str | Path, handlers: HandlersArg, *, mock: bool = False,
               host: str | None = None, port: int | None = None,
               config_file: str | None = None,
               environ: Mapping[str, str] | None = None, dev: bool = False,
               workers: int | None = None, static_dir: str | None = None,
               reload: bool = False) -> int:
    """Build the app and serve it until SIGTERM/SIGINT; return the exit code (0).

    With `reload`, a change to the spec (or a file it ``$ref``s), the config file or the
    handlers swaps in the new version without losing a request (`brrt_actors.reload`); with
    several worker processes, it makes gunicorn replace them gracefully.

    `dev` gives unconfigured security schemes their development defaults (loudly).
    `host`, `port`, `workers` and `static_dir` are the command line's; they win over the
    environment and the config file (`load_settings`). With more than one worker process
    (``Settings.workers``) the process becomes gunicorn's arbiter over them
    (`brrt_actors.entrypoints.gunicorn.serve_workers`) and this function does not return.
    """
    from brrt_actors.entrypoints.server import HTTPServer

    started = time.perf_counter()
    env = os.environ if environ is None else environ
    if static_dir is not None:
        # NOTE: as a variable, so that gunicorn's worker processes read it too.
        env = {**env, "BRRTR_STATIC_DIR": os.path.abspath(static_dir)}
    overrides: dict[str, Any] = {"host": host, "port": port, "workers": workers,
                                 "static_dir": static_dir and os.path.abspath(static_dir)}
    try:
        settings = load_settings(env, config_file, **overrides)
    except ConfigError as ex:
        # NOTE: the build lists the settings' problems too, with everything else wrong.
        raise _with_build_problems(ex, lambda: build_app(
            spec, handlers, mock=mock, environ=env, config_file=config_file, dev=dev)) from None
    if reload:
        from brrt_actors.watching import require_watchfiles

        require_watchfiles()
        if handlers is not None and not isinstance(handlers, (str, Path)):
            raise ConfigError([("--reload", "name the handlers by module name or path, so "
                                            "that their files can be watched")])
    if settings.workers != 1:
        from brrt_actors.entrypoints.gunicorn import serve_workers

        if handlers is not None and not isinstance(handlers, (str, Path)):
            raise ConfigError([("--handlers", "with several workers, name the handlers by "
                                              "module name or path (each worker imports them)")])
        serve_workers(spec, handlers, workers=workers, mock=mock, host=host, port=port,
                      config_file=config_file,
                      environ=environ if static_dir is None else env, dev=dev, reload=reload)

    app = build_app(spec, handlers, mock=mock, environ=env, settings=settings, dev=dev)
    server = HTTPServer.from_settings(app, settings, on_stop=[app.stop])
    if app.metrics is not None:
        app.metrics.watch_connections(server.connection_stats)
    try:
        server.start()
    except OSError as ex:
        reason = os.strerror(ex.errno) if ex.errno else str(ex)
        raise ConfigError([("--host/--port (env BRRTR_HOST/PORT)",
                            f"cannot listen on {settings.host}:{settings.port}: {reason}; "
                            "pick another address")]) from ex
    # NOTE: nothing yields between listening and this: no request finds the actors idle.
    app.start()
    tune_collector(settings.gc_threshold)
    if reload:
        server.on_stop.insert(0, _start_reloader(app, spec, handlers, env, config_file,
                                                 overrides, mock=mock, dev=dev))
    logger.info("%s %s: %d operations ready in %.0f ms%s%s", app.spec.title, app.spec.version,
                len(app.spec.operations), (time.perf_counter() - started) * 1000,
                " (mock mode)" if mock else "", " (DEV MODE: development credentials "
                "accepted)" if dev else "")
    import gevent

    # NOTE: the full-error validator and the JWT checker load off the start path, once
    # listening (see `App.warm_up`).
    gevent.spawn_later(WARM_UP_DELAY_S, app.warm_up)
    server.serve_forever()
    return 0


def _with_build_problems(error: StartError, build: Callable[[], object]) -> StartError:
    """Return `error` with the problems a build finds added (every problem in one pass)."""
    try:
        build()
    except StartError as ex:
        problems = list(dict.fromkeys([*error.problems, *ex.problems]))
        return type(error)(problems) if type(ex) is type(error) else SpecAndConfigError(problems)
    return error


def _start_reloader(app: App, spec: str | Path, handlers: HandlersArg,
                    env: Mapping[str, str], config_file: str | None,
                    overrides: Mapping[str, Any], *, mock: bool, dev: bool
                    ) -> Callable[[float], None]:
    """Start watching for `brrt serve --reload`; return the server's hook that stops it."""
    from brrt_actors.reload import Reloader
    from brrt_actors.watching import watch_set

    def build(previous: App) -> App:
        settings = load_settings(env, config_file, **overrides)
        return build_app(spec, handlers, mock=mock, environ=env, settings=settings, dev=dev,
                         previous=previous)

    watched_handlers = handlers if isinstance(handlers, (str, Path)) else None
    reloader = Reloader(app, build, lambda: watch_set(spec, config_file, watched_handlers))
    reloader.start()
    logger.info("reload: watching %s%s%s for changes", spec,
                f", {config_file}" if config_file else "",
                f", {watched_handlers}" if watched_handlers else "")
    return reloader.stop


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
    # NOTE: built, never started: printing the table runs no worker greenlet.
    app = build_app(spec, handlers, mock=True, environ=env, settings=settings)
    rows = route_rows(app)
    columns = ["method", "path", "operation", "security", "workers", "mailbox", "policy",
               "deadline_ms"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) if rows else len(c)
              for c in columns}
    out.write("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip() + "\n")
    for row in rows:
        out.write("  ".join(str(row[c]).ljust(widths[c]) for c in columns).rstrip() + "\n")
    _print_sources(resolve_actor_settings(settings, app.spec.operations).sources, out)
    return 0


#: The actor settings `brrt routes` shows, and the names their sources are listed under.
_TUNING = (("workers", "workers"), ("mailbox", "mailbox"), ("policy", "policy"),
           ("deadline_ms", "deadline_ms"), ("block_timeout_ms", "block_timeout_ms"),
           ("retry_after_s", "retry_after_s"))


def _print_sources(sources: Mapping[str, Mapping[str, str]], out: TextIO) -> None:
    """Print where each value that is not a built-in default came from."""
    lines = []
    for operation_id, by_setting in sources.items():
        grouped: dict[str, list[str]] = {}
        for name, _ in _TUNING:
            source = by_setting.get(name, "default")
            if source != "default":
                grouped.setdefault(source, []).append(name)
        lines += [f"  {operation_id}: {', '.join(names)} from {source}"
                  for source, names in grouped.items()]
    out.write("\nwhere the values come from (the others are built-in defaults):\n")
    out.write("".join(line + "\n" for line in lines) if lines else "  (all built-in defaults)\n")


def check_spec(spec: str | Path, handlers: HandlersArg, out: TextIO, *,
               config_file: str | None = None,
               environ: Mapping[str, str] | None = None, dev: bool = False,
               mock: bool = False) -> int:
    """Load and compile everything; print every problem; return 0 (fine) or 1.

    With `mock`, operations without a handler are fine (as ``brrt serve --mock``).
    """
    env = os.environ if environ is None else environ
    try:
        # NOTE: the build loads the settings itself, so that their problems are listed with
        # the spec's, the handlers' and the security configuration's, in one pass.
        app = build_app(spec, handlers, mock=mock or handlers is None, environ=env,
                        config_file=config_file, dev=dev)
    except StartError as ex:
        out.write(f"{spec}: {len(ex.problems)} problem(s)\n")
        for where, message in ex.problems:
            out.write(f"  {where or '-'}: {message}\n")
        return 1
    out.write(f"{spec}: OK ({len(app.spec.operations)} operations)\n")
    if handlers is None and not mock:
        names = sorted({op.handler_name for op in app.spec.operations})
        out.write(textwrap.fill(
            "handlers: NOT checked (no --handlers). `brrt serve` still needs a handlers "
            "package or module (--handlers) with a function for each operation: "
            + ", ".join(names) + "; or --mock to answer them from the spec.",
            width=100, subsequent_indent="  ") + "\n")
    return 0


def make_token(scheme_name: str, *, config_file: str | None = None,
               spec: str | Path | None = None, subject: str = "user",
               scopes: Sequence[str] = (), ttl_s: int = 3600, dev: bool = False,
               environ: Mapping[str, str] | None = None) -> str:
    """Return a token for the bearer/oauth2 scheme `scheme_name`, signed with its secret.

    The secret (and ``iss``/``aud``) come from the env and the config file, as for
    ``brrt serve``; without a spec, the scheme is looked up as an http-bearer, then as an
    oauth2 scheme. With `dev`, an unconfigured scheme uses the development secret.

    Raises:
        ConfigError: the scheme has no shared secret (or verifies with a public key).
    """
    from brrt_actors.security.jwt import JWTSettings, mint_token
    from brrt_actors.security.resolve import HMAC_ALGORITHMS, dev_jwt_secret, resolve_security
    from brrt_actors.spec import load_spec
    from brrt_actors.spec.model import SecurityScheme

    env = os.environ if environ is None else environ
    settings = load_settings(env, config_file)
    where = f"--scheme {scheme_name}"
    if spec is not None:
        scheme = load_spec(spec).security_schemes.get(scheme_name)
        if scheme is None:
            raise ConfigError([(where, f"the spec has no security scheme {scheme_name!r}")])
        candidates = [scheme]
    else:
        candidates = [SecurityScheme(scheme_name, "http", where, scheme="bearer"),
                      SecurityScheme(scheme_name, "oauth2", where)]
    found = []
    for candidate in candidates:
        resolved = resolve_security({scheme_name: candidate}, settings.security, env,
                                    config_file=config_file)
        if scheme_name in resolved.schemes:
            found.append(resolved.schemes[scheme_name])
    if len(found) == 2 and found[0] != found[1]:
        raise ConfigError([(where, "the flat security.bearer and security.oauth2 sections "
                                   "differ; name the spec with --spec to pick")])
    jwt_settings = found[0] if found else None
    if jwt_settings is None and dev:
        secret = dev_jwt_secret(scheme_name)
        logger.warning("DEVELOPMENT DEFAULT (--dev): signing with %r, the development secret "
                       "of %s; only a server started with --dev (and %s unconfigured) accepts "
                       "this token, and only for %s", secret, scheme_name, scheme_name,
                       scheme_name)
        jwt_settings = JWTSettings(algorithms=("HS256",), secret=secret)
    if not isinstance(jwt_settings, JWTSettings) or not jwt_settings.secret:
        what = ("is not configured" if jwt_settings is None
                else "verifies tokens with a public key, JWKS or OIDC")
        raise ConfigError([(where, f"{scheme_name!r} {what}; brrt token signs with a shared "
                                   f"secret: set BRRTR_JWT_SECRET__{scheme_name} or "
                                   f"security.bearer.{scheme_name}.secret (or use --dev)")])
    algorithm = next(a for a in jwt_settings.algorithms if a in HMAC_ALGORITHMS)
    now = int(time.time())
    claims: dict[str, Any] = {"sub": subject, "iat": now, "exp": now + ttl_s}
    if scopes:
        claims["scope"] = " ".join(scopes)
    if jwt_settings.issuer:
        claims["iss"] = jwt_settings.issuer
    if jwt_settings.audience:
        audience = jwt_settings.audience
        claims["aud"] = audience if isinstance(audience, str) else list(audience)
    return mint_token(jwt_settings.secret, claims, algorithm=algorithm)


def print_token(scheme_name: str, out: TextIO, **options: Any) -> int:
    """Print `make_token`'s token to `out`; return the exit code."""
    out.write(make_token(scheme_name, **options) + "\n")
    return 0


def print_password_hash(out: TextIO, stdin: TextIO, *, algorithm: str = "scrypt") -> int:
    """Read a password (prompting twice on a terminal, else the first line of `stdin`) and
    print its hash for ``security.basic.<Scheme>.users``; return the exit code."""
    import getpass

    from brrt_actors.security.basic import hash_password

    if stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise ConfigError([("hash-password", "the passwords differ")])
    else:
        password = stdin.readline().rstrip("\r\n")
    if not password:
        raise ConfigError([("hash-password", "the password is empty")])
    out.write(hash_password(password, algorithm) + "\n")
    return 0


def generate_service(spec: str | Path, out_dir: str | Path, out: TextIO, *,
                     package: str = "handlers", check: bool = False) -> int:
    """Run `brrt gen`: write (or, with `check`, compare) the service of `spec` under
    `out_dir`; print what was done; return the exit code (1: the spec has errors, or with
    `check` something is stale)."""
    from brrt_actors.codegen import generate

    try:
        report = generate(spec, out_dir, package=package, check=check)
    except StartError as ex:
        out.write(f"{spec}: {len(ex.problems)} problem(s); nothing generated\n")
        for where, message in ex.problems:
            out.write(f"  {where or '-'}: {message}\n")
        return 1
    for name, function in report.aliases.items():
        out.write(f"name {name!r} cannot be a Python function name: {function} handles it "
                  "(aliases.py)\n")
    for line in report.removed:
        out.write(f"removed from the spec: {line}\n")
    if check:
        for line in report.stale:
            out.write(f"stale: {line}\n")
        verdict = "stale: run `brrt gen` again" if report.stale else "up to date"
        out.write(f"{out_dir}: {verdict}\n")
        return 1 if report.stale else 0
    for path in report.written:
        out.write(f"wrote   {path}\n")
    for path in report.created:
        out.write(f"created {path}\n")
    for path, names in report.added.items():
        out.write(f"added   {path}: {', '.join(names)}\n")
    for path in report.deleted:
        out.write(f"deleted {path}\n")
    if not report.changed:
        out.write(f"{out_dir}: up to date\n")
    handlers = Path(out_dir) / package
    out.write(f"serve it: brrt serve {spec} --handlers {handlers}\n")
    return 0


def lint_spec_file(spec: str | Path, out: TextIO, *, output_format: str = "text") -> int:
    """Run `brrt lint`: print the findings about `spec` (text or JSON); return 1 when
    there are errors, else 0."""
    import json

    from brrt_actors.lint import lint_spec

    try:
        report = lint_spec(spec)
    except StartError as ex:
        problems = [{"level": "error", "pointer": where, "rule": "read", "message": message}
                    for where, message in ex.problems]
        if output_format == "json":
            out.write(json.dumps({"spec": str(spec), "errors": problems, "warnings": []},
                                 indent=2) + "\n")
        else:
            out.write("".join(f"{p['pointer']}: {p['message']}\n" for p in problems))
        return 1
    if output_format == "json":
        out.write(json.dumps(report.as_json(), indent=2) + "\n")
    else:
        out.write(report.as_text())
    return 1 if report.errors else 0
