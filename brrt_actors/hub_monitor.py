"""Watch for handlers that keep the event loop busy: CPU-bound work gevent cannot pre-empt.

gevent switches greenlets only where one waits (I/O, a lock, a sleep). A handler that
computes for 300 ms holds the hub's one thread for 300 ms: no other request of any operation
is read, answered or timed out meanwhile, and its own deadline cannot interrupt it.

gevent's greenlet tracer (the one behind gevent's ``monitor_thread`` and
``max_blocking_time``) counts the switches in the hub's thread; a thread of our own looks at
the count every ``max_blocking_ms``: no switch during a whole period means one greenlet held
the loop. When that greenlet is an actor's worker (named ``<operationId>-worker-<i>``), its
operation's `Actor.hub_blocked` counter (``brrt_hub_blocked_total``) goes up by one per
episode and one WARNING names the operation and the line it was running; anything else that
blocks the loop is logged too.

NOTE: gevent's own monitor reports through `gevent.events.EventLoopBlocked`, but first builds,
at each period of a block, a report of every greenlet: 0.6-1.6 s with 10,000 connections,
holding the GIL, so it stalls the server far longer than the block it reports. Here only the
blocking greenlet's frames are read. The compiled tracer costs ~0.5 us per actor hop.
"""
from __future__ import annotations

import logging
import sys
import weakref
from time import perf_counter
from types import FrameType
from typing import TYPE_CHECKING, Any, Final

import greenlet
from gevent._tracer import GreenletTracer  # type: ignore[import-not-found]
from gevent.hub import get_hub
from gevent.monkey import get_original

from brrt_actors.actor_system import ActorSystem
from brrt_actors.actors import Actor

if TYPE_CHECKING:
    from gevent.hub import Hub

__all__ = ["WARM_UP_GREENLET", "HubMonitor"]

logger = logging.getLogger("brrt_actors.hub_monitor")

# NOTE: a real thread and a real sleep: the watch must go on while the hub is stuck.
_start_thread = get_original("_thread", "start_new_thread")
_sleep = get_original("time", "sleep")

#: The name of the greenlet that runs `App.warm_up`: its blocks are expected, not reported.
WARM_UP_GREENLET = "brrt-warm-up"

_WORK_CODE: Final = Actor._work.__code__  # the frame of a worker greenlet's loop
_ADVICE: Final = ("nothing else in this process ran meanwhile. Run CPU-bound work in a thread "
                  "(gevent.get_hub().threadpool.apply(func, args)) or serve with more "
                  "processes (--workers); see the README, \"CPU-bound handlers\"")


class _Episode:
    """One block of the loop by one greenlet, as the watching thread saw it."""

    __slots__ = ("first_s", "greenlet", "last_s", "where")

    def __init__(self, blocker: Any, where: str) -> None:
        self.greenlet = blocker
        self.where = where
        # The first and the last check that found no switch during the period before it.
        self.first_s = self.last_s = perf_counter()

    def at_least_ms(self, period_ms: int) -> int:
        # The loop was held from one period before the first check to the last one.
        return period_ms + round((self.last_s - self.first_s) * 1000.0)


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
    """The switch tracer and the watching thread of one hub, shared by its monitors."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.monitors: list[HubMonitor] = []
        self.period_ms = 0
        self.running = True
        self.tracer: Any = GreenletTracer()  # NOTE: installs itself (greenlet.settrace)

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
        # NOTE: only when it is the trace function in force: killing it restores the one
        # before it, which would drop a tracer someone installed since.
        in_force = greenlet.gettrace() is self.tracer
        if in_force:
            self.tracer.kill()
        return True

    def _run(self) -> None:
        # The watching thread. Two blocked periods in a row of one greenlet are one episode
        # (no switch happened between them).
        hub, tracer = self.hub, self.tracer
        episode: _Episode | None = None
        while True:
            _sleep(self.period_ms / 1000.0)
            if not self.running:
                return
            blocked = tracer.did_block_hub(hub)
            if not blocked:
                episode = None
                continue
            if episode is not None and episode.greenlet is blocked[1]:
                episode.last_s = perf_counter()
                continue
            episode = _Episode(blocked[1], _where(hub.thread_ident))
            # NOTE: reported in the hub's thread, once the block is over: the counters and
            # the log belong to it.
            hub.loop.run_callback_threadsafe(self._report, episode, self.period_ms)

    def _report(self, episode: _Episode, period_ms: int) -> None:
        claimed = [monitor.claim(episode, period_ms) for monitor in self.monitors]
        if self.monitors and not any(claimed):
            name = _name(episode.greenlet)
            # NOTE: the warm-up's one-off imports block on purpose, once, after listening.
            level = logging.DEBUG if name == WARM_UP_GREENLET else logging.WARNING
            logger.log(level, "%s kept the event loop busy for over %d ms (at %s): %s.",
                       name, episode.at_least_ms(period_ms), episode.where, _ADVICE)


# NOTE: one watch per hub, as greenlet.settrace is one per thread; the apps a hub serves
# (two during a hot reload) share it.
_WATCHES: weakref.WeakKeyDictionary[Hub, _Watch] = weakref.WeakKeyDictionary()


def _name(blocker: Any) -> str:
    return str(getattr(blocker, "name", None) or blocker)


def _where(thread_ident: int) -> str:
    # The line the hub's thread runs now, and the handler's own line when a worker runs one.
    # NOTE: read from the watching thread; gevent's monitor reads sys._current_frames too.
    frame: FrameType | None = sys._current_frames().get(thread_ident)
    if frame is None:
        return "an unknown place"
    innermost = _line(frame)
    handler: FrameType | None = None
    while frame is not None and frame.f_code is not _WORK_CODE:
        handler, frame = frame, frame.f_back
    if frame is None or handler is None or _line(handler) == innermost:
        return innermost
    return f"{innermost}, called from {_line(handler)}"


def _line(frame: FrameType) -> str:
    code = frame.f_code
    return f"{code.co_filename}:{frame.f_lineno} in {code.co_name}"
