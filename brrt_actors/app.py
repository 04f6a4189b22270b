"""The WSGI application: request id, routing, built-ins, and the one place errors are rendered.

`create_app` loads the spec, settings and handlers and builds everything once: the
router, one `OperationPipeline` and one actor per operation, the built-in endpoints, the
effective spec. `App.__call__` then only looks things up.
"""
from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from brrt_actors import validation
from brrt_actors.actors import Actor, ActorSystem
from brrt_actors.builtins import Builtin, build_builtins
from brrt_actors.config import Settings, load_settings, resolve_actor_settings
from brrt_actors.discovery import HandlersArg, missing_handlers_error, resolve_handlers
from brrt_actors.errors import PROBLEM_CONTENT_TYPE, HTTPError, problem_body, status_title
from brrt_actors.metrics.figures import MULTIPROC_ENV, Metrics, build_metrics
from brrt_actors.mock import build_mock_handler
from brrt_actors.router import Router
from brrt_actors.security import (
    SecurityProvider,
    build_providers,
    build_security_check,
    owned_providers,
)
from brrt_actors.spec import Spec, load_spec
from brrt_actors.spec.effective import RUNTIME_STATUSES, effective_document
from brrt_actors.stages import OperationPipeline
from brrt_actors.stages.response import Encoded, ResponseEncoder

logger = logging.getLogger("brrt_actors")
security_logger = logging.getLogger("brrt_actors.security")

# NOTE: how long after listening the server calls `App.warm_up`: long enough for a
# readiness probe sent at once to be answered first.
WARM_UP_DELAY_S = 0.2

StartResponse = Callable[..., Any]

# SECURITY: a client's X-Request-ID is echoed only when it is short and plain.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}\Z").match


class _StatusLines(dict[int, str]):
    def __missing__(self, status: int) -> str:
        line = f"{status} {status_title(status)}"
        self[status] = line
        return line


# PERF: "200 OK" and friends are built once per status, not per response.
STATUS_LINES = _StatusLines()


def _implicit_methods(declared: frozenset[str]) -> Iterable[str]:
    extra = ["OPTIONS"]
    if "GET" in declared:
        extra.append("HEAD")
    return extra


class App:
    """A WSGI application serving one OpenAPI spec through per-operation actors.

    Build it with `create_app`; call `stop` to drain the actors.

    Attributes:
        metrics: the app's Prometheus figures and registry (None when metrics are off).
    """

    def __init__(self, spec: Spec, settings: Settings, router: Router[OperationPipeline],
                 actors: ActorSystem, builtins: Mapping[str, Builtin],
                 effective: dict[str, Any], metrics: Metrics | None = None,
                 own_providers: Iterable[SecurityProvider] = ()) -> None:
        self.spec = spec
        self.settings = settings
        self.router = router
        self.actors = actors
        self.effective_document = effective
        self.metrics = metrics
        self._count_unmatched: Callable[[int], None] = (
            metrics.count_unmatched if metrics is not None else _ignore)
        self._builtins = dict(builtins)
        # The security providers the app built (not those given to it): `stop` closes them.
        self._own_providers = tuple(own_providers)
        self._stopping = False
        prefix = os.urandom(4).hex()
        counter = itertools.count(1)
        self._next_request_id: Callable[[], str] = lambda: f"{prefix}-{next(counter):08x}"

    @property
    def ready(self) -> bool:
        """False once the app has begun to stop."""
        return not self._stopping

    def warm_up(self) -> None:
        """Load what some first requests would otherwise load while they wait.

        The error-listing validator (jsonschema) and the JWT checker (pyjwt, cryptography)
        stay off the start path; the server calls this once it listens, so that the first
        invalid request or bearer token does not stall the event loop for tens of ms.
        """
        validation.warm_up()
        for provider in self._own_providers:
            warm_up = getattr(provider, "warm_up", None)
            if warm_up is not None:
                warm_up()

    def stop(self, grace_s: float | None = None) -> None:
        """Stop taking requests into the actors, drain their mailboxes, stop the workers.

        Then close the security providers the app built (their background key refreshes
        stop), once: calling `stop` again closes nothing more.
        """
        self._stopping = True
        self.actors.stop(self.settings.shutdown_grace_s if grace_s is None else grace_s)
        if self.metrics is not None:
            self.metrics.stop()
        providers, self._own_providers = self._own_providers, ()
        for provider in providers:
            provider.close()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request_id = environ.get("HTTP_X_REQUEST_ID")
        if request_id is None or not _SANE_REQUEST_ID(request_id):
            request_id = self._next_request_id()
        raw = environ.get("RAW_URI")
        path = raw.split("?", 1)[0] if raw else environ.get("PATH_INFO") or "/"
        if path[:1] != "/":
            path = _origin_path(path)
        method = environ["REQUEST_METHOD"]
        try:
            status, headers, body = self._dispatch(environ, method, path, request_id)
        except HTTPError as ex:
            status, headers, body = self._problem(ex, path, request_id)
        except Exception:
            logger.exception("request %s (%s %s) failed", request_id, method, path)
            status, headers, body = self._problem(HTTPError(500, "internal server error"),
                                                  path, request_id)
        headers.append(("X-Request-ID", request_id))
        start_response(STATUS_LINES[status], headers)
        if method == "HEAD":
            close = getattr(body, "close", None)
            if close is not None:
                close()
            return ()
        return body

    def _dispatch(self, environ: dict[str, Any], method: str, path: str,
                  request_id: str) -> Encoded:
        match = self.router.lookup(path)
        if match is None:
            builtin = self._builtins.get(path)
            if builtin is None:
                self._count_unmatched(404)
                raise HTTPError(404, f"no operation serves {_printable(path)}")
            if method not in ("GET", "HEAD"):
                self._count_unmatched(405)
                raise HTTPError(405, f"{method} is not allowed here",
                                headers={"Allow": "GET, HEAD"})
            status, headers, data = builtin(environ)
            return status, headers, (data,)
        pipeline = match.methods.get(method)
        if pipeline is None:
            if method == "HEAD":
                pipeline = match.methods.get("GET")
            elif method == "OPTIONS":
                return 204, [("Allow", match.allow)], ()
            if pipeline is None:
                self._count_unmatched(405)
                raise HTTPError(405, f"{method} is not allowed on {match.template}",
                                headers={"Allow": match.allow})
        return pipeline.run(environ, match.raw_params, request_id)

    @staticmethod
    def _problem(error: HTTPError, path: str, request_id: str) -> Encoded:
        body = problem_body(error, _printable(path), request_id)
        headers = list(error.headers.items())
        headers.append(("Content-Type", PROBLEM_CONTENT_TYPE))
        headers.append(("Content-Length", str(len(body))))
        return error.status, headers, (body,)


def _ignore(status: int) -> None:
    pass


def _origin_path(target: str) -> str:
    # NOTE: RFC 9112 3.2.2: a server must accept the absolute-form "http://host/path".
    _, sep, rest = target.partition("://")
    if not sep:
        return target  # "*" or garbage: nothing routes there
    slash = rest.find("/")
    return rest[slash:] if slash >= 0 else "/"


def _printable(path: str) -> str:
    # SECURITY: never echo control characters or huge paths into a body.
    clean = "".join(ch for ch in path[:200] if ch.isprintable())
    return clean + ("..." if len(path) > 200 else "")


def create_app(
    spec: str | Path | Spec,
    handlers: HandlersArg = None,
    *,
    mock: bool = False,
    environ: Mapping[str, str] | None = None,
    config_file: str | Path | None = None,
    settings: Settings | None = None,
    security_providers: Mapping[str, SecurityProvider] | None = None,
    dev: bool = False,
) -> App:
    """Build the WSGI app for `spec`: compile everything and start one actor per operation.

    Args:
        spec: path to the OpenAPI document (YAML or JSON), or a loaded `Spec`.
        handlers: package or module (name, object or path) holding one function per
            operationId, or a mapping of operationId to function.
        mock: answer operations that have no handler with their declared example (or a
            generated value), and let unconfigured security schemes reject everything.
        dev: give unconfigured security schemes their documented development defaults
            (API key ``dev``, HS256 secret ``brrt-dev-secret-never-use-in-production``,
            user ``dev``/``dev``),
            with a warning per scheme. Never in production.
        environ: where settings and secrets are read (default: ``os.environ``).
        config_file: YAML config file (settings and secrets; env vars win).
        settings: ready-made settings (then `environ`/`config_file` only supply secrets).
        security_providers: custom providers by security scheme name (they win over
            configured ones and over those registered with
            `brrt_actors.security.register_provider`).

    Raises:
        SpecError: the spec cannot be served, or handlers are missing (all listed).
        ConfigError: a setting or secret is missing or malformed (all listed).
    """
    env = os.environ if environ is None else environ
    loaded = spec if isinstance(spec, Spec) else load_spec(spec)
    if settings is None:
        settings = load_settings(env, str(config_file) if config_file else None)
    for pointer, message in loaded.warnings:
        logger.warning("%s: %s", pointer, message)
    plan = resolve_actor_settings(settings, loaded.operations)
    for where, message in plan.notes:
        logger.warning("%s: %s", where, message)

    found, missing = resolve_handlers(loaded.operations, handlers)
    if missing and not mock:
        raise missing_handlers_error(missing)
    for operation in missing:
        found[operation.operation_id], notes = build_mock_handler(operation)
        for note in notes:
            logger.warning("mock: %s", note)

    used = {name for op in loaded.operations for group in op.security for name in group}
    providers, warnings = build_providers(
        loaded.security_schemes, used, env, settings.security, custom=security_providers,
        allow_unconfigured=mock, dev=dev, config_file=settings.config_file)
    for warning in warnings:
        security_logger.warning("%s", warning)

    actors = ActorSystem()
    # NOTE: prometheus_client itself reads PROMETHEUS_MULTIPROC_DIR from the process
    # environment (once, at import), so that is where it is looked up, not in `environ`.
    metrics = (build_metrics(actors, os.environ.get(MULTIPROC_ENV))
               if settings.metrics else None)
    router: Router[OperationPipeline] = Router()
    for operation in loaded.operations:
        actor = Actor(operation.operation_id, found[operation.operation_id],
                      plan.per_operation[operation.operation_id])
        actors.add(actor)
        encoder = ResponseEncoder(operation, settings.response_validation)
        schemes = [name for group in operation.security for name in group]
        pipeline = OperationPipeline(
            operation, actor, encoder,
            security=build_security_check(operation.security, providers),
            max_body_bytes=settings.max_body_bytes,
            runtime_statuses=RUNTIME_STATUSES,
            validate_error_statuses=settings.response_validation != "off",
            metrics=(metrics.operation(operation.operation_id, operation.method)
                     if metrics is not None else None),
            auth_failed=(metrics.auth_failure_counter(schemes)
                         if metrics is not None and schemes else None),
        )
        router.add(operation.method, operation.path, pipeline)
    router.finish(_implicit_methods)

    effective = effective_document(loaded)
    app_ref: list[App] = []
    builtins = build_builtins(effective, loaded.title, lambda: app_ref[0].ready,
                              metrics=metrics.endpoint if metrics is not None else None)
    app = App(loaded, settings, router, actors, builtins, effective, metrics,
              owned_providers(providers, security_providers))
    app_ref.append(app)
    actors.start()
    if metrics is not None:
        metrics.start()
    return app
