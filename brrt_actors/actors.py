"""One actor per operation: a bounded mailbox and named worker greenlets that run the handler.

The connection greenlet calls `Actor.ask`: it puts an envelope (the request and its own
reply slot) into the mailbox and waits on the slot until the deadline. A worker greenlet
takes the envelope, runs the handler and puts the result into the slot.

- Mailbox full: policy ``shed`` answers 503 at once; ``block`` waits up to
  ``block_timeout_ms`` for room, then answers 503. Both carry ``Retry-After``.
- Deadline passed: the caller gets 504 and the running handler is cancelled: a
  `HandlerTimeout` (a `gevent.Timeout`) is raised inside it, and its worker goes on with the
  next envelope. An envelope whose deadline passed while it waited is never run.
  NOTE: a CPU-bound handler that never yields cannot be interrupted (nor can anything else
  in the process run meanwhile); only its next blocking call sees the timeout.
  `brrt_actors.hub_monitor` logs and counts (`hub_blocked`) such handlers.
- Handler raised `HTTPError`: the caller gets it as is. Any other exception: logged with
  its traceback and the request id; the caller gets a 500 that reveals no internals.
- A worker greenlet that dies anyway is restarted.
- `stop` refuses new envelopes (503), lets the workers finish the mailbox for up to a grace
  period, then stops them; whatever is still queued or running then gets 503.

Everything here runs in the one thread of the gevent hub; the counters are plain ints.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from time import monotonic, perf_counter
from typing import TYPE_CHECKING, Any, Final, Protocol

import gevent
from gevent import Greenlet, getcurrent
from gevent.hub import Hub, Waiter, get_hub

from brrt_actors.config import ActorSettings
from brrt_actors.errors import HTTPError
from brrt_actors.mailbox import BoundedMailbox, Empty, Full, Mailbox

if TYPE_CHECKING:
    from gevent._types import _Loop, _TimerWatcher
    from greenlet import greenlet

    from brrt_actors.handler import Request

__all__ = ["KILL_WAIT_S", "Actor", "Handler", "HandlerTimeout"]

logger = logging.getLogger("brrt_actors.actors")

# How long `stop` waits for killed workers to unwind once the grace period is over.
KILL_WAIT_S: Final = 0.5
# Stopped deadline timers an actor keeps beyond one per worker, for the asks that queue.
_SPARE_TIMERS: Final = 16

# Mailbox sentinel: a worker that takes it exits.
_STOP: Final = object()
# Reply markers: the reply slot holds the handler's value, or one of these.
_FAILED: Final = object()  # the error is in `envelope.error`
_TIMED_OUT: Final = object()  # the deadline passed first


class Handler(Protocol):
    """A handler: a plain function taking the `Request`, returning the response value."""

    def __call__(self, request: Request, /) -> Any: ...


class HandlerTimeout(gevent.Timeout):
    """Raised inside a handler whose deadline passed; the caller has already got 504.

    It is a `gevent.Timeout` (a `BaseException`), so ``except Exception`` in a handler does
    not swallow it; a handler that must clean up can use ``finally``.
    """

    def __str__(self) -> str:
        return "the handler's deadline passed; its answer is no longer awaited"


if TYPE_CHECKING:
    _ReplySlot = Waiter[Any]
else:  # NOTE: gevent's compiled Waiter cannot be subscripted at run time; its stubs can.
    _ReplySlot = Waiter


class _Envelope(_ReplySlot):
    """One request on its way through an actor; the envelope is its own reply slot.

    Built by `Actor._post`, which sets every attribute.
    """

    # PERF: the reply slot is a bare hub `Waiter` (switched from a loop callback), and one raw
    # loop timer per request serves the deadline. Median us per hop (enqueue -> worker ->
    # no-op handler -> reply), 9 interleaved rounds of 20k hops, taskset -c 1, 2-CPU VM,
    # CPython 3.11, gevent 26.9 (range over 5 runs; the VM's steal time moves them together):
    #   AsyncResult + gevent.Timeout in worker   9.6-12.7
    #   Event + value attrs + gevent.Timeout     9.9-13.4
    #   Waiter + gevent.Timeout on both sides    8.5-10.4
    #   Waiter + raw loop timers on both sides   5.2-7.2
    #   Actor.ask: Waiter + one raw timer        4.7-5.9   (no deadline: 4.1-5.0)
    # With brrt_actors.mailbox instead of gevent's Queue (3 runs, same day, one VM):
    #   Actor.ask on gevent's Queue              5.1-5.8
    #   Actor.ask on BoundedMailbox              4.6-4.7   (no deadline: 3.5-3.8)
    # Issue 12 (CPU us, the old and the new Actor interleaved in one process, 15 rounds):
    #   envelope is the Waiter, kept timers,     4.1       (was 4.55; no deadline: 3.7, was 4.0)
    #   put's fast path called straight
    #   raw greenlet switches, no hub (floor)    0.7-0.8   (+ the raw deadline timer: 1.2-1.6)
    #   caller switching into the idle worker    2.2: reverted (e2f7ac7's revert): ~20% fewer
    #     req/CPU-s on the real server, as answers that skip the hub batch less I/O per poll
    # Reproduce: taskset -c 1 .venv/bin/python benchmarks/actor_hop.py
    # PERF: the envelope *is* the Waiter (one object per request, not two) and has no Python
    # __init__: ~0.2 us less per hop (python -m timeit, taskset -c 1).
    # Slots keep the per-request allocation small.
    __slots__ = ("abandoned", "error", "queued", "request", "worker")

    request: Request
    error: HTTPError  # set only with the _FAILED reply
    # The worker greenlet running the handler for this envelope, while it does.
    worker: greenlet | None
    # Set when nobody waits for the answer any more (deadline passed, caller gone).
    abandoned: bool
    # When it went into the mailbox (perf_counter): the worker tells the request its wait.
    queued: float


class Actor:
    """The mailbox and worker greenlets serving one operation.

    Args:
        name: the operationId; workers are named ``<name>-worker-<i>``.
        handler: called as ``handler(request)`` in a worker greenlet.
        settings: workers, mailbox bound, backpressure policy, deadline.

    Attributes:
        ask: ``ask(request) -> value``: run the handler for `request` and return its value
            (see `_ask_with_deadline`); raises `HTTPError` (503, 504, 500, or the
            handler's own).
        completed, handler_errors, cancelled, expired, rejected, refused,
        deadline_exceeded, restarts, hub_blocked: counters (see `stats`).
        busy: workers running the handler right now.
    """

    ask: Callable[[Request], Any]

    def __init__(self, name: str, handler: Handler, settings: ActorSettings) -> None:
        self.name = name
        self.settings = settings
        self._handler = handler
        self._mailbox: Mailbox[Any] = BoundedMailbox(settings.mailbox)
        self._workers: list[Greenlet[[], None]] = []
        self._hub: Hub | None = None
        self._loop: _Loop | None = None
        # Deadline timers of answered asks, stopped, ready for the next ones (`_ask_with_deadline`).
        self._idle_timers: list[_TimerWatcher] = []
        self._idle_timers_max = settings.workers + _SPARE_TIMERS
        self._accepting = False
        self._stopping = False
        self._stopped = False
        self._deadline_s = settings.deadline_ms / 1000.0
        self._block_s = settings.block_timeout_ms / 1000.0
        self._retry_headers = {"Retry-After": str(settings.retry_after_s)}
        # Swap callables once instead of branching on configuration per request.
        self.ask = self._ask_with_deadline if settings.deadline_ms else self._ask_forever
        self._put_nowait: Callable[[_Envelope], None] = self._mailbox.put_nowait
        self._when_full: Callable[[_Envelope], None] = (
            self._wait_for_room if settings.policy == "block" and self._block_s > 0
            else self._shed)

        self.completed = 0  # handler returned (or raised HTTPError)
        self.handler_errors = 0  # handler raised anything else (500)
        self.cancelled = 0  # handler interrupted by its deadline
        self.expired = 0  # envelopes dropped unrun: deadline passed (or caller gone) in the mailbox
        self.rejected = 0  # 503: mailbox full (shed, or block timed out)
        self.refused = 0  # 503: actor not started or stopping
        self.deadline_exceeded = 0  # 504 answered
        self.restarts = 0  # worker greenlets restarted after dying
        self.hub_blocked = 0  # times a handler kept the event loop busy (hub_monitor.py)
        self.busy = 0  # workers inside the handler now

    def __repr__(self) -> str:
        return (f"<Actor {self.name} workers={len(self._workers)} busy={self.busy} "
                f"queued={self.queue_depth}>")

    @property
    def queue_depth(self) -> int:
        """Envelopes waiting in the mailbox."""
        return self._mailbox.qsize()

    @property
    def workers(self) -> tuple[Greenlet[[], None], ...]:
        """The worker greenlets (named ``<name>-worker-<i>``)."""
        return tuple(self._workers)

    def stats(self) -> dict[str, int]:
        """Return the counters and gauges, for metrics."""
        return {
            "workers": len(self._workers), "busy": self.busy, "queue_depth": self.queue_depth,
            "mailbox": self.settings.mailbox, "completed": self.completed,
            "handler_errors": self.handler_errors, "cancelled": self.cancelled,
            "expired": self.expired, "rejected": self.rejected, "refused": self.refused,
            "deadline_exceeded": self.deadline_exceeded, "restarts": self.restarts,
            "hub_blocked": self.hub_blocked,
        }

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Spawn the worker greenlets and start taking envelopes.

        Raises:
            RuntimeError: the actor was started or stopped before.
        """
        if self._workers or self._stopping:
            raise RuntimeError(f"actor {self.name!r} cannot be started twice")
        self._hub = get_hub()
        self._loop = self._hub.loop
        self._workers = [self._spawn(index) for index in range(self.settings.workers)]
        self._accepting = True

    def stop(self, grace_s: float) -> None:
        """Stop taking envelopes, drain the mailbox for up to `grace_s`, stop the workers.

        New `ask` calls get 503 at once. Queued envelopes are still served until the grace
        period is over; then running handlers are killed, and everything unanswered gets 503.
        Returns within about ``grace_s + 0.5`` seconds. Call it from a greenlet, not the hub.
        """
        if self._stopping:
            return
        self._accepting = False
        self._stopping = True
        deadline = monotonic() + max(0.0, grace_s)
        workers = list(self._workers)
        # NOTE: the sentinels queue behind the envelopes already waiting, so these are served
        # first; a full mailbox makes this wait for room, up to the grace period.
        for _ in workers:
            try:
                self._mailbox.put(_STOP, timeout=max(0.0, deadline - monotonic()))
            except Full:
                break
        gevent.joinall(workers, timeout=max(0.0, deadline - monotonic()))
        alive = [worker for worker in workers if not worker.dead]
        if alive:
            logger.warning("actor %s: %d worker(s) still busy after the %.1f s grace period; "
                           "killing them", self.name, len(alive), grace_s)
            gevent.killall(alive, block=True, timeout=KILL_WAIT_S)
        self._stopped = True
        self._refuse_queued()
        for timer in self._idle_timers:
            timer.close()
        self._idle_timers.clear()

    def _refuse_queued(self) -> None:
        loop = self._loop
        while True:
            try:
                item = self._mailbox.get_nowait()
            except Empty:
                return
            if item is _STOP or item.abandoned or loop is None:
                continue
            self.refused += 1
            item.error = self._refusal()
            loop.run_callback(item.switch, _FAILED)

    def _spawn(self, index: int) -> Greenlet[[], None]:
        worker: Greenlet[[], None] = Greenlet(self._work)
        worker.name = f"{self.name}-worker-{index}"
        worker.rawlink(self._worker_exited)
        worker.start()
        return worker

    def _worker_exited(self, worker: Greenlet[[], None]) -> None:
        # Runs in the hub when a worker greenlet ends; only `stop` ends them on purpose.
        if self._stopping:
            return
        self.restarts += 1
        logger.error("actor %s: worker %s died (%r); restarting it",
                     self.name, worker.name, worker.exception or worker.value)
        index = self._workers.index(worker)
        self._workers[index] = self._spawn(index)

    # -- the caller's side -----------------------------------------------------------------

    def _ask_with_deadline(self, request: Request) -> Any:
        """Run the handler for `request` in a worker; return its value.

        Raises:
            HTTPError: 503 (mailbox full, or stopping), 504 (deadline passed), 500 (the
                handler failed), or whatever HTTPError the handler raised.
        """
        envelope = self._post(request)
        # PERF: one raw loop timer per request does both jobs of the deadline: wake this
        # greenlet, and cancel the handler if a worker runs it (`_expire`). A gevent.Timeout
        # around the handler in the worker as well costs ~2 us more per hop (a Timeout
        # start+close is ~2.0 us, a raw timer's ~0.4 us; benchmarks/actor_hop.py).
        # PERF: the timers of answered asks are stopped and kept for the next ones: start+stop
        # of a kept timer is ~0.1 us, creating, starting and closing one ~0.25 us (timeit).
        # NOTE: the deadline counts from the moment the envelope is in the mailbox: update=True
        # reads the clock now, not where the loop's busy iteration began (no cost measured).
        idle_timers = self._idle_timers
        if idle_timers:
            timer = idle_timers.pop()
        else:
            assert self._loop is not None
            timer = self._loop.timer(self._deadline_s)
        timer.start(self._expire, envelope, update=True)
        try:
            value = envelope.get()
        except BaseException:  # this greenlet was killed: nobody waits any more
            timer.close()
            envelope.abandoned = True
            raise
        if value is _TIMED_OUT:
            # NOTE: closed, not kept: the hub may still be inside this timer's callback.
            timer.close()
            self.deadline_exceeded += 1
            raise HTTPError(504, f"The handler did not answer within its deadline of "
                                 f"{self.settings.deadline_ms} ms.")
        timer.stop()  # NOTE: drops its callback's arguments (the envelope) too
        if len(idle_timers) < self._idle_timers_max:
            idle_timers.append(timer)
        else:
            timer.close()
        if value is _FAILED:
            raise envelope.error
        return value

    def _ask_forever(self, request: Request) -> Any:
        # `ask` without a deadline (deadline_ms = 0).
        envelope = self._post(request)
        try:
            value = envelope.get()
        except BaseException:  # this greenlet was killed: nobody waits any more
            envelope.abandoned = True
            raise
        if value is _FAILED:
            raise envelope.error
        return value

    def _post(self, request: Request) -> _Envelope:
        # Put `request` into the mailbox, or raise the 503 that says why it cannot go in.
        if not self._accepting:
            raise self._refused()
        envelope = _Envelope(self._hub)
        envelope.request = request
        envelope.worker = None
        envelope.abandoned = False
        envelope.queued = perf_counter()
        # PERF: room in the mailbox is the common case: one call, no policy in between.
        # NOTE: `_stopped` needs no look here: `_accepting` was true just now, without a yield.
        try:
            self._put_nowait(envelope)
        except Full:
            pass  # NOTE: the policy answers outside this handler: no Full chained to its error
        else:
            return envelope
        self._when_full(envelope)
        return envelope

    def _shed(self, envelope: _Envelope) -> None:
        raise self._overloaded() from None

    def _wait_for_room(self, envelope: _Envelope) -> None:
        try:
            self._mailbox.put(envelope, True, self._block_s)
        except Full:
            raise self._overloaded() from None
        if self._stopped:
            # NOTE: room came after `stop` swept the mailbox: nobody will take this one.
            envelope.abandoned = True
            raise self._refused()

    def _expire(self, envelope: _Envelope) -> None:
        # Runs in the hub when a deadline passes: answer the caller, cancel the handler.
        envelope.abandoned = True  # a worker that has not taken it yet skips it
        worker = envelope.worker
        envelope.switch(_TIMED_OUT)  # the caller answers 504 (or already left)
        # NOTE: thrown from the hub, synchronously: the worker is parked inside this very
        # envelope's handler (`worker` is cleared, without yielding, when it returns).
        if worker is not None and envelope.worker is worker:
            worker.throw(HandlerTimeout)

    def _overloaded(self) -> HTTPError:
        self.rejected += 1
        return HTTPError(503, "Too many requests are waiting for this operation; retry later.",
                         headers=self._retry_headers)

    def _refused(self) -> HTTPError:
        self.refused += 1
        return self._refusal()

    def _refusal(self) -> HTTPError:
        detail = ("The service is shutting down; retry later." if self._stopping
                  else "The service is not ready yet; retry later.")
        return HTTPError(503, detail, headers=self._retry_headers)

    # -- the worker's side -----------------------------------------------------------------

    def _work(self) -> None:
        me = getcurrent()
        get = self._mailbox.get
        handler = self._handler
        assert self._loop is not None
        reply = self._loop.run_callback
        while True:
            envelope = get()
            if envelope is _STOP:
                return
            if envelope.abandoned:
                self.expired += 1
                continue
            envelope.worker = me
            # PERF: a bare try (free when nothing is raised), not contextlib.suppress (~0.2 µs).
            try:  # noqa: SIM105
                envelope.request.mailbox_wait = perf_counter() - envelope.queued
            except AttributeError:  # NOTE: a bare value asked of the actor (tests, tools)
                pass
            self.busy += 1
            try:
                value = handler(envelope.request)
            except HTTPError as ex:
                envelope.error = ex
                value = _FAILED
            except HandlerTimeout:
                # The caller already has its 504 (see `_expire`); nothing to answer.
                envelope.worker = None
                self.busy -= 1
                self.cancelled += 1
                continue
            except (Exception, gevent.Timeout):
                # NOTE: a handler's own gevent.Timeout escaping it is its failure, not a kill.
                self.handler_errors += 1
                logger.exception("handler %s failed (request_id=%s)", self.name,
                                 getattr(envelope.request, "request_id", "-"))
                envelope.error = HTTPError(
                    500, "The handler failed; the error is logged with this request's id.")
                value = _FAILED
            except BaseException:
                # Killed (stop, or someone else): answer the caller, then die.
                envelope.worker = None
                self.busy -= 1
                envelope.error = self._refusal() if self._stopping else HTTPError(
                    500, "The handler was interrupted.")
                reply(envelope.switch, _FAILED)
                raise
            envelope.worker = None
            self.busy -= 1
            self.completed += 1
            # NOTE: Waiter.switch must run in the hub; the callback wakes the caller there.
            reply(envelope.switch, value)
