"""Watch for handlers that keep the event loop busy: CPU-bound work gevent cannot pre-empt.

gevent switches greenlets only where one waits (I/O, a lock, a sleep). A handler that
computes for 300 ms holds the hub's one thread for 300 ms: no other request of any operation
is read, answered or timed out meanwhile, and its own deadline cannot interrupt it.

A watching thread of our own looks, every ``max_blocking_ms``, at how many turns the loop
made (a ``prepare`` watcher counts them, once per turn, not per switch): no turn during a
whole period while a greenlet, not the hub, is running means that greenlet held the loop.
When it is an actor's worker (found in its frames: ``Actor._work``), its operation's
`Actor.hub_blocked` counter (``brrt_hub_blocked_total``) goes up by one per episode and one
WARNING names the operation and the line it was running; anything else that blocks the loop
is logged too.

PERF: gevent's greenlet tracer (the one behind its ``monitor_thread``) would run on every
greenlet switch, several per request; the turn count is one call per turn of the loop, which
serves dozens of requests under load.
NOTE: gevent's own monitor reports through `gevent.events.EventLoopBlocked`, but first builds,
at each period of a block, a report of every greenlet: 0.6-1.6 s with 10,000 connections,
holding the GIL, so it stalls the server far longer than the block it reports. Here only the
blocking greenlet's frames are read.
NOTE: one turn that serves so many requests that it lasts a whole period (thousands of
connections ready at once) is reported too, as a block by whatever greenlet runs at the check.
"""
from __future__ import annotations

import logging
import sys
import weakref
from time import perf_counter
from types import CodeType, FrameType
from typing import Any, Final, TypeVar

from gevent.hub import Hub, get_hub
from gevent.monkey import get_original

from brrt_actors.actor_system import ActorSystem
from brrt_actors.actors import Actor

__all__ = ["HubMonitor", "expected_block"]

logger = logging.getLogger("brrt_actors.hub_monitor")

# NOTE: a real thread and a real sleep: the watch must go on while the hub is stuck.
_start_thread = get_original("_thread", "start_new_thread")
_sleep = get_original("time", "sleep")

_WORK_CODE: Final = Actor._work.__code__  # the frame of a worker greenlet's loop
_HUB_RUN_CODE: Final = Hub.run.__code__  # the hub's own loop (in C below it)
# The functions whose blocks are expected (`expected_block`): logged at DEBUG only.
_EXPECTED: set[CodeType] = set()
_Function = TypeVar("_Function")
_ADVICE: Final = ("nothing else in this process ran meanwhile. Run CPU-bound work in a thread "
                  "(gevent.get_hub().threadpool.apply(func, args)) or serve with more "
                  "processes (--workers); see the README, \"CPU-bound handlers\"")


class _Episode:
    """One block of the loop by one greenlet, as the watching thread saw it."""

    __slots__ = ("expected", "first_s", "greenlet", "last_s", "where")

    def __init__(self, blocker: Any, where: str, expected: bool) -> None:
        # The worker greenlet, or a description of the greenlet (found in its frames).
        self.greenlet = blocker
        self.where = where
        self.expected = expected  # it runs an `expected_block` function: logged at DEBUG
        # The first and the last check that found no turn during the period before it.
        self.first_s = self.last_s = perf_counter()

    def at_least_ms(self, period_ms: int) -> int:
        # The loop was held from one period before the first check to the last one.
        return period_ms + round((self.last_s - self.first_s) * 1000.0)


def expected_block(function: _Function) -> _Function:
    """Mark `function` as one that may hold the loop on purpose: its blocks are DEBUG lines."""
    _EXPECTED.add(function.__code__)  # type: ignore[attr-defined]
    return function


class HubMonitor:
    """Log and count the greenlets that hold the event loop longer than `max_blocking_ms`.

    Args:
        actors: the app's actors: a block by one of their workers counts for its operation.
        max_blocking_ms: the period of the watch; 0 turns it off.

    `start` and `stop` run in the thread whose hub serves the app (`App.start`, `App.stop`).
    The apps served by one hub share one tracer and one watching thread.
    """

    def __init__(self, actors: ActorSystem, max_blocking_ms: int) -> None:
        self.actors = actors
        self.max_blocking_ms = max_blocking_ms
        self._watch: _Watch | None = None

    @property
    def watching(self) -> bool:
        """True between `start` and `stop` (when the watch is on)."""
        return self._watch is not None

    def start(self) -> None:
        """Start watching this thread's hub (the first monitor on a hub starts the watch)."""
        if self.max_blocking_ms <= 0 or self._watch is not None:
            return
        hub = get_hub()
        watch = _WATCHES.get(hub)
        if watch is None:
            watch = _WATCHES[hub] = _Watch(hub)
        watch.add(self)
        self._watch = watch

    def stop(self) -> None:
        """Stop watching (the last monitor on a hub ends the watch)."""
        watch, self._watch = self._watch, None
        if watch is not None and watch.remove(self):
            _WATCHES.pop(watch.hub, None)

    def claim(self, episode: _Episode, period_ms: int) -> bool:
        """Count and log `episode` when one of this app's workers blocked; say if it did."""
        actor = next((actor for actor in self.actors
                      if any(worker is episode.greenlet for worker in actor.workers)), None)
        if actor is None:
            return False
        at_least_ms = episode.at_least_ms(period_ms)
        if at_least_ms >= self.max_blocking_ms:
            actor.hub_blocked += 1
            logger.warning("operation %s: its handler kept the event loop busy for over %d ms "
                           "(%s, at %s): %s.", actor.name, at_least_ms, _name(episode.greenlet),
                           episode.where, _ADVICE)
        return True


class _Watch:
    """The turn counter and the watching thread of one hub, shared by its monitors."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.monitors: list[HubMonitor] = []
        self.period_ms = 0
        self.running = True
        #: Turns of the loop so far (read by the watching thread; a plain int, GIL-safe).
        self.turns = 0
        self._counter: Any = hub.loop.prepare(ref=False)  # NOTE: runs once per turn
        self._counter.start(self._turn)

    def _turn(self) -> None:
        self.turns += 1

    def add(self, monitor: HubMonitor) -> None:
        self.monitors.append(monitor)
        self.period_ms = min(m.max_blocking_ms for m in self.monitors)
        if len(self.monitors) == 1:
            _start_thread(self._run, ())

    def remove(self, monitor: HubMonitor) -> bool:
        # Return True when that was the last monitor: the watch is over.
        self.monitors = [m for m in self.monitors if m is not monitor]
        if self.monitors:
            self.period_ms = min(m.max_blocking_ms for m in self.monitors)
            return False
        self.running = False
        self._counter.stop()
        self._counter.close()
        return True

    def _run(self) -> None:
        # The watching thread. Blocked periods in a row of one greenlet are one episode (the
        # loop made no turn between them).
        hub = self.hub
        episode: _Episode | None = None
        turns = self.turns
        while True:
            _sleep(self.period_ms / 1000.0)
            if not self.running:
                return
            now = self.turns
            stuck, turns = now == turns, now
            try:
                blocker = _blocker(hub.thread_ident) if stuck else None
            except Exception:  # NOTE: frames read from another thread: the watch goes on
                logger.debug("could not read the event loop's frames", exc_info=True)
                blocker = None
            if blocker is None:  # the loop turned, or it waits for I/O (no turn is due)
                episode = None
                continue
            if episode is not None and episode.greenlet == blocker[0]:
                episode.last_s = perf_counter()
                continue
            episode = _Episode(*blocker)
            # NOTE: reported in the hub's thread, once the block is over: the counters and
            # the log belong to it.
            hub.loop.run_callback_threadsafe(self._report, episode, self.period_ms)

    def _report(self, episode: _Episode, period_ms: int) -> None:
        claimed = [monitor.claim(episode, period_ms) for monitor in self.monitors]
        if self.monitors and not any(claimed):
            # NOTE: the warm-up's one-off imports block on purpose, once, after listening.
            level = logging.DEBUG if episode.expected else logging.WARNING
            logger.log(level, "%s kept the event loop busy for over %d ms (at %s): %s.",
                       _name(episode.greenlet), episode.at_least_ms(period_ms),
                       episode.where, _ADVICE)


# NOTE: one watch per hub, as greenlet.settrace is one per thread; the apps a hub serves
# (two during a hot reload) share it.
_WATCHES: weakref.WeakKeyDictionary[Hub, _Watch] = weakref.WeakKeyDictionary()


def _name(blocker: Any) -> str:
    return str(getattr(blocker, "name", None) or blocker)


def _blocker(thread_ident: int) -> tuple[Any, str, bool] | None:
    # What the hub's thread runs now, read from its frames: (the worker greenlet, or a
    # description of the greenlet; where: the line, and the handler's own line when a worker
    # runs one; whether the block is expected), or None when the hub itself waits.
    # NOTE: read from the watching thread; gevent's monitor reads sys._current_frames too.
    frame: FrameType | None = sys._current_frames().get(thread_ident)
    if frame is None:
        return None
    if frame.f_code is _HUB_RUN_CODE:
        return None  # NOTE: the hub's own frame innermost: it waits for I/O or runs C code
    innermost = _line(frame)
    expected = False
    handler: FrameType | None = None
    outermost = frame
    walk: FrameType | None = frame
    while walk is not None:
        expected = expected or walk.f_code in _EXPECTED
        if walk.f_code is _WORK_CODE:
            # NOTE: the worker's loop is suspended in its call of the handler: its locals
            # hold still while they are read.
            worker = walk.f_locals.get("me")
            where = innermost
            if handler is not None and _line(handler) != innermost:
                where = f"{innermost}, called from {_line(handler)}"
            return worker, where, expected
        outermost = walk
        handler, walk = walk, walk.f_back
    return f"the greenlet running {outermost.f_code.co_qualname}", innermost, expected


def _line(frame: FrameType) -> str:
    code = frame.f_code
    return f"{code.co_filename}:{frame.f_lineno} in {code.co_name}"
