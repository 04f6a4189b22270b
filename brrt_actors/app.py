"""The WSGI application: request id, built-ins, routing into the operations' pipelines, errors.

An `App` is built by `brrt_actors.build.build_app` (everything compiled, nothing started),
then started (`App.start`: the actors' workers, the metrics' background work) and stopped
(`App.stop`: drain with a grace period). `App.__call__` only looks things up.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from brrt_actors import validation
from brrt_actors.actor_system import ActorSystem
from brrt_actors.actors import Handler
from brrt_actors.builtins import Builtin, build_builtins
from brrt_actors.config import Settings
from brrt_actors.errors import HTTPError, status_title
from brrt_actors.hub_monitor import HubMonitor, expected_block
from brrt_actors.metrics.figures import Metrics
from brrt_actors.problem import (
    origin_path,
    printable_path,
    problem_answer,
    request_id_from,
)
from brrt_actors.router import Match, Router
from brrt_actors.security import SecurityProvider
from brrt_actors.spec import Spec
from brrt_actors.stages import Encoded, OperationPipeline
from brrt_actors.stages.cors import AppCors
from brrt_actors.static_files import StaticFiles
from brrt_actors.thread_bridge import ThreadBridge, thread_ident
from brrt_actors.watching import spec_summary

logger = logging.getLogger("brrt_actors")
security_logger = logging.getLogger("brrt_actors.security")

# NOTE: how long after listening the server calls `App.warm_up`: long enough for a
# readiness probe sent at once to be answered first.
WARM_UP_DELAY_S = 0.2

StartResponse = Callable[..., Any]


class _StatusLines(dict[int, str]):
    def __missing__(self, status: int) -> str:
        line = f"{status} {status_title(status)}"
        self[status] = line
        return line


# PERF: "200 OK" and friends are built once per status, not per response.
STATUS_LINES = _StatusLines()

AddCors = Callable[[dict[str, Any], list[tuple[str, str]]], None]


@dataclass(frozen=True, slots=True)
class RetiredVersion:
    """What a version of the spec replaced by a hot reload owned: to drain and release."""

    spec: Spec
    actors: ActorSystem
    providers: tuple[SecurityProvider, ...]
    releases: tuple[Callable[[], None], ...]


class Routing:
    """What one version of the spec serves: routes and pipelines, built-ins, CORS, static files.

    An `App` holds it in one attribute, read once per request; a hot reload replaces it whole.
    """

    __slots__ = ("add_cors", "builtins", "cors", "router", "static")

    def __init__(self, router: Router[OperationPipeline], builtins: dict[str, Builtin],
                 cors: AppCors | None, static: StaticFiles | None) -> None:
        self.router = router
        self.builtins = builtins
        # CORS (None: off): preflights, and the headers of answers given outside operations.
        self.cors = cors
        self.add_cors: AddCors = cors.add_headers if cors is not None else _no_cors
        self.static = static


class App:
    """A WSGI application serving one OpenAPI spec through per-operation actors.

    Build it with `brrt_actors.build_app` (nothing runs yet), then `start` it; `stop`
    drains it. (`brrt_actors.create_app` does both of the first two.)

    Attributes:
        metrics: the app's Prometheus figures and registry (None when metrics are off).
    """

    def __init__(self, spec: Spec, settings: Settings, router: Router[OperationPipeline],
                 actors: ActorSystem, effective: dict[str, Any], metrics: Metrics | None = None,
                 own_providers: Iterable[SecurityProvider] = (), *,
                 cors: AppCors | None = None, static: StaticFiles | None = None,
                 on_stop: Iterable[Callable[[], None]] = (),
                 handlers: Mapping[str, Handler] | None = None) -> None:
        self.spec = spec
        #: The user's handlers it was built with, by operationId (not mock stand-ins).
        self.handlers: Mapping[str, Handler] = handlers or {}
        self.settings = settings
        self.actors = actors
        self.effective_document = effective
        self.metrics = metrics
        self._count_unmatched: Callable[[int], None] = (
            metrics.count_unmatched if metrics is not None else _ignore)
        #: What /ready says of a hot reload (`brrt_actors.reload` keeps it); None without one.
        self.reload_status: Mapping[str, Any] | None = None
        self._spec_summary = spec_summary(spec)
        # The security providers the app built (not those given to it): `stop` closes them.
        self._own_providers = tuple(own_providers)
        # What the stages built for the whole app (rate limit counters, span exporter):
        # `stop` releases it, once.
        self._on_stop = tuple(on_stop)
        # NOTE: what one version of the spec serves, in one attribute: a hot reload swaps it
        # whole (`replace_version`), with no lock on the request path.
        self._routing = Routing(router, self._builtins_for(effective, spec.title), cors, static)
        self._started = False
        self._stopping = False
        # NOTE: a call from another thread than the one whose hub runs the app is handed
        # to that hub (thread_bridge.py); `start` picks the thread.
        self._bridge = ThreadBridge(self._dispatch, settings, actors)
        # Handlers that hold the event loop (CPU-bound) are logged and counted while started.
        self.hub_monitor = HubMonitor(actors, settings.max_blocking_ms)
        self._owner_thread = self._bridge.owner

    @property
    def router(self) -> Router[OperationPipeline]:
        """The routes of the version of the spec served now."""
        return self._routing.router

    @property
    def _cors(self) -> AppCors | None:
        return self._routing.cors

    @property
    def _add_cors(self) -> AddCors:
        return self._routing.add_cors

    def _builtins_for(self, effective: dict[str, Any], title: str) -> dict[str, Builtin]:
        metrics = self.metrics
        return build_builtins(effective, title, self._is_ready,
                              metrics=metrics.endpoint if metrics is not None else None,
                              ready_details=self._ready_details)

    def _ready_details(self) -> dict[str, Any]:
        details: dict[str, Any] = {"spec": self._spec_summary}
        if self.reload_status is not None:
            details["reload"] = self.reload_status
        return details

    def replace_version(self, new: App) -> RetiredVersion:
        """Serve what `new` was built with from now on (a hot reload); return the old version.

        The routes and pipelines change in one assignment; requests already routed finish
        in the old pipelines. `new` must have been built with ``previous=self``
        (`brrt_actors.build.build_app`), its new actors started, and never be started
        itself. What the old version owned (its actors, security providers and stage
        resources) is returned for the caller to drain and release.
        """
        old = RetiredVersion(self.spec, self.actors, self._own_providers, self._on_stop)
        routing = Routing(new.router, self._builtins_for(new.effective_document, new.spec.title),
                          new._routing.cors, new._routing.static)
        self.spec, self.settings, self.actors = new.spec, new.settings, new.actors
        self.effective_document = new.effective_document
        self._spec_summary = new._spec_summary
        self._own_providers, self._on_stop = new._own_providers, new._on_stop
        self.handlers = new.handlers
        self._routing = routing  # NOTE: the one assignment the request path sees
        self.hub_monitor.actors = new.actors
        if self.metrics is not None:
            self.metrics.actors = new.actors
            self.metrics.retain((op.operation_id, op.method) for op in new.spec.operations)
        return old

    @property
    def started(self) -> bool:
        """True once `start` ran."""
        return self._started

    @property
    def ready(self) -> bool:
        """True while the app is started and has not begun to stop."""
        return self._started and not self._stopping

    def _is_ready(self) -> bool:
        return self.ready

    def start(self) -> App:
        """Start the actors' worker greenlets and the metrics' background work; return the app.

        Raises:
            RuntimeError: the app was started or stopped before.
        """
        if self._started or self._stopping:
            raise RuntimeError("an app is started once; build a new one to serve again")
        self._started = True
        self._owner_thread = self._bridge.start()
        self._bridge.run(self.actors.start)
        self._bridge.run(self.hub_monitor.start)
        if self.metrics is not None:
            self._bridge.run(self.metrics.start)
        return self

    @expected_block  # NOTE: its one-off imports hold the loop on purpose, once
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
        stop) and release what its stages built for it (the rate limit counters' storage,
        the span exporter, flushed), once: calling `stop` again closes nothing more.
        """
        self._stopping = True
        if self._started:
            self._bridge.run(self.actors.stop,
                             self.settings.shutdown_grace_s if grace_s is None else grace_s)
            self._bridge.run(self.hub_monitor.stop)
            if self.metrics is not None:
                self._bridge.run(self.metrics.stop)
        providers, self._own_providers = self._own_providers, ()
        for provider in providers:
            self._bridge.run(provider.close)
        releases, self._on_stop = self._on_stop, ()
        for release in releases:
            self._bridge.run(release)
        self._bridge.stop()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI entry (PEP 3333): `respond`, told through ``start_response``."""
        status, headers, body = self.respond(environ)
        start_response(STATUS_LINES[status], headers)
        return body

    def respond(self, environ: dict[str, Any]) -> Encoded:
        """Answer one request: ``(status code, headers, body chunks)``.

        The direct entry of brrt's own HTTP engine (no ``start_response``, no status line
        to build and parse back); `__call__` is the same answer for any WSGI server. Never
        raises for a request: failures are problem answers. A HEAD request's body is closed
        and not returned (its headers are GET's).
        """
        request_id = request_id_from(environ.get("HTTP_X_REQUEST_ID"))
        raw = environ.get("RAW_URI")
        path = raw.split("?", 1)[0] if raw else environ.get("PATH_INFO") or "/"
        if path[:1] != "/":
            path = origin_path(path)
        method = environ["REQUEST_METHOD"]
        try:
            if thread_ident() == self._owner_thread:
                status, headers, body = self._dispatch(environ, method, path, request_id)
            else:  # NOTE: another thread's call, handed to the owner's hub
                status, headers, body = self._bridge.dispatch(environ, method, path, request_id)
        except HTTPError as ex:
            status, headers, body = self._problem(ex, path, request_id)
            self._add_cors(environ, headers)
        except Exception:
            logger.exception("request %s (%s %s) failed", request_id, method, path)
            status, headers, body = self._problem(HTTPError(500, "internal server error"),
                                                  path, request_id)
            self._add_cors(environ, headers)
        headers.append(("X-Request-ID", request_id))
        if method == "HEAD":
            close = getattr(body, "close", None)
            if close is not None:
                close()
            return status, headers, ()
        return status, headers, body

    #: The name brrt's HTTP engine looks for (`brrt_actors.engine.connection_base.DirectApp`):
    #: it calls `respond` instead of the WSGI entry.
    brrt_respond = respond

    def _dispatch(self, environ: dict[str, Any], method: str, path: str,
                  request_id: str) -> Encoded:
        routing = self._routing
        match = routing.router.lookup(path)
        if match is None:
            builtin = routing.builtins.get(path)
            if builtin is None:
                static = None if routing.static is None else routing.static(environ, method,
                                                                            path)
                if static is not None:  # NOTE: after operations and built-ins: they win
                    routing.add_cors(environ, static[1])
                    return static
                self._count_unmatched(404)
                raise HTTPError(404, f"no operation serves {printable_path(path)}")
            if method not in ("GET", "HEAD"):
                self._count_unmatched(405)
                raise HTTPError(405, f"{method} is not allowed here",
                                headers={"Allow": "GET, HEAD"})
            status, headers, data = builtin(environ)
            routing.add_cors(environ, headers)
            return status, headers, (data,)
        pipeline = match.methods.get(method)
        if pipeline is None:
            if method == "HEAD":
                pipeline = match.methods.get("GET")
            elif method == "OPTIONS":
                return self._options(environ, match)
            if pipeline is None:
                self._count_unmatched(405)
                raise HTTPError(405, f"{method} is not allowed on {match.template}",
                                headers={"Allow": match.allow})
        return pipeline.serve(environ, path, match.raw_params, request_id)

    def _options(self, environ: dict[str, Any], match: Match[OperationPipeline]) -> Encoded:
        # NOTE: answered here, before any security: a preflight carries no credentials.
        if (self._cors is not None and "HTTP_ORIGIN" in environ
                and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ):
            return self._cors.preflight(environ, match.template, match.allow)
        headers = [("Allow", match.allow)]
        self._add_cors(environ, headers)
        return 204, headers, ()

    def cors_headers(self, origin: str) -> bytes:
        """Return the CORS header lines for an answer to `origin` made outside the app.

        The HTTP engine calls this for its own answers (413, 431 ...) to a request that
        carried an ``Origin``: ``Access-Control-Allow-*`` when the app's policy allows the
        origin, else ``Vary: Origin`` alone; nothing when CORS is off.
        """
        return b"" if self._cors is None else self._cors.header_block(origin)

    @staticmethod
    def _problem(error: HTTPError, path: str, request_id: str) -> Encoded:
        # NOTE: an operation that declares its own error schema answers its problems shaped
        # to it before they get here (`brrt_actors.problem_shapes`, wired by build_app).
        return problem_answer(error, path, request_id)


def _ignore(status: int) -> None:
    pass


def _no_cors(environ: dict[str, Any], headers: list[tuple[str, str]]) -> None:
    pass
