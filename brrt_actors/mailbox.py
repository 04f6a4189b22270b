"""An actor's mailbox: a bounded FIFO of envelopes between connection greenlets and workers.

`BoundedMailbox` does what ``gevent.queue.Queue(maxsize)`` does for an actor, with less work
per message: a deque of items, a deque of idle takers (workers waiting in `get`) and a deque
of givers (callers waiting in `put` for room). A `put` that finds an idle taker wakes it with
one loop callback; the taker then takes the item itself, so an item is never lost with a
taker killed on its way (the next taker gets it).

# PERF: enqueue -> worker -> reply (with the deadline timer) costs 4.6-4.7 us against
# 5.1-5.8 us on gevent's Queue (no-op handler, taskset -c 1; benchmarks/actor_hop.py);
# 4.1 us since issue 12 (actors.py's envelope and timers, `get` without a helper call).

Everything runs in the one thread of the gevent hub: no locks.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Generic, Protocol, TypeVar

from gevent.hub import Waiter
from gevent.queue import Empty, Full

__all__ = ["BoundedMailbox", "Empty", "Full", "Mailbox"]

T = TypeVar("T")


class Mailbox(Protocol[T]):
    """What an actor needs of its mailbox (``gevent.queue.Queue`` fits too)."""

    def put_nowait(self, item: T) -> None: ...

    def put(self, item: T, block: bool = True, timeout: float | None = None) -> None: ...

    def get(self) -> T: ...

    def get_nowait(self) -> T: ...

    def qsize(self) -> int: ...


class BoundedMailbox(Generic[T]):
    """A FIFO of at most `maxsize` items for greenlets of one hub.

    Raises `gevent.queue.Full` from `put_nowait` (and from `put` once its timeout passes)
    and `gevent.queue.Empty` from `get_nowait`.
    """

    __slots__ = ("_givers", "_items", "_takers", "maxsize")

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"a mailbox holds at least 1 item, not {maxsize}")
        self.maxsize = maxsize
        self._items: deque[T] = deque()
        self._takers: deque[Waiter[Any]] = deque()  # workers waiting for an item
        self._givers: deque[Waiter[Any]] = deque()  # callers waiting for room
        # NOTE: no loop is bound here: building the app may happen in another thread than
        # the one whose hub runs it (thread_bridge.py); a waiter is woken in its own hub.

    def qsize(self) -> int:
        """Return how many items wait in the mailbox."""
        return len(self._items)

    def put_nowait(self, item: T) -> None:
        """Add `item`, or raise `Full` at once."""
        items = self._items
        if len(items) >= self.maxsize:
            raise Full
        items.append(item)
        if self._takers:
            # NOTE: Waiter.switch must run in the hub: the callback wakes the taker there.
            taker = self._takers.popleft()
            taker.hub.loop.run_callback(taker.switch, None)

    def put(self, item: T, block: bool = True, timeout: float | None = None) -> None:
        """Add `item`, waiting up to `timeout` seconds (None: for ever) for room.

        Raises:
            Full: no room came in time (or at once, when `block` is false).
        """
        if len(self._items) < self.maxsize or not block:
            self.put_nowait(item)
            return
        waiter: Waiter[Any] = Waiter()
        timer = None
        if timeout is not None:
            timer = waiter.hub.loop.timer(max(0.0, timeout))
            # NOTE: update=True: the loop's clock is read once per iteration, and a busy
            # iteration (a burst of requests) would leave a short timeout already spent.
            timer.start(waiter.switch, False, update=True)
        try:
            while len(self._items) >= self.maxsize:
                self._givers.append(waiter)
                # NOTE: woken with True when a taker made room; someone faster may have
                # filled it again, hence the loop. The timer wakes it with False.
                if not waiter.get():
                    raise Full
        except BaseException:
            # NOTE: timed out (or killed) after a taker had already handed this giver the
            # room: its wake-up is lost with it, so pass the room on to the next giver.
            handed_room = not _forget(self._givers, waiter)
            if handed_room and self._givers and len(self._items) < self.maxsize:
                _wake(self._givers.popleft(), True)
            raise
        finally:
            if timer is not None:
                timer.close()
        self.put_nowait(item)

    def get(self) -> T:
        """Take the oldest item, waiting for one as long as it takes."""
        items = self._items
        while not items:
            waiter: Waiter[Any] = Waiter()
            self._takers.append(waiter)
            try:
                waiter.get()
            except BaseException:
                # NOTE: killed while waiting: if an item was meant for this taker, wake the
                # next one, or the item would wait for the next put.
                _forget(self._takers, waiter)
                if items and self._takers:
                    _wake(self._takers.popleft(), None)
                raise
        item = items.popleft()
        # PERF: inline, not a helper shared with get_nowait: one call less per hop.
        if self._givers:
            _wake(self._givers.popleft(), True)  # room for one
        return item

    def get_nowait(self) -> T:
        """Take the oldest item, or raise `Empty` at once."""
        if not self._items:
            raise Empty
        item = self._items.popleft()
        if self._givers:
            _wake(self._givers.popleft(), True)  # room for one
        return item


def _wake(waiter: Waiter[Any], value: object) -> None:
    waiter.hub.loop.run_callback(waiter.switch, value)


def _forget(waiters: deque[Waiter[Any]], waiter: Waiter[Any]) -> bool:
    # Take `waiter` off the line; False when whoever woke it already had.
    try:
        waiters.remove(waiter)
    except ValueError:
        return False
    return True
