"""The state of one client connection, shared by its parsing and answering sides.

`brrt_actors.engine.connection.Connection` is one object written in four modules: this
base (what the connection needs of its server, its state, the deadline-bounded socket
writes), `brrt_actors.engine.parsing` (the parser's callbacks, feeding it, reading a body),
`brrt_actors.engine.answering` (start_response, the head, framing, streaming) and
`brrt_actors.engine.connection` (the loop). The two sides are mixins of that one class,
not objects of their own: the hot path pays no extra attribute lookup or call for the split.
"""
from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import httptools

from brrt_actors.engine.message import Message

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication

    from gevent.socket import socket as Socket

__all__ = ["RECV_SIZE", "ClientGone", "ConnectionBase", "ConnectionServer", "DirectApp", "Expired",
           "linger"]

#: Most bytes taken from the socket by one read.
RECV_SIZE = 65536


#: A brrt app's direct entry, found as its ``brrt_respond`` attribute: ``(environ) -> (status
#: code, headers, body chunks)``, the answer of its WSGI call without ``start_response``
#: (`brrt_actors.app.App.respond`).
DirectApp = Callable[[dict[str, Any]], tuple[int, list[tuple[str, str]], Iterable[bytes]]]


class ConnectionServer(Protocol):
    """What a connection needs of its server (`HttptoolsServer`): read, never set, by it."""

    application: WSGIApplication
    #: The app's direct entry when it has one (`DirectApp`), else None: WSGI.
    direct: DirectApp | None
    #: The environ keys every request shares; each connection copies it once.
    base_environ: dict[str, Any]
    #: The connections waiting for their next request (parked), longest-waiting first
    #: (keys: `Connection`, whose module imports this).
    idle_connections: dict[Any, None]
    #: Set while stopping: answers say ``Connection: close``.
    draining: bool
    keepalive_timeout_s: float
    header_timeout_s: float
    stall_timeout_s: float
    max_body_bytes: int
    max_target_bytes: int
    max_header_count: int
    max_header_bytes: int


def linger(sock: Socket, seconds: float) -> None:
    """Send the FIN, then read and drop what the client still sends, for `seconds` at most.

    Closing with unread bytes in the receive buffer makes the kernel send a reset, which
    can destroy the answer just sent, or turn a clean close between two requests into a
    reset of the client's next one. Returns at the client's own close; never raises.
    """
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)  # the client sees the end of our answer
        sock.settimeout(min(seconds, 0.5))
        deadline = time.monotonic() + seconds
        budget = 1 << 20
        while budget > 0 and time.monotonic() < deadline:
            data = sock.recv(RECV_SIZE)
            if not data:
                break
            budget -= len(data)


class Expired(TimeoutError):
    """A wait on the socket went past the connection's deadline."""


class ClientGone(OSError):
    """Writing to the client failed (it reset, left, or stopped reading)."""


class ConnectionBase:
    """The state of one connection, its bounded send, and `expire` for the server's reaper.

    The subclass `Connection` adds the parser's callbacks (`RequestParsing`), which the
    parser made here calls, and the answering side (`Answering`).
    """

    __slots__ = (
        "_base", "_base_len", "_chunked", "_current", "_environ", "_eof", "_extra", "_failed",
        "_feeding", "_fresh", "_head_deadline", "_idle_until", "_in_head", "_in_message", "_keep",
        "_left", "_msg_fed", "_no_body", "_parser", "_queue", "_reject", "_req", "_resp_headers",
        "_sent", "_status", "_url", "deadline", "greenlet", "server", "sock", "watcher",
    )

    def __init__(self, server: ConnectionServer, sock: Socket, address: Any) -> None:
        self.server = server
        self.sock = sock
        #: The greenlet serving it; None while it is parked (idle, waiting for a request).
        self.greenlet: Any = None
        #: The read watcher that wakes it while parked (made by the server at its first park).
        self.watcher: Any = None
        self._fresh = True  # NOTE: not served yet (see `Connection._serve`)
        self._idle_until = 0.0  # NOTE: when it idles out, kept while it is parked
        base = server.base_environ.copy()
        if isinstance(address, tuple):
            base["REMOTE_ADDR"] = str(address[0])
            base["REMOTE_PORT"] = str(address[1])
        else:  # NOTE: AF_UNIX listeners give the peer name as a string
            base["REMOTE_ADDR"] = str(address or "")
            base["REMOTE_PORT"] = ""
        self._base = base
        self._base_len = len(base)
        #: While blocked on the socket, or parked: when the wait ends (monotonic), else 0.
        #: Past it, the server's reaper throws `Expired` into the greenlet (see `expire`), or
        #: closes the parked connection.
        self.deadline = 0.0
        self._parser: Any = httptools.HttpRequestParser(self)
        # PERF: a list, not a deque: an empty deque holds a 64-slot block (~0.8 KB per idle
        # connection); the queue is one request long but for pipelining clients.
        self._queue: list[Message] = []
        # parsing state
        self._url = b""
        self._environ: dict[str, Any] | None = None
        self._extra = 0
        self._feeding = 0
        self._in_head = False
        self._in_message = False
        self._head_deadline = 0.0
        self._msg_fed = 0
        self._current: Message | None = None
        self._reject: tuple[int, str] = (400, "")
        self._failed: tuple[int, bytes] | None = None  # (status, the answer to send)
        self._eof = False
        # response state
        self._req: Message | None = None
        # The answer's status: WSGI's "200 OK", or the direct entry's 200.
        self._status: str | int | None = None
        self._resp_headers: Sequence[tuple[str, str]] = ()
        self._sent = False
        self._chunked = False
        self._no_body = False
        self._keep = True
        self._left = -1

    def expire(self) -> None:
        """Raise `Expired` in the greenlet, blocked on the socket past its `deadline`.

        Called from the hub by the server's reaper, as gevent's own Timeout would be (a
        parked connection has no greenlet: the server closes it instead).
        """
        self.deadline = 0.0
        self.greenlet.throw(Expired("no progress within the time allowed"))

    def _send(self, data: bytes) -> None:
        # NOTE: a fresh deadline per piece: a slow but steady reader of a large answer is
        # never cut, one that stops reading is (after stall_timeout_s).
        sock = self.sock
        # PERF: first the real, non-blocking socket under gevent's: it never waits, so it
        # needs no deadline, and an answer that fits the send buffer (nearly all) is one
        # call (~0.5 us less than gevent's send with a deadline around it).
        try:
            sent = sock._sock.send(data)  # type: ignore[attr-defined]
        except BlockingIOError:
            sent = 0
        except OSError as ex:
            raise ClientGone(str(ex)) from ex
        if sent == len(data):
            return
        stall_s = self.server.stall_timeout_s
        view = memoryview(data)[sent:]
        try:
            while view:
                self.deadline = time.monotonic() + stall_s
                view = view[sock.send(view):]
        except OSError as ex:
            raise ClientGone(str(ex)) from ex
        finally:
            self.deadline = 0.0
