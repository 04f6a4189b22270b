"""The request's way through one operation: the stages, compiled per operation at build time.

After the engine parsed the request, the app answered its built-ins and the router found the
operation, a request goes through that operation's pipeline: the list of what the stage
builders returned for it. Each module here is one stage and exposes one builder,
``build(operation, context) -> Stage | None``; None means the operation does not need the
stage, so no request branches on configuration. In order:

    cors        (`cors`)        a wrapper (see below), first on the way in: a preflight to
                                an OPTIONS operation is answered here, before security; the
                                answer and every problem get the CORS headers on the way out
    security    (`security`)    401 / 403: before any parameter error is revealed
    rate limit  (`rate_limit`)  429 + Retry-After and the RateLimit fields: per client (the
                                principal, else the API key, else the address), counted in
                                the app's storage (memory, or Redis shared by processes)
    parameters  (`parameters`)  path / query / header / cookie: style, explode, coercion,
                                defaults; problems are collected, not raised
    body        (`body`)        JSON / form / multipart / text, 413 / 415, the request
                                schema; problems are collected
    actor       (`actor`)       the collected problems become one 400; else the request goes
                                into the operation's actor (bounded mailbox, worker greenlet,
                                deadline: 503 / 504) and the handler's result comes back
    response    (`response`)    the result encoded (JSON, bytes, streams) and checked against
                                the declared responses (enforce | log | off); an ``x-sse``
                                operation's events streamed (`brrt_actors.sse`)
    compression (`compression`) gzip / br for JSON and text bodies the client accepts so
                                (quality values honoured), ``Vary: Accept-Encoding``

Around the stages, wrapping the whole run (an `Around` builder returns a wrapper, not a
stage), outermost first: tracing (`tracing`: W3C ``traceparent`` in and out, OpenTelemetry
spans), the access log (`access_log`: one JSON line per request), measurement (`measure`:
requests, latency and in-flight figures per operation), CORS (`cors`: a stage could not add
headers to answers and problems made after it), then the rate limit's fields on the answers
it let through (`rate_limit.build_headers`). Each builder returns None when its feature is
off for the operation.

Some modules here are parts of a stage, not stages: `parameter_styles` (the readers of each
parameter style), `body_decoders` (JSON, form, multipart, text and raw bodies),
`exact_checks` (the body and response checks' cheap "valid" for plain schemas),
`rate_limit_storage` (the app's counters) and `tracing_otel` (OpenTelemetry, imported only
when export is configured).

The `context` (`brrt_actors.context.BuildContext`) belongs to the app being built: its
validators, security providers, metrics, settings, actors. Nothing compiled lives in module
globals, so two apps, or the old and new version during a reload, can share a process.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from brrt_actors.handler import Request
from brrt_actors.stages import (
    access_log,
    actor,
    body,
    compression,
    cors,
    measure,
    parameters,
    rate_limit,
    response,
    security,
    tracing,
)
from brrt_actors.stages.response import Encoded

if TYPE_CHECKING:
    from brrt_actors.context import BuildContext
    from brrt_actors.spec.model import Operation

__all__ = ["AROUND_BUILDERS", "STAGE_BUILDERS", "Around", "Encoded", "OperationPipeline",
           "Run", "Stage", "build_pipeline"]


class Stage(Protocol):
    """One step of the request's way: fills the request, or raises `HTTPError`.

    Validation stages add what they find to ``request.problems`` (one 400 lists it all);
    the actor stage sets ``request.result``, the response stage ``request.answer``.
    """

    def __call__(self, request: Request, /) -> None: ...


#: Serves one request of the operation: returns the answer or raises `HTTPError`.
Run = Callable[[Request], Encoded]


class Around(Protocol):
    """Wraps the run of the stages (measurement; tracing and access logs are alike)."""

    def __call__(self, run: Run, /) -> Run: ...


StageBuilder = Callable[["Operation", "BuildContext"], "Stage | None"]
AroundBuilder = Callable[["Operation", "BuildContext"], "Around | None"]

#: The stage builders, in the order the request meets the stages.
STAGE_BUILDERS: tuple[StageBuilder, ...] = (
    security.build, rate_limit.build, parameters.build, body.build, actor.build,
    response.build, compression.build)
#: The wrappers, outermost first.
AROUND_BUILDERS: tuple[AroundBuilder, ...] = (
    tracing.build, access_log.build, measure.build, cors.build, rate_limit.build_headers)


class OperationPipeline:
    """One operation's compiled stages.

    Attributes:
        serve: ``serve(environ, path, raw_path_params, request_id) -> Encoded``: serve one
            request of the operation (the app calls it after routing); raises `HTTPError`
            for an error answer.
        run: the stages (and what is around them) for a `Request` already made.
    """

    __slots__ = ("actor", "arounds", "operation", "run", "serve", "stages")

    def __init__(self, operation: Operation, stages: Iterable[Stage],
                 arounds: Iterable[Around] = (), *, actor: Any = None) -> None:
        self.operation = operation
        self.actor = actor
        self.stages: tuple[Stage, ...] = tuple(stages)
        self.arounds: tuple[Around, ...] = tuple(arounds)
        run_stages = self.stages

        def run_all(request: Request) -> Encoded:
            for stage in run_stages:
                stage(request)
            answer: Encoded = request.answer
            return answer

        run: Run = run_all
        for around in reversed(self.arounds):
            run = around(run)
        self.run: Run = run

        # PERF: closures all the way down: a call of an object's __call__ costs ~60 ns more.
        def serve(environ: dict[str, Any], path: str, raw_path_params: dict[str, str],
                  request_id: str) -> Encoded:
            return run(Request(environ, operation, request_id, path, raw_path_params))

        self.serve = serve


def build_pipeline(operation: Operation, context: BuildContext) -> OperationPipeline:
    """Compile `operation`'s pipeline: what each builder returns, in order.

    Raises:
        SpecError: the operation cannot be served as the spec describes it.
    """
    stages = [stage for build in STAGE_BUILDERS if (stage := build(operation, context))]
    arounds = [wrap for build in AROUND_BUILDERS if (wrap := build(operation, context))]
    return OperationPipeline(operation, stages, arounds,
                             actor=context.actors.get(operation.operation_id))
