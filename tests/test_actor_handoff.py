"""The direct hand-off: a caller switches straight into an idle worker, which switches back.

Each test here fails on a naive direct switch: the worker must not switch into a caller that
moved on or died, nor into a dead worker; a blocking handler lets the process run; and a
caller answered directly, again and again, still lets the loop serve timers and I/O.
"""
from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import pytest
from gevent.monkey import get_original

from brrt_actors.actors import DIRECT_HANDOFFS_BEFORE_YIELD, Actor, HandlerTimeout
from brrt_actors.config import ActorSettings
from brrt_actors.errors import HTTPError

StartActor = Callable[..., Actor]


@pytest.fixture()
def start_actor() -> Iterator[StartActor]:
    """Build and start actors, let their workers park idle; stop them after the test."""
    made: list[Actor] = []

    def start(handler: Callable[[Any], Any], **settings: Any) -> Actor:
        actor = Actor("op", handler, ActorSettings(**settings))
        actor.start()
        made.append(actor)
        gevent.sleep(0.001)  # the workers start and go idle: the next ask is handed over
        return actor

    yield start
    for actor in made:
        actor.stop(0)


def _handed_over(actor: Actor, ask: Callable[[], Any]) -> Any:
    # Ask, and check the ask really was a direct hand-off (not the mailbox's way).
    before = actor._direct_handoffs
    value = ask()
    assert actor._direct_handoffs == before + 1
    return value


def test_a_direct_hand_off_runs_in_a_worker_and_measures_its_wait(
        start_actor: StartActor) -> None:
    class Req:
        mailbox_wait: float | None = None

    actor = start_actor(lambda request: (gevent.getcurrent().name, request), workers=2)
    request = Req()

    name, same = _handed_over(actor, lambda: actor.ask(request))

    assert name.startswith("op-worker-")
    assert same is request
    assert request.mailbox_wait is not None and 0.0 <= request.mailbox_wait < 0.1
    assert (actor.completed, actor.busy, actor.queue_depth) == (1, 0, 0)


def test_the_deadline_fires_in_a_direct_hand_off_and_the_late_value_is_dropped(
        start_actor: StartActor) -> None:
    # The handler swallows its cancellation and answers late: the worker must not switch into
    # the caller, which answered 504 and went on to wait for something else.
    def handler(request: str) -> str:
        if request == "slow":
            try:
                gevent.sleep(1.0)
            except HandlerTimeout:
                gevent.sleep(0.05)
                return "late"
        return request

    actor = start_actor(handler, workers=1, deadline_ms=50)
    started = time.monotonic()
    with pytest.raises(HTTPError) as caught:
        _handed_over(actor, lambda: actor.ask("slow"))
    assert caught.value.status == 504
    assert 0.04 <= time.monotonic() - started < 0.5

    slept_from = time.monotonic()
    gevent.sleep(0.2)  # the late answer comes meanwhile: it must not wake this sleep
    assert time.monotonic() - slept_from >= 0.19
    assert _handed_over(actor, lambda: actor.ask("fast")) == "fast"
    assert (actor.deadline_exceeded, actor.completed, actor.busy) == (1, 2, 0)


def test_a_caller_that_moved_on_is_not_switched_to(start_actor: StartActor) -> None:
    # The caller gave up by a timeout of its own (it lives on); then a killed one.
    finished = []

    def handler(request: str) -> str:
        gevent.sleep(0.1)
        finished.append(request)
        return request

    def impatient() -> float:
        try:
            with gevent.Timeout(0.02):
                actor.ask("first")
        except gevent.Timeout:
            pass
        slept_from = time.monotonic()
        gevent.sleep(0.2)  # the handler returns meanwhile: nothing may wake this sleep
        return time.monotonic() - slept_from

    actor = start_actor(handler, workers=1, deadline_ms=1000)
    caller = gevent.spawn(impatient)
    assert caller.get(timeout=2) >= 0.19
    assert finished == ["first"]
    assert actor._direct_handoffs == 1

    killed = gevent.spawn(actor.ask, "second")
    gevent.sleep(0.02)
    assert actor.busy == 1 and actor._direct_handoffs == 2
    killed.kill()  # GreenletExit, as a server stop kills its connections
    assert isinstance(killed.value, gevent.GreenletExit)
    gevent.sleep(0.2)
    assert finished == ["first", "second"]
    assert _handed_over(actor, lambda: actor.ask("next")) == "next"
    assert (actor.completed, actor.restarts, actor.busy) == (3, 0, 0)


def test_a_blocking_handler_lets_the_process_run_then_answers(
        start_actor: StartActor) -> None:
    ticks: list[float] = []

    def tick() -> None:
        while True:
            gevent.sleep(0.005)
            ticks.append(time.monotonic())

    real_sleep = get_original("time", "sleep")

    def handler(request: str) -> str:
        if request == "sleep":
            gevent.sleep(0.05)
        else:  # a call handed to a real thread: the hub runs meanwhile
            gevent.get_hub().threadpool.apply(real_sleep, (0.05,))
        return request

    actor = start_actor(handler, workers=2, deadline_ms=1000)
    ticker = gevent.spawn(tick)
    gevent.sleep(0.001)
    try:
        for request in ("sleep", "thread"):
            before = len(ticks)
            assert _handed_over(actor, lambda r=request: actor.ask(r)) == request
            assert len(ticks) - before >= 3
    finally:
        ticker.kill()
    assert (actor.completed, actor.busy) == (2, 0)


def test_a_caller_answered_directly_again_and_again_lets_timers_and_io_run(
        start_actor: StartActor) -> None:
    actor = start_actor(lambda request: request, workers=1)
    fired: list[int] = []
    asks = 0
    timer = gevent.get_hub().loop.timer(0.002)
    timer.start(lambda: fired.append(asks))
    left, right = socket.socketpair()
    received: list[int] = []
    reader = gevent.spawn(lambda: (left.recv(1), received.append(asks)))
    gevent.sleep(0)  # the reader waits on its socket now, not in a loop callback
    right.send(b"x")
    try:
        started = time.monotonic()
        while time.monotonic() - started < 0.05:
            actor.ask(asks)
            asks += 1
    finally:
        timer.close()
        reader.kill()
        left.close()
        right.close()

    assert actor._direct_handoffs <= DIRECT_HANDOFFS_BEFORE_YIELD
    assert fired and fired[0] < asks
    assert received and received[0] < asks


def test_an_idle_worker_killed_is_never_handed_an_envelope(start_actor: StartActor) -> None:
    def handler(request: str) -> tuple[str, str]:
        if request == "slow":
            gevent.sleep(0.05)
        return gevent.getcurrent().name, request

    actor = start_actor(handler, workers=1, deadline_ms=1000)
    first = actor.workers[0]
    gevent.kill(first)
    gevent.sleep(0.001)  # the restarted worker starts and goes idle
    slow = gevent.spawn(actor.ask, "slow")
    gevent.sleep(0.01)  # the new worker runs the slow one: no live worker is idle

    with gevent.Timeout(2):
        assert actor.ask("fast") == ("op-worker-0", "fast")
    assert slow.get(timeout=2) == ("op-worker-0", "slow")
    assert actor.workers[0] is not first and first.dead
    assert (actor.restarts, actor.completed) == (1, 2)


def test_errors_of_a_handler_handed_over_reach_the_caller_as_before(
        start_actor: StartActor, caplog: pytest.LogCaptureFixture) -> None:
    teapot = HTTPError(418, "no coffee")

    def handler(request: str) -> str:
        if request == "http":
            raise teapot
        raise ZeroDivisionError("boom")

    actor = start_actor(handler, workers=1)
    with pytest.raises(HTTPError) as caught:
        _handed_over(actor, lambda: actor.ask("http"))
    assert caught.value is teapot
    with caplog.at_level(logging.ERROR, logger="brrt_actors.actors"), \
            pytest.raises(HTTPError) as failed:
        _handed_over(actor, lambda: actor.ask("boom"))
    assert failed.value.status == 500
    assert "boom" not in str(failed.value)
    (record,) = [r for r in caplog.records if r.name == "brrt_actors.actors"]
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError
    assert record.exc_info[2] is not None
    assert record.exc_info[2].tb_next is not None  # the handler's own frame is in it
    assert (actor.completed, actor.handler_errors) == (2, 1)  # as on the mailbox's way


def test_a_handler_asking_another_actor_is_handed_over_twice(
        start_actor: StartActor) -> None:
    inner = start_actor(lambda request: request * 2, workers=1)
    outer = start_actor(lambda request: inner.ask(request) + 1, workers=1)

    assert _handed_over(outer, lambda: outer.ask(20)) == 41
    assert inner._direct_handoffs == 1
    assert (inner.completed, outer.completed) == (1, 1)


def test_stop_wakes_idle_workers_parked_after_a_direct_answer(
        start_actor: StartActor) -> None:
    actor = start_actor(lambda request: request, workers=3)
    assert _handed_over(actor, lambda: actor.ask(1)) == 1

    started = time.monotonic()
    actor.stop(5.0)

    assert time.monotonic() - started < 0.5
    assert all(worker.dead for worker in actor.workers)
    with pytest.raises(HTTPError) as caught:
        actor.ask(2)
    assert caught.value.status == 503
