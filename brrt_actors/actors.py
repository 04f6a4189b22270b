"""One actor per operation: a bounded mailbox and named worker greenlets that run the handler.

The connection greenlet calls `Actor.ask`: it puts an envelope (the request, and itself to
be answered) into the mailbox and waits in the hub until the deadline. A worker greenlet
takes the envelope, runs the handler and switches the caller back in with the value.

Direct hand-off: when a worker is idle, nothing is queued and no loop callback is due (the
hub would run that worker next anyway), the caller switches straight into the worker with
the envelope, and a worker that finds nothing queued when its handler returns switches
straight back to its caller; it then stays parked in that switch, idle. Everything else
(a handler that blocks, deadlines, kills, a full mailbox) goes as on the mailbox's way:
the hub resumes whoever waits. A caller answered directly never waits in the hub, so every
`DIRECT_HANDOFFS_BEFORE_YIELD` hand-offs it yields one loop iteration to the rest.

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
from collections.abc import Callable, Sized
from time import monotonic, perf_counter
from typing import TYPE_CHECKING, Any, Final, Protocol

import gevent
from gevent import Greenlet, getcurrent
from gevent.hub import Hub, get_hub

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
# NOTE: a caller whose asks are all answered by direct hand-offs never waits in the hub, so
# nothing else would run (a pipelining client could keep the loop): every this many direct
# hand-offs of an actor, its next caller first yields one whole loop iteration (I/O, timers).
DIRECT_HANDOFFS_BEFORE_YIELD: Final = 32

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


class _Envelope:
    """One request on its way through an actor, with what its reply needs.

    Built by `Actor._ask_with_deadline` / `_ask_forever`, which set every attribute.
    """

    # PERF: enqueue -> worker -> no-op handler -> reply, CPU us per hop, taskset -c 1, 2-CPU VM,
    # CPython 3.11, gevent 26.9 (benchmarks/actor_hop.py, the variants interleaved):
    #   AsyncResult + gevent.Timeout in worker   ~10
    #   hub Waiter + raw loop timers             ~5.1
    #   Actor.ask through the hub (issue 12)     ~3.9     (no deadline: ~3.5)
    #   Actor.ask, direct hand-off               see `Actor._ask_with_deadline`
    #   raw greenlet switches, no hub (floor)    ~0.7     (+ a raw deadline timer: ~1.2)
    # The reply slot is the caller greenlet itself: it waits in a plain switch (into the hub,
    # or into the worker it handed the envelope to), and whoever answers switches back to it.
    # Slots keep the per-request allocation small; no Python __init__ (~0.2 us, timeit).
    __slots__ = ("abandoned", "caller", "error", "queued", "request", "worker")

    request: Request
    # The greenlet waiting for the answer (switched to with the value or a reply marker).
    caller: greenlet
    error: HTTPError  # set only with the _FAILED reply
    # The worker greenlet running the handler for this envelope, while it does.
    worker: greenlet | None
    # Set when nobody waits for the answer any more (deadline passed, caller gone): nothing
    # may switch to `caller` for this envelope then.
    abandoned: bool
    # When it was asked for (perf_counter): the worker tells the request its wait.
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
        # Idle workers, parked in a plain switch: resumed by `worker.switch(envelope)` (a
        # direct hand-off) or `worker.switch(None)` from the hub (`_wake_idle`: look in the
        # mailbox). NOTE: while one is idle, every queued envelope has a woken worker coming.
        self._idle: list[greenlet] = []
        self._direct_handoffs = 0  # since the last yield (DIRECT_HANDOFFS_BEFORE_YIELD)
        # The loop's queue of callbacks (`start`): a switch is direct only when it is empty.
        self._callbacks: Sized = (1,)
        self._queued: Callable[[], int] = self._mailbox.qsize
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
        # NOTE: a direct switch is what the hub would do next only when no loop callback is
        # pending (greenlets woken before): then the order of events is the mailbox's own.
        # A gevent loop without this (private) queue gets no direct hand-offs at all.
        self._callbacks = getattr(self._loop, "_callbacks", (1,))
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
            self._wake_idle()
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
            loop.run_callback(self._answer, item, _FAILED)

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
        envelope = self._envelope(request)
        caller = envelope.caller
        # PERF: `_idle_worker` inline (~0.1 us): see there for the conditions.
        idle = self._idle
        if idle and not self._callbacks and not self._queued() and caller is not self._hub:
            self._direct_handoffs += 1
            worker: greenlet | None = idle.pop()
        else:
            worker = None
            self._enqueue(envelope)
        # PERF: one raw loop timer per request does both jobs of the deadline: wake this
        # greenlet, and cancel the handler if a worker runs it (`_expire`). A gevent.Timeout
        # around the handler in the worker as well costs ~2 us more per hop (a Timeout
        # start+close is ~2.0 us, a raw timer's ~0.4 us; benchmarks/actor_hop.py).
        # PERF: the timers of answered asks are stopped and kept for the next ones: start+stop
        # of a kept timer is ~0.1 us, creating, starting and closing one ~0.25 us (timeit).
        # NOTE: the deadline counts from the moment the envelope is handed over or queued:
        # update=True reads the clock now, not where the loop's busy iteration began.
        idle_timers = self._idle_timers
        if idle_timers:
            timer = idle_timers.pop()
        else:
            assert self._loop is not None
            timer = self._loop.timer(self._deadline_s)
        timer.start(self._expire, envelope, update=True)
        try:
            # PERF: direct hand-off: switch straight into the idle worker, which switches
            # straight back with the value when the handler returns without anything queued.
            # CPU us per hop 3.8 -> 2.2 (benchmarks/actor_hop.py); GET /pets/{id} in process
            # 16.6 -> 14.5 (/tmp/p12/inproc.py); both taskset -c 1, medians.
            value = worker.switch(envelope) if worker is not None else self._wait()
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
        envelope = self._envelope(request)
        caller = envelope.caller
        worker = self._idle_worker(caller)
        if worker is None:
            self._enqueue(envelope)
        try:
            value = worker.switch(envelope) if worker is not None else self._wait()
        except BaseException:  # this greenlet was killed: nobody waits any more
            envelope.abandoned = True
            raise
        if value is _FAILED:
            raise envelope.error
        return value

    def _envelope(self, request: Request) -> _Envelope:
        # The envelope of a new ask, made by its caller (after a yield to the loop when the
        # direct hand-offs are due one; 503 when stopping).
        if self._direct_handoffs >= DIRECT_HANDOFFS_BEFORE_YIELD:
            self._yield_to_loop()
        if not self._accepting:
            raise self._refused()
        envelope = _Envelope()
        envelope.request = request
        envelope.worker = None
        envelope.abandoned = False
        envelope.caller = getcurrent()
        envelope.queued = perf_counter()
        return envelope

    def _idle_worker(self, caller: greenlet) -> greenlet | None:
        # The idle worker to hand an envelope to directly, or None: go through the mailbox.
        # (Inline in `_ask_with_deadline`: keep the two alike.)
        # NOTE: only when the hub has nothing else to run first (see `start`), nothing is
        # queued (no envelope is overtaken), and never from the hub itself (a blocking
        # handler would switch back into the hub as if it answered).
        if self._idle and not self._callbacks and not self._queued() and caller is not self._hub:
            self._direct_handoffs += 1
            return self._idle.pop()
        return None

    def _wait(self) -> Any:
        # Wait in the hub for the answer (`_answer`, or a worker's direct switch back).
        assert self._hub is not None
        return self._hub.switch()

    def _yield_to_loop(self) -> None:
        # Let the loop run one whole iteration (I/O, timers, callbacks), then go on.
        self._direct_handoffs = 0
        assert self._hub is not None and self._loop is not None
        timer = self._loop.timer(0.0)
        try:
            self._hub.wait(timer)
        finally:
            timer.close()

    def _enqueue(self, envelope: _Envelope) -> None:
        # Put `envelope` into the mailbox, or raise the 503 that says why it cannot go in.
        # PERF: room in the mailbox is the common case: one call, no policy in between.
        # NOTE: `_stopped` needs no look here: `_accepting` was true just now, without a yield.
        try:
            self._put_nowait(envelope)
        except Full:
            pass  # NOTE: the policy answers outside this handler: no Full chained to its error
        else:
            self._wake_idle()
            return
        self._when_full(envelope)
        self._wake_idle()

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
        # NOTE: the timer runs only while the caller waits (it stops or closes it as soon as
        # it is resumed, and on its way out when killed): the caller is there to switch to.
        envelope.caller.switch(_TIMED_OUT)  # the caller answers 504
        # NOTE: thrown from the hub, synchronously: the worker is parked inside this very
        # envelope's handler (`worker` is cleared, without yielding, when it returns).
        if worker is not None and envelope.worker is worker:
            worker.throw(HandlerTimeout)

    def _answer(self, envelope: _Envelope, value: Any) -> None:
        # Runs in the hub: wake the caller with `value`, unless it is gone or answered 504.
        if not envelope.abandoned:
            envelope.caller.switch(value)

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

    def _wake_idle(self) -> None:
        # Something went into the mailbox: an idle worker, if any, comes to take it.
        if self._idle:
            assert self._loop is not None
            self._loop.run_callback(self._resume, self._idle.pop())

    def _resume(self, worker: greenlet) -> None:
        # Runs in the hub: the woken worker looks in the mailbox (None: nothing handed over).
        if not worker.dead:  # NOTE: killed meanwhile: it passed the wake on (`_left_idle`)
            worker.switch(None)

    def _left_idle(self, worker: greenlet) -> None:
        # An idle worker was killed: take it off the idle list, or, when a put had already
        # woken it for an envelope, wake another one for that envelope.
        try:
            self._idle.remove(worker)
        except ValueError:
            if self._queued():
                self._wake_idle()

    def _work(self) -> None:
        me = getcurrent()
        take = self._mailbox.get_nowait
        queued = self._mailbox.qsize
        idle = self._idle
        handler = self._handler
        assert self._hub is not None and self._loop is not None
        park = self._hub.switch
        reply = self._loop.run_callback
        answer = self._answer
        callbacks = self._callbacks
        envelope: Any = None  # the next envelope: handed over directly, or taken
        while True:
            if envelope is None:
                if queued():
                    envelope = take()
                else:
                    # Idle until a caller hands an envelope over, or a put wakes it (None).
                    idle.append(me)
                    try:
                        envelope = park()
                    except BaseException:
                        self._left_idle(me)
                        raise
                    continue
            if envelope is _STOP:
                return
            if envelope.abandoned:
                self.expired += 1
                envelope = None
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
                envelope = None
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
                reply(answer, envelope, _FAILED)
                raise
            envelope.worker = None
            self.busy -= 1
            self.completed += 1
            done, envelope = envelope, None
            if done.abandoned:  # the caller was killed meanwhile: nobody to answer
                continue
            # PERF: qsize, not get_nowait's Empty: a raised exception costs ~0.3 us per hop.
            if not queued():
                idle.append(me)
                try:
                    if callbacks:  # others come first: the caller is woken from the hub
                        reply(answer, done, value)
                        envelope = park()
                    else:
                        # PERF: switch straight back to the caller, and stay parked in that
                        # switch until the next hand-off or wake resumes this worker.
                        # NOTE: not abandoned means the caller still waits (in the hub, or
                        # in its switch into this worker): alive, expecting this switch.
                        envelope = done.caller.switch(value)
                except BaseException:
                    self._left_idle(me)
                    raise
            else:
                # NOTE: more work queued: the caller is woken from the hub, this worker goes on.
                reply(answer, done, value)
                envelope = take()
