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
    from brrt_actors.stages import Stage

__all__ = ["INVALID_REQUEST", "build"]

INVALID_REQUEST = "the request does not match the API description"


def _stage(actor: Actor, check_error: Callable[[HTTPError], None] | None) -> Stage:
    ask: Callable[[Request], Any] = actor.ask

    # PERF: stages are closures, not objects with __call__ (~60 ns less per stage and request).
    def actor_stage(request: Request) -> None:
        if request.problems:
            raise HTTPError(400, INVALID_REQUEST, errors=request.problems)
        try:
            request.result = ask(request)
        except HTTPError as ex:
            if check_error is not None and ex.status < 500:
                check_error(ex)
            raise

    return actor_stage


def build(operation: Operation, context: BuildContext) -> Stage:
    """Build the operation's actor (not started: the app starts it) and the stage asking it.

    A problem collected by an earlier stage becomes one 400 here; an `HTTPError` the
    handler raised goes on, its status checked against the declared responses first
    (unless response validation is off).
    """
    name = operation.operation_id
    if name in context.actors:
        # NOTE: an actor a hot reload keeps (`build_app(previous=...)` put it there first).
        actor = context.actors[name]
    else:
        actor = Actor(name, context.handlers[name], context.actor_settings[name])
        context.actors.add(actor)
    check_error = None
    if context.settings.response_validation != "off":
        check = encoder_for(operation, context).check_error
        statuses = context.runtime_statuses

        def check_error(error: HTTPError) -> None:
            check(error, statuses)

    return _stage(actor, check_error)
