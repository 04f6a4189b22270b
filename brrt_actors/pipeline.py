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
from typing import TYPE_CHECKING, Any

from .body import BodyReader
from .errors import HTTPError
from .parameters import ParameterDecoder
from .request import Request
from .responses import Encoded, ResponseEncoder
from .spec.model import Operation

if TYPE_CHECKING:
    from .actors import Actor
    from .request import Principal

# A stage fills the request (or raises HTTPError); validation stages append error items.
Stage = Callable[[Request, dict[str, str], list[dict[str, Any]]], None]


SecurityStage = Callable[[dict[str, Any], str], "Principal | None"]


def _security_stage(check: SecurityStage) -> Stage:
    def security(request: Request, raw_params: dict[str, str],
                 errors: list[dict[str, Any]]) -> None:
        principal = check(request.environ, request.request_id)
        if principal is not None:
            request.principal = principal
            request.claims = principal.claims

    return security


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


class OperationPipeline:
    """Run one operation's stages, its actor, and its response encoding."""

    __slots__ = ("_ask", "_check_error", "_encode", "_stages", "actor", "encoder", "operation")

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
    ) -> None:
        self.operation = operation
        self.actor = actor
        self.encoder = encoder
        stages: list[Stage] = []
        if security is not None:
            stages.append(_security_stage(security))
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

    def run(self, environ: dict[str, Any], raw_params: dict[str, str],
            request_id: str) -> Encoded:
        """Serve one request; raise HTTPError for any answer that is an error."""
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
