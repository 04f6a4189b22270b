"""Micro-benchmark: one actor hop (enqueue -> worker greenlet -> handler -> reply -> caller).

Compares reply-slot designs for `brrt_actors.actors`, each with a deadline on both sides
(the caller waits with a timeout, the worker runs the handler under a timer), the floor of
a hop (the caller switches straight into an idle worker greenlet, which switches straight
back: no hub, no mailbox), then the real `Actor.ask`. The handler does nothing, so the
numbers are the runtime's own cost per hop.

    .venv/bin/python benchmarks/actor_hop.py [--hops 20000] [--rounds 9]

Prints the median (and min) microseconds per hop of each variant, in wall time and in
process CPU time (the CPU figure is immune to steal time on shared VMs).
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import AsyncResult, Event
from gevent.hub import Waiter, get_hub
from gevent.queue import Queue
from greenlet import GreenletExit, getcurrent, greenlet

DEADLINE_S = 30.0
_TIMED_OUT = object()


class _Deadline(gevent.Timeout):
    pass


def _noop(request: Any) -> Any:
    return request


# -- variant 1: AsyncResult, gevent.Timeout on the worker ----------------------------------

def _asyncresult() -> tuple[Callable[[Any], Any], Callable[[], None]]:
    mailbox: Queue[Any] = Queue(1024)

    def work() -> None:
        while True:
            request, slot = mailbox.get()
            with gevent.Timeout(DEADLINE_S, _Deadline):
                value = _noop(request)
            slot.set(value)

    worker = gevent.spawn(work)

    def ask(request: Any) -> Any:
        slot: AsyncResult[Any] = AsyncResult()
        mailbox.put_nowait((request, slot))
        return slot.get(timeout=DEADLINE_S)

    return ask, worker.kill


# -- variant 2: Event + value attributes on the envelope -----------------------------------

class _EventEnvelope:
    __slots__ = ("done", "request", "value")

    def __init__(self, request: Any) -> None:
        self.request = request
        self.value: Any = None
        self.done = Event()


def _event() -> tuple[Callable[[Any], Any], Callable[[], None]]:
    mailbox: Queue[Any] = Queue(1024)

    def work() -> None:
        while True:
            env = mailbox.get()
            with gevent.Timeout(DEADLINE_S, _Deadline):
                env.value = _noop(env.request)
            env.done.set()

    worker = gevent.spawn(work)

    def ask(request: Any) -> Any:
        env = _EventEnvelope(request)
        mailbox.put_nowait(env)
        if not env.done.wait(DEADLINE_S):
            raise TimeoutError
        return env.value

    return ask, worker.kill


# -- variant 3: hub Waiter, gevent.Timeout on both sides -----------------------------------

class _WaiterEnvelope:
    __slots__ = ("deadline", "reply", "request")

    def __init__(self, request: Any, deadline: float) -> None:
        self.request = request
        self.deadline = deadline
        self.reply: Waiter[Any] = Waiter()


def _waiter_timeout() -> tuple[Callable[[Any], Any], Callable[[], None]]:
    mailbox: Queue[Any] = Queue(1024)
    loop = get_hub().loop

    def work() -> None:
        while True:
            env = mailbox.get()
            with gevent.Timeout(env.deadline - time.monotonic(), _Deadline):
                value = _noop(env.request)
            loop.run_callback(env.reply.switch, value)

    worker = gevent.spawn(work)

    def ask(request: Any) -> Any:
        env = _WaiterEnvelope(request, time.monotonic() + DEADLINE_S)
        mailbox.put_nowait(env)
        with gevent.Timeout(DEADLINE_S):
            return env.reply.get()

    return ask, worker.kill


# -- variant 4: hub Waiter, raw loop timers on both sides ----------------------------------

def _waiter_timer() -> tuple[Callable[[Any], Any], Callable[[], None]]:
    mailbox: Queue[Any] = Queue(1024)
    loop = get_hub().loop

    def work() -> None:
        throw = gevent.getcurrent().throw
        while True:
            env = mailbox.get()
            timer = loop.timer(env.deadline - time.monotonic())
            timer.start(throw, _Deadline)
            try:
                value = _noop(env.request)
            finally:
                timer.close()
            loop.run_callback(env.reply.switch, value)

    worker = gevent.spawn(work)

    def ask(request: Any) -> Any:
        deadline = time.monotonic() + DEADLINE_S
        env = _WaiterEnvelope(request, deadline)
        mailbox.put_nowait(env)
        timer = loop.timer(DEADLINE_S)
        timer.start(env.reply.switch, _TIMED_OUT)
        try:
            value = env.reply.get()
        finally:
            timer.close()
        if value is _TIMED_OUT:
            raise TimeoutError
        return value

    return ask, worker.kill


# -- variant 5: raw greenlet switches, no hub (the floor of any hop) -----------------------

class _RawEnvelope:
    __slots__ = ("caller", "request")

    def __init__(self, request: Any, caller: greenlet) -> None:
        self.request = request
        self.caller = caller


def _raw_switch_worker() -> greenlet:
    # The worker parks inside `caller.switch(value)`; the next caller's switch resumes it
    # with the next envelope. NOTE: only valid while the handler never blocks: a handler
    # that waits on the hub would leave the caller parked outside the hub (see actors.py).
    def work(envelope: _RawEnvelope) -> None:
        while True:
            value = _noop(envelope.request)
            envelope = envelope.caller.switch(value)

    return greenlet(work)


def _raw_switch() -> tuple[Callable[[Any], Any], Callable[[], None]]:
    worker = _raw_switch_worker()

    def ask(request: Any) -> Any:
        return worker.switch(_RawEnvelope(request, getcurrent()))

    return ask, lambda: worker.throw(GreenletExit)


def _raw_switch_timer() -> tuple[Callable[[Any], Any], Callable[[], None]]:
    # The same with the caller's raw deadline timer, as Actor.ask (deadline) keeps one.
    worker = _raw_switch_worker()
    loop = get_hub().loop

    def ask(request: Any) -> Any:
        caller = getcurrent()
        timer = loop.timer(DEADLINE_S)
        timer.start(caller.throw, TimeoutError, update=True)
        try:
            return worker.switch(_RawEnvelope(request, caller))
        finally:
            timer.close()

    return ask, lambda: worker.throw(GreenletExit)


# -- variant 6: what a hop through the hub costs against the caller switching in itself ---

class _SlotEnvelope:
    # A reply slot in Python: the hub switches to `waiting` (Waiter.switch's job).
    __slots__ = ("request", "waiting")

    request: Any
    waiting: greenlet | None

    def switch(self, value: Any) -> None:
        if self.waiting is not None:
            self.waiting.switch(value)


def _hub_or_direct_wake(direct: bool) -> tuple[Callable[[Any], Any], Callable[[], None]]:
    # A deque mailbox of Waiter takers, a raw deadline timer, the reply from a loop callback.
    # Hub wake: the caller schedules the taker's Waiter.switch and waits in the hub (as
    # brrt_actors.actors does). Direct wake: the caller switches straight into the idle
    # worker and is woken from the hub; one loop callback and one switch less per hop.
    hub = get_hub()
    loop = hub.loop
    items: deque[Any] = deque()
    takers: deque[Waiter[Any]] = deque()

    def work() -> None:
        while True:
            while not items:
                taker: Waiter[Any] = Waiter(hub)
                takers.append(taker)
                taker.get()
            envelope = items.popleft()
            loop.run_callback(envelope.switch, _noop(envelope.request))

    def ask(request: Any) -> Any:
        envelope = _SlotEnvelope()
        envelope.request = request
        envelope.waiting = getcurrent()
        items.append(envelope)
        timer = loop.timer(DEADLINE_S)
        timer.start(envelope.switch, _TIMED_OUT, update=True)
        try:
            if not takers:
                return hub.switch()
            taker = takers.popleft()
            if direct:
                assert taker.greenlet is not None
                return taker.greenlet.switch(None)
            loop.run_callback(taker.switch, None)
            return hub.switch()
        finally:
            envelope.waiting = None
            timer.close()

    worker = gevent.spawn(work)
    return ask, worker.kill


# -- variant 7: the real thing -------------------------------------------------------------

def _actor() -> tuple[Callable[[Any], Any], Callable[[], None]]:
    from brrt_actors.actors import Actor
    from brrt_actors.config import ActorSettings

    actor = Actor("bench", _noop, ActorSettings(workers=1, deadline_ms=int(DEADLINE_S * 1000)))
    actor.start()
    return actor.ask, lambda: actor.stop(1.0)


def _actor_no_deadline() -> tuple[Callable[[Any], Any], Callable[[], None]]:
    from brrt_actors.actors import Actor
    from brrt_actors.config import ActorSettings

    actor = Actor("bench", _noop, ActorSettings(workers=1, deadline_ms=0))
    actor.start()
    return actor.ask, lambda: actor.stop(1.0)


def _actor_on_gevent_queue() -> tuple[Callable[[Any], Any], Callable[[], None]]:
    # The actor as it was before brrt_actors.mailbox: the same code on gevent's Queue.
    from brrt_actors.actors import Actor
    from brrt_actors.config import ActorSettings

    actor = Actor("bench", _noop, ActorSettings(workers=1, deadline_ms=int(DEADLINE_S * 1000)))
    actor._mailbox = Queue(1024)  # gevent's Queue fits the Mailbox protocol
    actor._put_nowait = actor._mailbox.put_nowait
    actor.start()
    return actor.ask, lambda: actor.stop(1.0)


VARIANTS: dict[str, Callable[[], tuple[Callable[[Any], Any], Callable[[], None]]]] = {
    "AsyncResult + Timeout": _asyncresult,
    "Event + attrs + Timeout": _event,
    "Waiter + Timeout": _waiter_timeout,
    "Waiter + raw timers": _waiter_timer,
    "raw switch (no hub)": _raw_switch,
    "raw switch + raw timer": _raw_switch_timer,
    "deque, wake through hub": lambda: _hub_or_direct_wake(direct=False),
    "deque, caller wakes worker": lambda: _hub_or_direct_wake(direct=True),
    "Actor.ask, gevent Queue": _actor_on_gevent_queue,
    "Actor.ask (deadline)": _actor,
    "Actor.ask (no deadline)": _actor_no_deadline,
}


def _round(ask: Callable[[Any], Any], hops: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(hops):
        ask(i)
    return ((time.perf_counter() - wall) / hops * 1e6, (time.process_time() - cpu) / hops * 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hops", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    made = {name: make() for name, make in VARIANTS.items()}
    for ask, _ in made.values():
        _round(ask, 2000)  # warm up
    # NOTE: rounds interleave the variants so that noise (steal time) hits them alike.
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in made}
    for _ in range(args.rounds):
        for name, (ask, _) in made.items():
            results[name].append(_round(ask, args.hops))
    for _, stop in made.values():
        stop()
    print(f"{'variant':28} {'wall median':>12} {'wall min':>9} {'cpu median':>11}  (us/hop)")
    for name, rounds in results.items():
        walls = [w for w, _ in rounds]
        cpus = [c for _, c in rounds]
        print(f"{name:28} {statistics.median(walls):12.2f} {min(walls):9.2f} "
              f"{statistics.median(cpus):11.2f}")


if __name__ == "__main__":
    main()
