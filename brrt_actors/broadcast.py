"""Publish and subscribe within one process: a `Broadcaster` gives each event to every
`Subscription`, each a bounded queue, so that one slow reader holds back no one.

Made for server-sent events (`brrt_actors.sse`): a handler returns a subscription (or a
generator reading one), and the stream's end closes it.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, Final

from gevent.queue import Queue

__all__ = ["Broadcaster", "Subscription"]

logger = logging.getLogger("brrt_actors.sse")

_END: Final = StopIteration  # NOTE: gevent's own end-of-queue marker


class Subscription:
    """One subscriber of a `Broadcaster`: what it published since, in a bounded queue.

    Iterate it (a blocking generator does) or return it from the handler (read directly).
    `close` unsubscribes; the stream's end closes it.
    """

    __slots__ = ("_broadcaster", "_queue", "dropped")

    def __init__(self, broadcaster: Broadcaster) -> None:
        self._broadcaster: Broadcaster | None = broadcaster
        # NOTE: unbounded underneath: the broadcaster bounds it, and the end marker always fits.
        self._queue: Queue[Any] = Queue()
        #: True once the broadcaster dropped this subscriber for falling behind.
        self.dropped = False

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Return the next event (`StopIteration` once ended); raise `Empty` after `timeout`."""
        return self._queue.get(block, timeout)

    def pending(self) -> int:
        """Return the events published and not yet read."""
        return self._queue.qsize()

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        item = self._queue.get()
        if item is _END:
            raise StopIteration
        return item

    def end(self) -> None:
        """Let the reader have what it holds, then the end (nothing more is delivered)."""
        broadcaster, self._broadcaster = self._broadcaster, None
        if broadcaster is not None:
            broadcaster._subscribers.pop(self, None)
            self._queue.put_nowait(_END)

    close = end


class Broadcaster:
    """Publish events to every subscriber at once, each with a bounded buffer.

    A subscriber holding `buffer_events` unread events when another is published is dropped:
    its stream ends after what it holds (an EventSource then reconnects, sending
    ``Last-Event-ID``), so one slow client never holds the publisher or the others back.

    Publish from the thread whose gevent hub serves the app (handlers do): gevent queues are
    not shared across threads.

    Args:
        buffer_events: events kept per subscriber at most.
    """

    def __init__(self, buffer_events: int = 64) -> None:
        if buffer_events < 1:
            raise ValueError(f"buffer_events must be at least 1, not {buffer_events}")
        self.buffer_events = buffer_events
        # NOTE: a dict, not a set: subscribers are reached in the order they came.
        self._subscribers: dict[Subscription, None] = {}
        #: Subscribers dropped so far for falling behind.
        self.dropped = 0

    @property
    def subscribers(self) -> int:
        """The subscribers now."""
        return len(self._subscribers)

    def subscribe(self) -> Subscription:
        """Return a new subscription: what is published from now on."""
        subscription = Subscription(self)
        self._subscribers[subscription] = None
        return subscription

    def publish(self, event: Any) -> int:
        """Give `event` to every subscriber (never blocks); return how many got it."""
        bound = self.buffer_events
        reached = 0
        for subscription in list(self._subscribers):
            if subscription.pending() >= bound:
                subscription.dropped = True
                self.dropped += 1
                logger.warning("an event stream subscriber fell %d events behind: dropped",
                               bound)
                subscription.end()
                continue
            subscription._queue.put_nowait(event)
            reached += 1
        return reached

    def close(self) -> None:
        """End every subscription."""
        for subscription in list(self._subscribers):
            subscription.end()
