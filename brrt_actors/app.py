"""The WSGI application: request id, built-ins, routing into the operations' pipelines, errors.

An `App` is built by `brrt_actors.build.build_app` (everything compiled, nothing started),
then started (`App.start`: the actors' workers, the metrics' background work) and stopped
(`App.stop`: drain with a grace period). `App.__call__` only looks things up.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from brrt_actors import validation
from brrt_actors.actors import ActorSystem
from brrt_actors.builtins import Builtin, build_builtins
from brrt_actors.config import Settings
from brrt_actors.errors import HTTPError, status_title
from brrt_actors.metrics.figures import Metrics
from brrt_actors.problem import (
    PROBLEM_CONTENT_TYPE,
    origin_path,
    printable_path,
    problem_body,
    request_id_from,
)
from brrt_actors.router import Router
from brrt_actors.security import SecurityProvider
from brrt_actors.spec import Spec
from brrt_actors.stages import Encoded, OperationPipeline
from brrt_actors.thread_bridge import ThreadBridge, thread_ident

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


class App:
    """A WSGI application serving one OpenAPI spec through per-operation actors.

    Build it with `brrt_actors.build_app` (nothing runs yet), then `start` it; `stop`
    drains it. (`brrt_actors.create_app` does both of the first two.)

    Attributes:
        metrics: the app's Prometheus figures and registry (None when metrics are off).
    """

    def __init__(self, spec: Spec, settings: Settings, router: Router[OperationPipeline],
                 actors: ActorSystem, effective: dict[str, Any], metrics: Metrics | None = None,
                 own_providers: Iterable[SecurityProvider] = ()) -> None:
        self.spec = spec
        self.settings = settings
        self.router = router
        self.actors = actors
        self.effective_document = effective
        self.metrics = metrics
        self._count_unmatched: Callable[[int], None] = (
            metrics.count_unmatched if metrics is not None else _ignore)
        self._builtins: dict[str, Builtin] = build_builtins(
            effective, spec.title, self._is_ready,
            metrics=metrics.endpoint if metrics is not None else None)
        # The security providers the app built (not those given to it): `stop` closes them.
        self._own_providers = tuple(own_providers)
        self._started = False
        self._stopping = False
        # NOTE: a call from another thread than the one whose hub runs the app is handed
        # to that hub (thread_bridge.py); `start` picks the thread.
        self._bridge = ThreadBridge(self._dispatch, settings, actors)
        self._owner_thread = self._bridge.owner

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
        if self.metrics is not None:
            self._bridge.run(self.metrics.start)
        return self

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
        if self._started:
            self._bridge.run(self.actors.stop,
                             self.settings.shutdown_grace_s if grace_s is None else grace_s)
            if self.metrics is not None:
                self._bridge.run(self.metrics.stop)
        providers, self._own_providers = self._own_providers, ()
        for provider in providers:
            self._bridge.run(provider.close)
        self._bridge.stop()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
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
                raise HTTPError(404, f"no operation serves {printable_path(path)}")
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
        return pipeline.serve(environ, path, match.raw_params, request_id)

    @staticmethod
    def _problem(error: HTTPError, path: str, request_id: str) -> Encoded:
        body = problem_body(error, printable_path(path), request_id)
        headers = list(error.headers.items())
        headers.append(("Content-Type", PROBLEM_CONTENT_TYPE))
        headers.append(("Content-Length", str(len(body))))
        return error.status, headers, (body,)


def _ignore(status: int) -> None:
    pass
