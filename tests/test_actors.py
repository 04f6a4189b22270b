"""Actors on real gevent: mailbox bounds, deadlines, errors, restarts, drain."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import gevent
import pytest
from gevent.monkey import get_original

from brrt_actors.actor_system import ActorSystem
from brrt_actors.actors import Actor, HandlerTimeout
from brrt_actors.config import ActorSettings
from brrt_actors.errors import HTTPError

MakeActor = Callable[..., Actor]


@pytest.fixture()
def make_actor() -> Iterator[MakeActor]:
    """Build and start actors; stop them after the test."""
    made: list[Actor] = []

    def make(handler: Callable[[Any], Any], name: str = "op", **settings: Any) -> Actor:
        actor = Actor(name, handler, ActorSettings(**settings))
        actor.start()
        made.append(actor)
        return actor

    yield make
    for actor in made:
        actor.stop(0)


def _ask_later(actor: Actor, request: Any) -> gevent.Greenlet[..., Any]:
    """Call actor.ask in a new greenlet; its value is the answer or the HTTPError raised."""

    def call() -> Any:
        try:
            return actor.ask(request)
        except HTTPError as ex:
            return ex

    return gevent.spawn(call)


def _request(request_id: str = "req-1") -> SimpleNamespace:
    return SimpleNamespace(request_id=request_id)


# -- the happy path ------------------------------------------------------------------------

def test_ask_returns_the_handler_value_and_workers_are_named(make_actor: MakeActor) -> None:
    actor = make_actor(lambda request: {"echo": request}, name="get_pet", workers=3)

    assert actor.ask(7) == {"echo": 7}
    assert [worker.name for worker in actor.workers] == [
        "get_pet-worker-0", "get_pet-worker-1", "get_pet-worker-2"]
    assert actor.completed == 1
    assert actor.busy == 0


def test_handler_runs_in_a_worker_greenlet(make_actor: MakeActor) -> None:
    actor = make_actor(lambda request: gevent.getcurrent().name, name="who", workers=1)

    assert actor.ask(None) == "who-worker-0"


def test_no_deadline_waits_for_the_handler(make_actor: MakeActor) -> None:
    actor = make_actor(lambda request: gevent.sleep(0.05) or "done", deadline_ms=0)

    assert actor.ask(None) == "done"


# -- deadlines -----------------------------------------------------------------------------

def test_deadline_answers_504_cancels_the_handler_and_the_worker_goes_on(
        make_actor: MakeActor) -> None:
    seen: dict[str, Any] = {}

    def handler(request: str) -> str:
        if request == "fast":
            seen["fast_worker"] = gevent.getcurrent()
            return "fast"
        seen["slow_worker"] = gevent.getcurrent()
        try:
            gevent.sleep(1.0)
            seen["slept"] = True
        except gevent.Timeout as ex:
            seen["timeout"] = ex
            raise
        finally:
            seen["finally"] = time.monotonic()
        return "slow"

    actor = make_actor(handler, workers=1, deadline_ms=50)
    started = time.monotonic()
    with pytest.raises(HTTPError) as caught:
        actor.ask("slow")
    waited = time.monotonic() - started

    assert caught.value.status == 504
    assert "50 ms" in (caught.value.detail or "")
    assert 0.04 <= waited < 0.5
    assert actor.ask("fast") == "fast"
    # The handler really was interrupted: a gevent.Timeout inside it, its finally ran.
    assert isinstance(seen["timeout"], HandlerTimeout)
    assert isinstance(seen["timeout"], gevent.Timeout)
    assert "deadline" in str(seen["timeout"])
    assert "slept" not in seen
    assert seen["finally"] - started < 0.5
    # ... and the very same worker served the next request.
    assert seen["fast_worker"] is seen["slow_worker"]
    assert actor.restarts == 0
    assert (actor.deadline_exceeded, actor.cancelled) == (1, 1)


def test_deadline_holds_on_the_timers_an_actor_keeps_between_asks(
        make_actor: MakeActor) -> None:
    # The deadline timers of answered asks are kept and started again for the next ones.
    def handler(request: str) -> str:
        if request == "slow":
            gevent.sleep(1.0)
        return request

    actor = make_actor(handler, workers=2, deadline_ms=50)
    for _ in range(3):
        assert [actor.ask("fast") for _ in range(5)] == ["fast"] * 5
        started = time.monotonic()
        with pytest.raises(HTTPError) as caught:
            actor.ask("slow")
        assert caught.value.status == 504
        assert 0.04 <= time.monotonic() - started < 0.5
    gevent.sleep(0.1)  # no kept timer fires for an ask answered long ago
    assert (actor.deadline_exceeded, actor.cancelled, actor.completed) == (3, 3, 15)


def test_envelope_whose_deadline_passed_in_the_mailbox_is_not_run(
        make_actor: MakeActor) -> None:
    ran: list[str] = []

    def handler(request: str) -> str:
        ran.append(request)
        if request == "stubborn":
            try:
                gevent.sleep(1.0)
            except gevent.Timeout:
                gevent.sleep(0.15)  # ignores its cancellation for a while
        return request

    actor = make_actor(handler, workers=1, deadline_ms=50)
    first = _ask_later(actor, "stubborn")
    gevent.sleep(0.01)
    second = _ask_later(actor, "queued")
    gevent.joinall([first, second], timeout=0.5)

    assert first.value.status == 504
    assert second.value.status == 504
    gevent.sleep(0.25)  # the stubborn handler has finished now
    assert ran == ["stubborn"]
    assert actor.expired == 1
    assert actor.ask("next") == "next"


@pytest.mark.parametrize("deadline_ms", [0, 30000])
def test_envelope_of_a_caller_that_went_away_is_not_run(make_actor: MakeActor,
                                                        deadline_ms: int) -> None:
    ran: list[str] = []

    def handler(request: str) -> str:
        ran.append(request)
        gevent.sleep(0.05)
        return request

    actor = make_actor(handler, workers=1, deadline_ms=deadline_ms)
    running = _ask_later(actor, "running")
    gevent.sleep(0.01)
    gone = _ask_later(actor, "gone")
    gevent.sleep(0.01)
    gone.kill(block=True)
    running.join(timeout=0.5)
    gevent.sleep(0.01)

    assert running.value == "running"
    assert ran == ["running"]
    assert actor.expired == 1
    assert actor.ask("next") == "next"


def test_deadline_counts_from_the_ask_after_a_busy_loop_iteration(
        make_actor: MakeActor) -> None:
    # The loop reads its clock once per iteration: a request posted late in a long
    # iteration (a burst) must get its whole deadline, not 504 at once (issue 9).
    def handler(request: str) -> str:
        gevent.sleep(0.01)
        return request

    actor = make_actor(handler, deadline_ms=250)

    def call() -> Any:
        gevent.sleep(0.001)  # resumed by a loop timer, as a connection is by its socket
        get_original("time", "sleep")(0.3)  # the iteration is busy for 300 ms
        return actor.ask("answered")

    assert gevent.spawn(call).get(timeout=5) == "answered"
    assert actor.deadline_exceeded == 0


# -- mailbox bounds ------------------------------------------------------------------------

def test_shed_answers_503_at_once_while_another_actor_keeps_answering(
        make_actor: MakeActor) -> None:
    slow = make_actor(lambda request: gevent.sleep(0.1) or "slow", name="slow",
                      workers=1, mailbox=2, policy="shed", retry_after_s=2)
    fast = make_actor(lambda request: "fast", name="fast")

    first = _ask_later(slow, 0)
    gevent.sleep(0.01)  # the worker has taken it: the mailbox is empty again
    started = time.monotonic()
    flood = [_ask_later(slow, i) for i in range(1, 10)]
    gevent.sleep(0.01)
    answers_while_flooded = [fast.ask(i) for i in range(5)]
    rejected = [g.value for g in flood if g.ready()]
    rejected_after = time.monotonic() - started
    gevent.joinall([first, *flood], timeout=1.0)

    assert answers_while_flooded == ["fast"] * 5
    assert len(rejected) == 7
    assert rejected_after < 0.15
    for error in rejected:
        assert isinstance(error, HTTPError)
        assert error.status == 503
        assert error.headers == {"Retry-After": "2"}
        assert error.detail
    served = [g.value for g in [first, *flood] if g.value == "slow"]
    assert len(served) == 3  # one running + the two the mailbox holds
    assert slow.rejected == 7


def test_block_waits_for_room_then_answers_503(make_actor: MakeActor) -> None:
    actor = make_actor(lambda request: gevent.sleep(0.3), workers=1, mailbox=1,
                       policy="block", block_timeout_ms=50)
    running = _ask_later(actor, 1)
    gevent.sleep(0.01)
    queued = _ask_later(actor, 2)
    gevent.sleep(0.01)

    started = time.monotonic()
    with pytest.raises(HTTPError) as caught:
        actor.ask(3)
    waited = time.monotonic() - started

    assert caught.value.status == 503
    assert caught.value.headers == {"Retry-After": "1"}
    assert 0.04 <= waited < 0.25
    assert actor.rejected == 1
    gevent.killall([running, queued])


def test_block_gets_in_when_room_comes_within_the_timeout(make_actor: MakeActor) -> None:
    actor = make_actor(lambda request: gevent.sleep(0.03) or request, workers=1, mailbox=1,
                       policy="block", block_timeout_ms=300)
    calls = [_ask_later(actor, i) for i in range(3)]
    gevent.joinall(calls, timeout=1.0)

    assert sorted(g.value for g in calls) == [0, 1, 2]
    assert actor.rejected == 0


# -- handler errors ------------------------------------------------------------------------

def test_handler_exception_is_a_500_without_internals_and_is_logged(
        make_actor: MakeActor, caplog: pytest.LogCaptureFixture) -> None:
    def handler(request: SimpleNamespace) -> str:
        if request.request_id == "boom":
            raise RuntimeError("password=hunter2 at db.internal:5432")
        return "ok"

    actor = make_actor(handler, workers=1)
    with caplog.at_level(logging.ERROR, logger="brrt_actors.actors"), \
            pytest.raises(HTTPError) as caught:
        actor.ask(_request("boom"))

    assert caught.value.status == 500
    assert "hunter2" not in str(caught.value)
    assert "RuntimeError" not in str(caught.value)
    [record] = [r for r in caplog.records if r.name == "brrt_actors.actors"]
    assert "boom" in record.getMessage()
    assert record.exc_info is not None and "hunter2" in str(record.exc_info[1])
    # The worker goes on.
    assert actor.ask(_request("fine")) == "ok"
    assert (actor.handler_errors, actor.restarts) == (1, 0)


def test_http_error_from_the_handler_is_raised_as_is(make_actor: MakeActor) -> None:
    error = HTTPError(404, "no such pet")

    def handler(request: Any) -> Any:
        raise error

    actor = make_actor(handler)
    with pytest.raises(HTTPError) as caught:
        actor.ask(None)

    assert caught.value is error
    assert actor.handler_errors == 0


def test_handlers_own_escaping_timeout_is_a_500_not_a_dead_worker(
        make_actor: MakeActor, caplog: pytest.LogCaptureFixture) -> None:
    def handler(request: Any) -> str:
        if request == "own-timeout":
            with gevent.Timeout(0.01):
                gevent.sleep(0.5)
        return "ok"

    actor = make_actor(handler, workers=1)
    with caplog.at_level(logging.CRITICAL, logger="brrt_actors.actors"), \
            pytest.raises(HTTPError) as caught:
        actor.ask("own-timeout")

    assert caught.value.status == 500
    assert actor.ask("next") == "ok"
    assert actor.restarts == 0


# -- concurrency ---------------------------------------------------------------------------

def _concurrency_probe() -> tuple[Callable[[Any], Any], dict[str, int]]:
    state = {"now": 0, "max": 0}

    def handler(request: Any) -> Any:
        state["now"] += 1
        state["max"] = max(state["max"], state["now"])
        try:
            gevent.sleep(0.05)
        finally:
            state["now"] -= 1
        return request

    return handler, state


def test_one_worker_serialises_calls(make_actor: MakeActor) -> None:
    handler, state = _concurrency_probe()
    actor = make_actor(handler, workers=1)
    started = time.monotonic()
    calls = [_ask_later(actor, i) for i in range(4)]
    gevent.joinall(calls, timeout=1.0)
    elapsed = time.monotonic() - started

    assert [g.value for g in calls] == [0, 1, 2, 3]
    assert state["max"] == 1
    assert elapsed >= 0.18  # ~4 x 50 ms


def test_eight_workers_run_eight_calls_at_once(make_actor: MakeActor) -> None:
    handler, state = _concurrency_probe()
    actor = make_actor(handler, workers=8)
    started = time.monotonic()
    calls = [_ask_later(actor, i) for i in range(8)]
    gevent.joinall(calls, timeout=1.0)
    elapsed = time.monotonic() - started

    assert sorted(g.value for g in calls) == list(range(8))
    assert state["max"] == 8
    assert elapsed < 0.15  # ~1 x 50 ms


# -- restarts ------------------------------------------------------------------------------

def test_killed_worker_is_restarted(make_actor: MakeActor,
                                    caplog: pytest.LogCaptureFixture) -> None:
    actor = make_actor(lambda request: request, name="op", workers=2)
    victim = actor.workers[0]
    with caplog.at_level(logging.CRITICAL, logger="brrt_actors.actors"):
        victim.kill(block=True)
        gevent.sleep(0.01)

    replacement = actor.workers[0]
    assert victim.dead
    assert replacement is not victim
    assert not replacement.dead
    assert replacement.name == "op-worker-0"
    assert actor.restarts == 1
    calls = [_ask_later(actor, i) for i in range(4)]
    gevent.joinall(calls, timeout=0.5)
    assert sorted(call.value for call in calls) == [0, 1, 2, 3]


def test_worker_killed_mid_handler_answers_its_caller(make_actor: MakeActor,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    actor = make_actor(lambda request: gevent.sleep(1.0), workers=1, deadline_ms=0)
    call = _ask_later(actor, None)
    gevent.sleep(0.01)
    assert actor.busy == 1
    with caplog.at_level(logging.CRITICAL, logger="brrt_actors.actors"):
        actor.workers[0].kill(block=True)
        call.join(timeout=0.5)

    assert isinstance(call.value, HTTPError)
    assert call.value.status == 500
    assert actor.busy == 0
    assert actor.restarts == 1


# -- stop ----------------------------------------------------------------------------------

def test_stop_drains_the_mailbox_then_refuses(make_actor: MakeActor) -> None:
    served: list[int] = []

    def handler(request: int) -> int:
        gevent.sleep(0.02)
        served.append(request)
        return request

    actor = make_actor(handler, workers=1, mailbox=10)
    calls = [_ask_later(actor, i) for i in range(5)]
    gevent.sleep(0.005)
    stopping = gevent.spawn(actor.stop, 1.0)
    gevent.sleep(0.005)

    with pytest.raises(HTTPError) as during:
        actor.ask(99)
    stopping.join(timeout=1.0)
    with pytest.raises(HTTPError) as after:
        actor.ask(100)

    assert stopping.dead
    assert [g.value for g in calls] == [0, 1, 2, 3, 4]
    assert served == [0, 1, 2, 3, 4]
    for refused in (during.value, after.value):
        assert refused.status == 503
        assert refused.headers == {"Retry-After": "1"}
        assert "shutting down" in (refused.detail or "")
    assert all(worker.dead for worker in actor.workers)
    assert actor.restarts == 0


def test_stop_after_the_grace_period_kills_and_answers_503(make_actor: MakeActor) -> None:
    cleaned: list[str] = []

    def handler(request: Any) -> None:
        try:
            gevent.sleep(2.0)
        finally:
            cleaned.append(request)

    actor = make_actor(handler, workers=1, mailbox=2, deadline_ms=0)
    calls = [_ask_later(actor, i) for i in range(3)]  # one running, the mailbox full
    gevent.sleep(0.01)
    started = time.monotonic()
    actor.stop(0.1)
    took = time.monotonic() - started
    gevent.joinall(calls, timeout=0.5)

    assert 0.09 <= took < 0.7
    assert cleaned == [0]  # the running one was killed; the queued ones never ran
    for call in calls:
        assert isinstance(call.value, HTTPError)
        assert call.value.status == 503
        assert call.value.headers == {"Retry-After": "1"}
    assert actor.restarts == 0


def test_caller_blocked_on_a_full_mailbox_during_stop_gets_503(make_actor: MakeActor) -> None:
    actor = make_actor(lambda request: gevent.sleep(2.0), workers=1, mailbox=1,
                       policy="block", block_timeout_ms=500, deadline_ms=0)
    calls = [_ask_later(actor, i) for i in range(2)]  # one running, one queued
    gevent.sleep(0.01)
    blocked = _ask_later(actor, 2)
    gevent.sleep(0.01)
    actor.stop(0.05)
    gevent.joinall([*calls, blocked], timeout=0.5)

    assert [call.value.status for call in [*calls, blocked]] == [503, 503, 503]
    assert actor.rejected == 0


def test_shed_without_deadline(make_actor: MakeActor) -> None:
    actor = make_actor(lambda request: gevent.sleep(0.05), workers=1, mailbox=1,
                       policy="shed", deadline_ms=0)
    calls = [_ask_later(actor, i) for i in range(3)]
    gevent.joinall(calls, timeout=0.5)

    assert sorted(str(call.value) for call in calls).count("None") == 1
    assert actor.rejected == 2


def test_ask_before_start_is_refused() -> None:
    actor = Actor("op", lambda request: request, ActorSettings())

    with pytest.raises(HTTPError) as caught:
        actor.ask(None)

    assert caught.value.status == 503
    assert actor.refused == 1


def test_start_twice_is_an_error(make_actor: MakeActor) -> None:
    actor = make_actor(lambda request: request)

    with pytest.raises(RuntimeError):
        actor.start()


# -- the system ----------------------------------------------------------------------------

def test_actor_system_holds_one_actor_per_operation_and_stops_them_together() -> None:
    def slow(request: Any) -> None:
        gevent.sleep(2.0)

    first = Actor("first", slow, ActorSettings(workers=1, deadline_ms=0))
    second = Actor("second", slow, ActorSettings(workers=1, deadline_ms=0))
    system = ActorSystem([first])
    system.add(second)
    with pytest.raises(ValueError, match="second"):
        system.add(Actor("second", slow, ActorSettings()))

    assert system.get("first") is first
    assert system["second"] is second
    assert "first" in system and "third" not in system
    assert [actor.name for actor in system] == ["first", "second"]
    assert len(system) == 2

    system.start()
    calls = [_ask_later(first, 1), _ask_later(second, 2)]
    gevent.sleep(0.01)
    assert system.stats()["first"]["busy"] == 1
    started = time.monotonic()
    system.stop(0.1)
    took = time.monotonic() - started
    gevent.joinall(calls, timeout=0.5)

    assert took < 0.7  # concurrently: not 2 x (grace + kill)
    assert [call.value.status for call in calls] == [503, 503]
