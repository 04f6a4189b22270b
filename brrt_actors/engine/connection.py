"""One client connection of the HTTP/1.1 engine: parse with httptools, run the WSGI app,
write the answers in order.

A greenlet of the server's reads, feeds httptools (llhttp) and serves the parsed requests
one after another; pipelined requests wait in a queue. Waiting for the next request, the
connection gives its greenlet back (`Connection.serve` returns True) and the server parks it
on a read watcher until bytes come (`brrt_actors.engine.httptools_server`). The parser's
callbacks fill the environ as the head comes (a copy of the connection's base environ per
request). A request body is not read ahead: the app's ``wsgi.input`` pulls it from the
socket (and sends ``100 Continue`` first when asked to).

Limits answered by the engine itself, with a problem+json body and ``Connection: close``:
414 (request target), 431 (header count or size), 413 (body), 400 (anything llhttp rejects,
among them request smuggling shapes: Content-Length with Transfer-Encoding, duplicate
Content-Length, obs-fold, CR/LF in a header value, bad chunk sizes; no ``Host`` in
HTTP/1.1, or two), 501 (a method not served), 505 (not HTTP/1.x, HTTP/2's preface too), 408
(headers not complete within ``header_timeout_s`` of their first byte, or a body that
stalls). Rendered by `brrt_actors.problem` as the app's answers are: ``X-Request-ID`` (the
app's, the client's sane one, or a new one) and ``instance`` once the request target was
parsed.

While the server stops (``draining``), every request already read is answered, the last
with ``Connection: close``; so is one already in the socket of a connection that waited for
it. A connection with nothing to answer is closed cleanly: FIN first, then what the client
sent meanwhile is dropped (`linger`), never a reset. A request the grace period cut gets
503 with ``Retry-After``.

The connection is one object written in four modules: `connection_base` (its state, what
it needs of its server, the socket waits), `parsing` (httptools' callbacks, the head's
limits, reading a body), `answering` (start_response, the head, framing, streaming, the
answers replacing a failed app's) and this one (the loop: keep-alive, pipelining, idle and
head timeouts, the last words before closing).
"""
from __future__ import annotations

import contextlib
import logging
import time

from gevent import GreenletExit

from brrt_actors.engine import wire
from brrt_actors.engine.answering import Answering
from brrt_actors.engine.connection_base import RECV_SIZE, Expired, linger
from brrt_actors.engine.parsing import RequestParsing

__all__ = ["Connection", "Expired"]

_log = logging.getLogger("brrt_actors.server")

# NOTE: a connection closed by a stop between two requests sends its FIN, then drops what
# the client sent before it saw the FIN, for this long at most: closing with unread bytes
# would send a reset instead of a clean close.
_DRAIN_LINGER_S = 0.25
# NOTE: how long a connection accepted as the server stops waits for its first request.
_DRAIN_FIRST_REQUEST_S = 0.5


class Connection(RequestParsing, Answering):
    """Serve one client connection until it closes, fails, idles out, or the server stops.

    Built as ``Connection(server, sock, address)`` (`ConnectionBase`); the ``on_*`` methods
    are httptools' parser callbacks (`RequestParsing`).
    """

    # NOTE: the slots are `ConnectionBase`'s; the sides and this add none (no __dict__).
    __slots__ = ()

    @property
    def idle(self) -> bool:
        """True only while waiting for the next request (nothing in flight or half-read)."""
        return self in self.server.idle_connections

    # --- the loop -----------------------------------------------------------------------

    def serve(self) -> bool:
        """Serve requests until the connection waits for its next one, or ends.

        Returns:
            True when it waits for its next request with nothing read of it (idle): the
            server parks it on a read watcher, without a greenlet, and calls `serve` again
            when bytes come. False when it is over: the server closes it.

        Never raises for a client's fault; `GreenletExit` (the stop's grace period is over)
        goes through, after the 503 to a request in flight.
        """
        try:
            if self._serve():
                return True
        except OSError:
            pass  # NOTE: the client reset, left, or stalled on a write: nothing left to say
        except GreenletExit:  # the server is stopping and the grace period is over
            if self._req is not None and not self._sent:
                with contextlib.suppress(OSError):
                    # NOTE: the hot path waits without a socket timeout (bounded by
                    # `deadline`); these last words have one of their own.
                    self.sock.settimeout(0.5)
                    self.sock.sendall(wire.request_problem(
                        503, "the server stopped before the answer was ready",
                        self._req.environ, self._app_request_id(), wire.RETRY_AFTER))
            self.release()
            raise
        except Exception:
            _log.exception("the HTTP engine failed on a connection")
        self.release()
        return False

    def release(self) -> None:
        """Drop what the connection holds once it is over (the parser holds our callbacks)."""
        self._parser = None
        self._queue.clear()

    def _serve(self) -> bool:
        queue = self._queue
        server = self.server
        sock = self.sock
        recv = sock.recv
        # NOTE: the real, non-blocking socket under gevent's: a read that would block raises
        # BlockingIOError instead of waiting. Woken (or new), the connection reads at once:
        # bytes are usually there; when nothing is, it parks (True) instead of keeping a
        # greenlet blocked.
        try_recv = sock._sock.recv  # type: ignore[attr-defined]
        # PERF: once it has answered, it parks without trying to read: its client cannot
        # have sent the next request before it saw this answer (a pipelining client's
        # bytes wake the parked connection on the loop's next turn). The read that would
        # fail (~1.3 us: the syscall and the BlockingIOError) was one per request.
        answered = False
        keepalive_s = server.keepalive_timeout_s
        monotonic = time.monotonic
        # SECURITY: counted from the last answer, not from the last packet: bytes that start
        # no request (empty lines) do not keep an idle connection open.
        idle_until = self._idle_until
        # NOTE: a connection the stop took from the listen backlog (`HTTPServer.stop`) waits
        # for its first request (briefly): the kernel accepted it, its client may send.
        first_wait_s = _DRAIN_FIRST_REQUEST_S if server.draining and self._fresh else 0.0
        self._fresh = False
        while True:
            while queue:
                idle_until = 0.0
                req = queue.pop(0)
                if not self._respond(req):
                    if req.error or not req.complete or queue or self._in_message:
                        self._linger()  # NOTE: bytes we did not read may still come
                    return False
                answered = True
                del req  # NOTE: an idle connection keeps no request (environ, body) alive
            if self._failed is not None:
                self._send(self._failed[1])
                # NOTE: a client too slow with its head gets no more of our time than this.
                self._linger(0.2 if self._failed[0] == 408 else 1.0)
                return False
            if self._eof:
                return False
            if server.draining and not self._in_head:
                # NOTE: stopping, nothing begun: what the client already sent is served
                # (the answer ends the connection), else the connection closes cleanly.
                data = self._sent_already(first_wait_s)
                if not data:
                    self._linger(_DRAIN_LINGER_S)
                    return False
                first_wait_s = 0.0
                self._feed(data)
                continue
            if self._in_head:  # part of the next request's head is here: its deadline runs
                if self._head_deadline <= monotonic():
                    self._fail(408, "the request head did not arrive in time")
                    continue
                self.deadline = self._head_deadline
                try:
                    data = recv(RECV_SIZE)
                except Expired:
                    self._fail(408, "the request head did not arrive in time")
                    continue
                finally:
                    self.deadline = 0.0
            else:
                if not idle_until:
                    idle_until = monotonic() + keepalive_s
                # NOTE: parked, the server closes it at `idle_until` (keepalive_timeout_s),
                # or to make room for a new connection, or when it stops.
                if answered:
                    self._idle_until = idle_until
                    return True
                try:
                    data = try_recv(RECV_SIZE)
                except BlockingIOError:
                    self._idle_until = idle_until
                    return True
            if not data:
                return False
            self._feed(data)

    def _sent_already(self, wait_s: float) -> bytes:
        """Return what the client sent and this connection has not read yet (b"" if none).

        Waits for it up to `wait_s`, 0 for not at all.
        """
        sock = self.sock
        sock.settimeout(wait_s)
        try:
            return sock.recv(RECV_SIZE)
        except (BlockingIOError, TimeoutError):
            return b""
        finally:
            sock.settimeout(None)

    def _linger(self, seconds: float = 1.0) -> None:
        linger(self.sock, seconds)

