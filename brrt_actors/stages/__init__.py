"""One operation's compiled pipeline: the stages a request of that operation goes through.

Built once at start from the operation; a stage with nothing to do for the operation (no
security, no parameters, no body) is simply not in the list, so the request path holds no
branches on configuration:

    security (401/403, first: before any parameter error is revealed)
    -> parameters (path/query/header/cookie)  -> body     (errors collected: one 400)
    -> actor (mailbox, worker, deadline)       -> response encoding and validation
"""
from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any

from brrt_actors.errors import HTTPError
from brrt_actors.handler import Request
from brrt_actors.spec.model import Operation
from brrt_actors.stages.body import BodyReader
from brrt_actors.stages.parameters import ParameterDecoder
from brrt_actors.stages.response import Encoded, ResponseEncoder

if TYPE_CHECKING:
    from brrt_actors.actors import Actor
    from brrt_actors.handler import Principal
    from brrt_actors.metrics.figures import OperationMetrics

# A stage fills the request (or raises HTTPError); validation stages append error items.
Stage = Callable[[Request, dict[str, str], list[dict[str, Any]]], None]


SecurityStage = Callable[[dict[str, Any], str], "Principal | None"]


def _security_stage(check: SecurityStage,
                    failed: Callable[[int], None] | None = None) -> Stage:
    def security(request: Request, raw_params: dict[str, str],
                 errors: list[dict[str, Any]]) -> None:
        principal = check(request.environ, request.request_id)
        if principal is not None:
            request.principal = principal
            request.claims = principal.claims

    if failed is None:
        return security

    def counted_security(request: Request, raw_params: dict[str, str],
                         errors: list[dict[str, Any]]) -> None:
        try:
            principal = check(request.environ, request.request_id)
        except HTTPError as ex:
            failed(ex.status)
            raise
        if principal is not None:
            request.principal = principal
            request.claims = principal.claims

    return counted_security


def _parameter_stage(decoder: ParameterDecoder) -> Stage:
    decode = decoder.decode

    def parameters(request: Request, raw_params: dict[str, str],
                   errors: list[dict[str, Any]]) -> None:
        (request.path_params, request.query, request.header_params, request.cookies,
         problems) = decode(raw_params, request.environ)
        if problems:
            errors.extend(problems)

    return parameters


def _body_stage(reader: BodyReader) -> Stage:
    read = reader.read

    def body(request: Request, raw_params: dict[str, str],
             errors: list[dict[str, Any]]) -> None:
        request.body, problems = read(request.environ)
        if problems:
            errors.extend(problems)

    return body


Run = Callable[[dict[str, Any], dict[str, str], str], Encoded]


def _measured(serve: Run, figures: OperationMetrics) -> Run:
    # PERF: ~0.5 µs per request in all (two perf_counter calls, the in-flight count, one
    # `observe`); benchmarks/metrics.py compares the pipeline with metrics on and off.
    observe = figures.observe

    def run(environ: dict[str, Any], raw_params: dict[str, str], request_id: str) -> Encoded:
        figures.in_flight += 1
        start = perf_counter()
        try:
            encoded = serve(environ, raw_params, request_id)
        except HTTPError as ex:
            observe(ex.status, perf_counter() - start)
            raise
        except Exception:
            observe(500, perf_counter() - start)  # the app answers 500
            raise
        finally:
            figures.in_flight -= 1
        observe(encoded[0], perf_counter() - start)
        return encoded

    return run


class OperationPipeline:
    """Run one operation's stages, its actor, and its response encoding."""

    __slots__ = ("_ask", "_check_error", "_encode", "_stages", "actor", "encoder", "operation",
                 "run")

    def __init__(
        self,
        operation: Operation,
        actor: Actor,
        encoder: ResponseEncoder,
        *,
        security: SecurityStage | None,
        max_body_bytes: int,
        runtime_statuses: frozenset[int],
        validate_error_statuses: bool,
        metrics: OperationMetrics | None = None,
        auth_failed: Callable[[int], None] | None = None,
    ) -> None:
        self.operation = operation
        self.actor = actor
        self.encoder = encoder
        stages: list[Stage] = []
        if security is not None:
            stages.append(_security_stage(security, auth_failed))
        if operation.parameters:
            stages.append(_parameter_stage(ParameterDecoder(operation.parameters)))
        if operation.request_body is not None:
            stages.append(_body_stage(BodyReader(operation.request_body, max_body_bytes)))
        self._stages = tuple(stages)
        self._ask = actor.ask
        self._encode = encoder.encode
        statuses = runtime_statuses
        check_error = encoder.check_error

        def check_error_status(error: HTTPError) -> None:
            check_error(error, statuses)

        self._check_error: Callable[[HTTPError], None] | None = (
            check_error_status if validate_error_statuses else None)
        # `run(environ, raw_params, request_id)` serves one request and raises HTTPError for
        # any answer that is an error. A callable swapped once: no per-request branch on
        # whether metrics are on.
        self.run: Run = self._serve if metrics is None else _measured(self._serve, metrics)

    def _serve(self, environ: dict[str, Any], raw_params: dict[str, str],
               request_id: str) -> Encoded:
        request = Request(environ, self.operation, request_id)
        errors: list[dict[str, Any]] = []
        for stage in self._stages:
            stage(request, raw_params, errors)
        if errors:
            raise HTTPError(400, "the request does not match the API description",
                            errors=errors)
        try:
            result = self._ask(request)
        except HTTPError as ex:
            if self._check_error is not None and ex.status < 500:
                self._check_error(ex)
            raise
        return self._encode(result)
