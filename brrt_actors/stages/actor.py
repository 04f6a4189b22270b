"""The actor stage: a valid request goes into its operation's actor; the handler's value comes back.

The problems the parameter and body stages collected become one 400 here, before anything
is queued. Otherwise the request is put into the operation's `Actor` (bounded mailbox, worker
greenlets, deadline: `brrt_actors.actors`), and the handler's return value is put on the
request for the response stage. An `HTTPError` the handler raised goes on to the client; its
status is checked against the declared responses first, as the response stage checks values.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from brrt_actors.actors import Actor
from brrt_actors.errors import HTTPError
from brrt_actors.stages.response import encoder_for

if TYPE_CHECKING:
    from brrt_actors.context import BuildContext
    from brrt_actors.handler import Request
    from brrt_actors.spec.model import Operation

__all__ = ["ActorStage", "build"]

INVALID_REQUEST = "the request does not match the API description"


class ActorStage:
    """Refuse a request with problems (400); else ask the actor and keep its answer."""

    __slots__ = ("_ask", "_check_error", "actor")

    def __init__(self, actor: Actor,
                 check_error: Callable[[HTTPError], None] | None = None) -> None:
        self.actor = actor
        self._ask: Callable[[Request], Any] = actor.ask
        self._check_error = check_error

    def __call__(self, request: Request) -> None:
        if request.problems:
            raise HTTPError(400, INVALID_REQUEST, errors=request.problems)
        try:
            request.result = self._ask(request)
        except HTTPError as ex:
            if self._check_error is not None and ex.status < 500:
                self._check_error(ex)
            raise


def build(operation: Operation, context: BuildContext) -> ActorStage:
    """Build the operation's actor (not started: the app starts it) and the stage asking it."""
    name = operation.operation_id
    actor = Actor(name, context.handlers[name], context.actor_settings[name])
    context.actors.add(actor)
    check_error = None
    if context.settings.response_validation != "off":
        check = encoder_for(operation, context).check_error
        statuses = context.runtime_statuses

        def check_error(error: HTTPError) -> None:
            check(error, statuses)

    return ActorStage(actor, check_error)
