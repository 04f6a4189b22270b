"""Server-sent events (``x-sse: true``) over real sockets: live events, heartbeats, a client
that leaves, the bound on open streams, and the pet store's live GET /events."""
from __future__ import annotations

import http.client
import importlib
import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import ujson
from conftest import PETSTORE_ENV, ROOT, TEST_SPECS, Serve
from gevent.event import Event as Flag
from gevent.queue import Queue

from brrt_actors import HTTPError, Request, create_app
from brrt_actors.entrypoints.server import HTTPServer
from brrt_actors.sse import (
    HEARTBEAT,
    OPENED,
    Broadcaster,
    Event,
    encode_event,
)

SPEC = TEST_SPECS / "sse.yaml"
API_KEY = PETSTORE_ENV["BRRTR_API_KEY__ApiKeyHeader"]
WAIT_S = 5.0  # the longest any read here waits; a healthy run never comes near it


class Stream:
    """A raw client of one streamed answer: its head, then its chunks one by one."""

    def __init__(self, server: HTTPServer, path: str, headers: dict[str, str] | None = None,
                 method: str = "GET") -> None:
        self.sock = socket.create_connection(server.address[:2], timeout=WAIT_S)
        lines = [f"{method} {path} HTTP/1.1", "Host: test",
                 *(f"{name}: {value}" for name, value in (headers or {}).items())]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self._buffer = b""
        head = self._until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        self.status = int(head[0].split()[1])
        self.headers = {name.lower(): value.strip() for name, _, value in
                        (line.partition(":") for line in head[1:])}

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("the server closed the connection")
        self._buffer += data

    def _until(self, mark: bytes) -> bytes:
        while mark not in self._buffer:
            self._fill()
        found, self._buffer = self._buffer.split(mark, 1)
        return found

    def _exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._fill()
        found, self._buffer = self._buffer[:size], self._buffer[size:]
        return found

    def chunk(self, timeout: float = WAIT_S) -> bytes:
        """Return the next chunk (b"" for the last one), waiting `timeout` at most."""
        self.sock.settimeout(timeout)
        size = int(self._until(b"\r\n"), 16)
        data = self._exactly(size)
        self._exactly(2)
        return data

    def event(self, timeout: float = WAIT_S) -> bytes:
        """Return the next chunk that is not a comment."""
        while (data := self.chunk(timeout)).startswith(b":"):
            pass
        return data

    def body(self) -> bytes:
        """Return what remains of an answer framed by its Content-Length (HEAD: nothing)."""
        return self._exactly(int(self.headers.get("content-length", "0")))

    def close(self) -> None:
        self.sock.close()


OpenStream = Callable[..., Stream]


@pytest.fixture()
def open_stream() -> Iterator[OpenStream]:
    """``open_stream(server, path, headers=None, method="GET")``: a `Stream`, closed at the end."""
    made: list[Stream] = []

    def make(*args: Any, **kwargs: Any) -> Stream:
        made.append(Stream(*args, **kwargs))
        return made[-1]

    yield make
    for stream in made:
        stream.close()


@pytest.fixture()
def feed() -> Broadcaster:
    return Broadcaster(buffer_events=8)


@pytest.fixture()
def closed() -> Flag:
    """Set when the `follow` handler's generator is closed."""
    return Flag()


@pytest.fixture()
def sse_app(make_app: Callable[..., Any], feed: Broadcaster, closed: Flag,
            queues: list[Queue[Any]]) -> Callable[..., Any]:
    def follow(request: Request) -> Iterator[Any]:
        def events() -> Iterator[Any]:
            subscription = feed.subscribe()
            try:
                yield from subscription
            finally:
                subscription.close()
                closed.set()
        return events()

    def from_queue(request: Request) -> Queue[Any]:
        queue: Queue[Any] = Queue()
        queues.append(queue)
        return queue

    def broken(request: Request) -> Iterator[Any]:
        if request.headers.get("x-missing"):
            raise HTTPError(404, "nothing to follow")

        def events() -> Iterator[Any]:
            yield {"n": 1}
            raise RuntimeError("the feed broke")
        return events()

    handlers = {"follow": follow, "queue": from_queue, "broken": broken,
                "burst": lambda request: [Event("one", id=1), {"n": 2}, "data: three\n\n"]}

    def make(**env: str) -> Any:
        return make_app(SPEC, handlers, **{"BRRTR_SSE_HEARTBEAT_S": "0.2", **env})

    return make


@pytest.fixture()
def queues() -> list[Queue[Any]]:
    return []


# -- the runtime ------------------------------------------------------------------------------

def test_events_are_flushed_as_they_come_and_a_list_ends(
        sse_app: Callable[..., Any], serve: Serve, feed: Broadcaster,
        open_stream: OpenStream) -> None:
    server = serve(sse_app())
    stream = open_stream(server, "/follow")
    assert stream.status == 200
    assert stream.headers["content-type"] == "text/event-stream"
    assert stream.headers["transfer-encoding"] == "chunked"
    assert stream.headers["cache-control"] == "no-cache"
    assert stream.headers["x-accel-buffering"] == "no"
    assert stream.chunk() == OPENED  # the head goes out before the first event
    feed.publish(Event({"pet": "Max"}, event="pet.created", id=7))
    assert stream.event() == b'id: 7\nevent: pet.created\ndata: {"pet":"Max"}\n\n'
    feed.publish(Event("two\nlines"))
    assert stream.event() == b"data: two\ndata: lines\n\n"
    stream.close()

    burst = open_stream(server, "/burst")
    assert [burst.chunk() for _ in range(4)] == [
        b"id: 1\ndata: one\n\n", b'data: {"n":2}\n\n', b"data: three\n\n", b""]


def test_a_stream_holds_no_worker_and_sends_heartbeats(
        sse_app: Callable[..., Any], serve: Serve, open_stream: OpenStream) -> None:
    server = serve(sse_app())  # `follow` has one worker (tests/specs/sse.yaml)
    first, second = open_stream(server, "/follow"), open_stream(server, "/follow")
    assert first.chunk() == second.chunk() == OPENED
    assert first.chunk() == HEARTBEAT  # nothing happened for sse_heartbeat_s (0.2 s)
    first.close()
    second.close()


def test_a_client_that_leaves_closes_the_handlers_iterator(
        sse_app: Callable[..., Any], serve: Serve, closed: Flag, feed: Broadcaster,
        open_stream: OpenStream) -> None:
    server = serve(sse_app())
    stream = open_stream(server, "/follow")
    assert stream.chunk() == OPENED
    assert feed.subscribers == 1
    stream.close()
    # Noticed at the next heartbeat (0.2 s): the generator's `finally` runs.
    assert closed.wait(timeout=WAIT_S)
    assert feed.subscribers == 0


def test_a_queue_is_drained_and_stopiteration_ends_the_stream(
        sse_app: Callable[..., Any], serve: Serve, queues: list[Queue[Any]],
        open_stream: OpenStream) -> None:
    server = serve(sse_app())
    stream = open_stream(server, "/queue", {"Last-Event-ID": "41"})
    assert stream.chunk() == OPENED
    (queue,) = queues
    queue.put(Event("hello", id=42))
    assert stream.event() == b"id: 42\ndata: hello\n\n"
    queue.put(StopIteration)
    assert stream.chunk() == b""  # the last chunk: the stream ended cleanly


def test_open_streams_are_bounded(sse_app: Callable[..., Any], serve: Serve,
                                  closed: Flag, open_stream: OpenStream) -> None:
    server = serve(sse_app(BRRTR_SSE_MAX_STREAMS="1", BRRTR_RETRY_AFTER_S="3"))
    stream = open_stream(server, "/follow")
    assert stream.chunk() == OPENED
    refused = open_stream(server, "/follow")
    assert refused.status == 503
    assert refused.headers["retry-after"] == "3"
    assert refused.headers["content-type"] == "application/problem+json"
    assert ujson.loads(refused.body())["status"] == 503
    stream.close()
    assert closed.wait(timeout=WAIT_S)  # the slot is free once the handler saw the end
    again = open_stream(server, "/follow")
    assert again.status == 200 and again.chunk() == OPENED


def test_head_answers_the_head_alone(sse_app: Callable[..., Any], serve: Serve,
                                     open_stream: OpenStream) -> None:
    server = serve(sse_app(BRRTR_SSE_MAX_STREAMS="1"))
    head = open_stream(server, "/follow", method="HEAD")
    assert head.status == 200 and head.headers["content-type"] == "text/event-stream"
    assert "transfer-encoding" not in head.headers
    assert open_stream(server, "/follow").status == 200  # the HEAD took no slot for good


def test_a_failing_iterator_cuts_the_stream(sse_app: Callable[..., Any], serve: Serve,
                                            caplog: pytest.LogCaptureFixture,
                                            open_stream: OpenStream) -> None:
    server = serve(sse_app())
    missing = open_stream(server, "/broken", {"X-Missing": "1"})
    assert missing.status == 404  # raised before any event: an ordinary problem answer
    stream = open_stream(server, "/broken")
    with caplog.at_level(logging.ERROR, logger="brrt_actors.server"):
        assert stream.event() == b'data: {"n":1}\n\n'
        with pytest.raises(EOFError):  # no last chunk: the client sees the stream broke
            stream.chunk()
    assert "broken: the handler's event stream failed" in caplog.text


# -- the pet store's live GET /events --------------------------------------------------------

@pytest.fixture()
def petstore(serve: Serve) -> HTTPServer:
    app = create_app(ROOT / "specs" / "petstore.yaml", handlers=str(ROOT / "handlers"),
                     environ={**PETSTORE_ENV, "BRRTR_SSE_HEARTBEAT_S": "0.2"})
    importlib.import_module("handlers._store").STORE.reset()
    return serve(app)


def _add_pet(server: HTTPServer, name: str) -> int:
    conn = http.client.HTTPConnection(*server.address[:2], timeout=WAIT_S)
    conn.request("POST", "/pets", ujson.dumps({"name": name}),
                 {"Content-Type": "application/json", "X-API-Key": API_KEY})
    response = conn.getresponse()
    assert response.status == 201
    pet_id: int = ujson.loads(response.read())["id"]
    conn.close()
    return pet_id


def test_a_new_pet_is_read_off_an_open_stream(petstore: HTTPServer,
                                              open_stream: OpenStream) -> None:
    stream = open_stream(petstore, "/events", {"X-API-Key": API_KEY})
    assert stream.status == 200 and stream.chunk() == OPENED
    pet_id = _add_pet(petstore, "Luna")
    event = stream.event(timeout=1.0).decode()
    assert event.startswith("id: 4\nevent: pet.created\ndata: ")
    assert ujson.loads(event.split("data: ", 1)[1]) == {"id": pet_id, "name": "Luna"}
    store = importlib.import_module("handlers._store").STORE
    store.update_pet(pet_id, {"name": "Luna II"})
    store.delete_pet(pet_id)
    assert stream.event(timeout=1.0).startswith(b"id: 5\nevent: pet.updated\n")
    assert stream.event(timeout=1.0).startswith(b"id: 6\nevent: pet.deleted\n")
    stream.close()


def test_last_event_id_resumes_after_that_event(petstore: HTTPServer,
                                                open_stream: OpenStream) -> None:
    stream = open_stream(petstore, "/events", {"X-API-Key": API_KEY, "Last-Event-ID": "1"})
    assert [stream.event().split(b"\n", 1)[0] for _ in range(2)] == [b"id: 2", b"id: 3"]
    _add_pet(petstore, "Nala")
    assert stream.event(timeout=1.0).startswith(b"id: 4\nevent: pet.created\n")
    stream.close()
    ended = open_stream(petstore, "/events?count=2", {"X-API-Key": API_KEY})
    assert [ended.chunk().split(b"\n", 1)[0] for _ in range(3)] == [b"id: 3", b"id: 4", b""]


# -- the parts --------------------------------------------------------------------------------

def test_a_slow_subscriber_is_dropped_after_what_it_holds() -> None:
    feed = Broadcaster(buffer_events=2)
    slow, quick = feed.subscribe(), feed.subscribe()
    assert [feed.publish(n) for n in range(2)] == [2, 2]
    assert [quick.get(timeout=1), quick.get(timeout=1)] == [0, 1]  # `slow` reads nothing
    assert feed.publish(2) == 1
    assert slow.dropped and not quick.dropped and feed.dropped == 1
    assert list(slow) == [0, 1]  # what it held, then the end
    assert quick.get(timeout=1) == 2
    feed.close()
    assert list(quick) == []


def test_events_are_written_in_the_wire_format() -> None:
    assert Event(retry=1500).encode() == b"retry: 1500\ndata: \n\n"
    assert Event("a\rid: 9\r\nb").encode() == b"data: a\ndata: id: 9\ndata: b\n\n"
    assert Event([1, 2], event="tick").encode() == b"event: tick\ndata: [1,2]\n\n"
    assert encode_event("data: x\n\n") == b"data: x\n\n"
    with pytest.raises(ValueError, match="one line"):
        Event("x", id="1\nevent: forged")
    with pytest.raises(TypeError, match="not int"):
        encode_event(5)

