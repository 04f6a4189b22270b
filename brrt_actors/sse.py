"""Server-sent events: the operations marked ``x-sse: true`` stream ``text/event-stream``.

The handler runs in its actor as any other and returns at once what the stream is made of:
an iterator (a generator) of events, a gevent queue of events (``StopIteration`` put in it
ends the stream), a `Broadcaster` subscription, or a `Response` whose body is one of these.
Its actor's worker greenlet is then free: the connection's greenlet drains the stream.

An event is `Event` (its fields encoded for the wire), a dict or list (sent as one ``data:``
line of JSON), or ``bytes``/``str`` already written in the event stream format. The stream:

- goes out with chunked encoding, each event flushed as it comes; its head goes out at once
  (with a comment when no event is ready yet), so clients see the stream open;
- sends a comment (``: keep-alive``) after ``sse_heartbeat_s`` without an event, so proxies
  keep it open, and ends when the client has left (noticed at that tick, or when a write
  fails) or the server is stopping; the handler's iterator is closed then (a generator's
  ``finally`` runs), and a `Broadcaster` subscription unsubscribes;
- counts against ``sse_max_streams`` (per process) from the handler's answer to its end:
  past it the answer is 503 with ``Retry-After`` (the handler's iterator is closed unread).

A handler's iterator runs in a greenlet of its own (not an actor worker), reading at most
``sse_buffer_events`` ahead of the client: a blocking generator then costs no worker and
the heartbeat still goes out while it waits. Queues and subscriptions are read directly.

Slow clients: a `Broadcaster` (`brrt_actors.broadcast`, re-exported here) keeps at most
``buffer_events`` events per subscriber; one that falls further behind is dropped (its
stream ends after what it holds; a browser's EventSource reconnects with
``Last-Event-ID``). A client that stops reading altogether is cut by the server's stall
timeout.
"""
from __future__ import annotations

import weakref
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final

import gevent
from gevent.queue import Channel, Empty, Queue, SimpleQueue

from brrt_actors.broadcast import Broadcaster, Subscription
from brrt_actors.engine.answering import KEEP_STREAMING
from brrt_actors.errors import HTTPError
from brrt_actors.handler import is_stream
from brrt_actors.json_writer import write_json

if TYPE_CHECKING:
    from brrt_actors.handler import Request
    from brrt_actors.spec.model import Operation

__all__ = ["HEARTBEAT", "KEEP_STREAMING", "OPENED", "SSE_EXTENSION", "Broadcaster", "Event",
           "EventStream", "EventStreams", "StreamFailed", "Subscription", "encode_event",
           "is_event_source", "is_sse_operation", "last_event_id"]

SSE_EXTENSION: Final = "x-sse"
#: The comment sent after `sse_heartbeat_s` without an event.
HEARTBEAT: Final = b": keep-alive\n\n"
#: The comment that sends the head at once when no event is ready yet.
OPENED: Final = b": open\n\n"
_END: Final = StopIteration  # NOTE: gevent's own end-of-queue marker, as a Subscription's


def is_sse_operation(operation: Operation) -> bool:
    """Tell whether the spec marks `operation` as a server-sent event stream."""
    return operation.extensions.get(SSE_EXTENSION) is True


def last_event_id(request: Request) -> str | None:
    """Return the ``Last-Event-ID`` a reconnecting client sent (as the spec decodes it), if any."""
    value = request.headers.get("last-event-id")
    return None if value is None else str(value)


class Event:
    """One server-sent event.

    Args:
        data: the payload: a string (sent line by line), or a JSON value (sent as JSON).
        event: the event's type (the browser's ``addEventListener`` name); None: "message".
        id: the event's id, which a reconnecting client sends back as ``Last-Event-ID``.
        retry: how long (ms) a client waits before reconnecting after the stream ends.

    Raises:
        ValueError: `event` or `id` holds a line break or NUL (each is one line on the wire).
    """

    __slots__ = ("data", "event", "id", "retry")

    def __init__(self, data: Any = "", event: str | None = None, id: str | int | None = None,
                 retry: int | None = None) -> None:
        for name, value in (("event", event), ("id", id)):
            # SECURITY: a line break would start a field (or an event) of the client's choice.
            if value is not None and any(c in str(value) for c in "\r\n\0"):
                raise ValueError(f"an event's {name} is one line: {value!r}")
        self.data = data
        self.event = event
        self.id = id
        self.retry = retry

    def encode(self) -> bytes:
        """Return the event in the ``text/event-stream`` format."""
        data = self.data
        if not isinstance(data, str):
            data = _json(data)
        lines = [f"id: {self.id}\n" if self.id is not None else "",
                 f"event: {self.event}\n" if self.event is not None else "",
                 f"retry: {int(self.retry)}\n" if self.retry is not None else ""]
        # SECURITY: CR, LF and CRLF all end a line for the client: each line of the data
        # is a field of its own (the client joins them with \n), never a field it names.
        lines.extend(f"data: {line}\n" for line in
                     data.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
        lines.append("\n")
        return "".join(lines).encode()

    def __repr__(self) -> str:
        return f"Event(event={self.event!r}, id={self.id!r})"


def _json(value: Any) -> str:
    # NOTE: as every answer's JSON (valid, no NaN); ujson writes it on one line.
    return write_json(value)


def encode_event(item: Any) -> bytes:
    """Return one item of a handler's stream in the wire format.

    Raises:
        TypeError: the item is none of `Event`, dict, list, bytes, str.
        ValueError: the item holds a value with no JSON form.
    """
    kind = type(item)
    if kind is bytes:
        return item  # type: ignore[no-any-return]
    if kind is str:
        return item.encode()  # type: ignore[no-any-return]
    if kind is Event:
        return item.encode()  # type: ignore[no-any-return]
    if kind is dict or kind is list:
        return f"data: {_json(item)}\n\n".encode()
    if isinstance(item, (bytes, bytearray)):
        return bytes(item)
    if isinstance(item, (str, Event)):
        return encode_event(str(item) if isinstance(item, str) else item.encode())
    raise TypeError(f"an event stream item is an Event, a dict or list, bytes or str, "
                    f"not {kind.__name__}")


#: Sources read directly (no greenlet of their own): queues and subscriptions.
_QUEUES: Final = (SimpleQueue, Channel, Subscription)


def is_event_source(body: Any) -> bool:
    """Tell whether a handler's `body` is something an event stream is made of."""
    return isinstance(body, _QUEUES) or is_stream(body) or type(body) in (list, tuple)


# -- the stream ------------------------------------------------------------------------------

class StreamFailed(RuntimeError):
    """A handler's event stream failed after its head went out: the connection is cut."""


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


_NOTHING: Final = object()


def _pump(iterator: Iterator[Any], buffer: Queue[Any]) -> None:
    try:
        for item in iterator:
            buffer.put(item)  # NOTE: blocks while the client is `buffer_events` behind
    except Exception as ex:  # NOTE: the handler's code; the stream reports it and cuts
        buffer.put(_Failure(ex))
    else:
        buffer.put(_END)


class EventStream:
    """The body of one event stream answer: the handler's events, encoded, and heartbeats.

    Made by `EventStreams.open_stream`; iterated by the server, which closes it at the end.
    """

    __slots__ = ("__weakref__", "_closed", "_items", "_pump", "_source", "_streams", "label")

    def __init__(self, source: Any, streams: EventStreams, environ: dict[str, Any],
                 label: str) -> None:
        self.label = label
        self._streams = streams
        self._source = source
        self._pump: gevent.Greenlet[Any, None] | None = None
        self._closed = False
        if type(source) in (list, tuple):
            self._items = self._listed(source)
        elif isinstance(source, _QUEUES):
            self._items = self._drained(source.get, environ, pumped=False)
        else:
            buffer: Queue[Any] = Queue(streams.buffer_events)
            self._pump = gevent.spawn(_pump, iter(source), buffer)
            self._items = self._drained(buffer.get, environ, pumped=True)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        return next(self._items)

    def _encode(self, item: Any) -> bytes:
        try:
            return encode_event(item)
        except (TypeError, ValueError, OverflowError) as ex:
            raise StreamFailed(f"{self.label}: an event cannot be written: {ex}") from None

    def _listed(self, events: Iterable[Any]) -> Generator[bytes, None, None]:
        for item in events:
            yield self._encode(item)

    def _drained(self, get: Callable[..., Any], environ: dict[str, Any], *,
                 pumped: bool) -> Generator[bytes, None, None]:
        heartbeat_s = self._streams.heartbeat_s
        if pumped:
            gevent.sleep(0)  # NOTE: the pump runs first: events ready now go out with the head
        try:
            item = get(False)
        except Empty:
            item = _NOTHING
            yield OPENED
        keep_streaming: Callable[[], bool] | None = environ.get(KEEP_STREAMING)
        while True:
            if item is _NOTHING:
                try:
                    item = get(True, heartbeat_s)
                except Empty:
                    if keep_streaming is not None and not keep_streaming():
                        return  # NOTE: the client left, or the server is stopping
                    yield HEARTBEAT
                    continue
            if item is _END:
                return
            if type(item) is _Failure:
                raise StreamFailed(f"{self.label}: the handler's event stream failed: "
                                   f"{item.error!r}") from item.error
            data = self._encode(item)
            item = _NOTHING
            yield data

    def close(self) -> None:
        """End the stream: close the handler's iterator (or subscription), free the slot."""
        if self._closed:
            return
        self._closed = True
        self._streams.release(self)  # NOTE: first: the slot is free once the handler sees the end
        self._items.close()
        if self._pump is not None:
            self._pump.kill(block=True, timeout=1.0)
        _close_source(self._source)

    def __del__(self) -> None:
        # NOTE: an answer dropped unclosed (an error after the stage made it): the slot is
        # freed by the weak set; the pump must not wait on a buffer nobody reads.
        if not self._closed and self._pump is not None:
            self._pump.kill(block=False)


def _close_source(source: Any) -> None:
    close = getattr(source, "close", None)
    if close is not None:
        close()


class EventStreams:
    """The event streams of one app: their bound, heartbeat and read-ahead.

    Args:
        max_streams: streams open at once; past it `open_stream` answers 503.
        heartbeat_s: seconds without an event before a heartbeat comment.
        buffer_events: events read ahead of the client from a handler's iterator.
    """

    def __init__(self, max_streams: int, heartbeat_s: float, buffer_events: int) -> None:
        self.max_streams = max_streams
        self.heartbeat_s = heartbeat_s
        self.buffer_events = buffer_events
        self._open: weakref.WeakSet[EventStream] = weakref.WeakSet()
        #: Streams refused so far for being past `max_streams`.
        self.refused = 0

    @property
    def open(self) -> int:
        """The streams open now."""
        return len(self._open)

    def open_stream(self, source: Any, environ: dict[str, Any], label: str,
                    retry_after_s: int) -> EventStream:
        """Return the stream of `source`'s events, counted until it is closed.

        Raises:
            HTTPError: 503 with ``Retry-After``: `max_streams` are open (`source` is closed).
        """
        if len(self._open) >= self.max_streams:
            self.refused += 1
            _close_source(source)
            raise HTTPError(503, f"{self.max_streams} event streams are open, the most this "
                                 "server keeps; retry later",
                            headers={"Retry-After": str(retry_after_s)})
        stream = EventStream(source, self, environ, label)
        self._open.add(stream)
        return stream

    def release(self, stream: EventStream) -> None:
        """Stop counting `stream` (its end)."""
        self._open.discard(stream)
