"""The fallback HTTP engine: gevent.pywsgi (pure-Python parsing), chosen with
``BRRTR_HTTP_ENGINE=pywsgi``.

pywsgi's server and handler plus what the runtime needs: TCP_NODELAY, RAW_URI, timeouts
bounding each stall (idle wait, each body read, each write), ``Connection: close`` while
draining, errors sent to the runtime's logger, and its own error answers (414, 400, 500)
rendered as problem+json by `brrt_actors.problem`, as the other engine's are. It leaves
body size limits to the app and has no header count/size limit or header-read deadline of
its own.
"""
from __future__ import annotations

import contextlib
import logging
import socket
from types import TracebackType
from typing import TYPE_CHECKING, Literal, cast

import gevent
from gevent import pywsgi
from gevent.pool import Pool
from gevent.pywsgi import WSGIHandler, WSGIServer
from greenlet import greenlet

from brrt_actors.engine import wire
from brrt_actors.engine.connection_base import linger
from brrt_actors.engine.fdlimit import ensure_fd_limit
from brrt_actors.engine.message import BodyReadError

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication, WSGIEnvironment

__all__ = ["PywsgiServer"]

_log = logging.getLogger("brrt_actors.server")

# NOTE: pywsgi's own limit (answers 414 at or above it); the stubs do not declare it.
_MAX_REQUEST_LINE: int = getattr(pywsgi, "MAX_REQUEST_LINE", 8192)
# NOTE: as the httptools engine's (`brrt_actors.engine.connection`).
_DRAIN_LINGER_S = 0.25
_DRAIN_FIRST_REQUEST_S = 0.5
# What pywsgi's own refusals say (it answers these with a bare status line).
_DETAILS = {
    400: "malformed request",
    414: f"the request line is longer than {_MAX_REQUEST_LINE - 1} bytes",
    500: "internal server error",
}


class _Drained(TimeoutError):
    """Thrown into an idle connection by a stop."""


class _Input(pywsgi.Input):
    """pywsgi's ``wsgi.input``, where a body that stalls is the client's fault (408).

    The app answers it as the httptools engine's `BodyReadError` (no traceback, counted
    under 408), and the connection then ends: its stream is not in a known state.
    """

    __slots__ = ()

    def read(self, length: int | None = None) -> bytes:
        try:
            return super().read(length)
        except TimeoutError as ex:
            raise self._stalled() from ex

    def readline(self, size: int | None = None) -> bytes:
        try:
            return super().readline(size)
        except TimeoutError as ex:
            raise self._stalled() from ex

    def _stalled(self) -> BodyReadError:
        self._chunked_input_error = True  # NOTE: pywsgi's flag: do not read the rest
        return BodyReadError("the request body stalled", 408)


class _ConnectionHandler(WSGIHandler):
    """One client connection: pywsgi's handler plus the timeouts and the drain."""

    server: PywsgiServer
    # True only while waiting for the next request line (nothing in flight): stop() may
    # close such a connection at once.
    idle = False
    # True until the connection reads its first request line.
    first = True
    greenlet: greenlet | None = None

    def handle(self) -> None:
        server = self.server
        sock = self.socket
        # PERF: without TCP_NODELAY, Nagle holds the small response back until the client's
        # delayed ACK (~40 ms) on every keep-alive request after the first.
        with contextlib.suppress(OSError):  # NOTE: a peer that already reset; reads will fail
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(server.keepalive_timeout_s)
        self.greenlet = gevent.getcurrent()
        server.connections.add(self)
        try:
            super().handle()
        finally:
            server.connections.discard(self)
            self.greenlet = None

    def read_requestline(self) -> str:
        server = self.server
        first, self.first = self.first, False
        if server.draining:
            if not first:
                # NOTE: stopping: end the keep-alive connection instead of waiting, cleanly
                linger(self.socket, _DRAIN_LINGER_S)
                return ""
            # NOTE: taken from the listen backlog by the stop: its first request is awaited
            # (briefly), as the other engine's.
            self.socket.settimeout(_DRAIN_FIRST_REQUEST_S)
        else:
            self.idle = True
        try:
            line = self.rfile.readline(_MAX_REQUEST_LINE)
        except TimeoutError as ex:
            if isinstance(ex, _Drained) or server.draining:  # closed by a stop
                linger(self.socket, _DRAIN_LINGER_S)
            return ""  # idle for keepalive_timeout_s: close quietly
        finally:
            self.idle = False
            if first and server.draining:
                self.socket.settimeout(server.keepalive_timeout_s)
        return line.decode("latin-1")

    def handle_one_request(self) -> tuple[str, bytes] | Literal[True] | None:
        result = super().handle_one_request()
        if isinstance(result, tuple):
            # NOTE: pywsgi refused the head (414, 400) with a bare answer: ours instead. The
            # head is not trusted here: no instance, and a new request id.
            status = int(result[0])
            return result[0], wire.problem_response(
                status, _DETAILS.get(status, _DETAILS[400]))
        return result

    def _send_error_response_if_possible(self, error_code: int) -> None:
        # NOTE: pywsgi's hook for its 400 (a body it cannot read) and 500 (the app raised
        # before answering), plain text there; problem+json here, then the connection ends.
        self.close_connection = True
        if self.response_length or self.headers_sent:
            return  # part of an answer is out: closing is the only signal left
        with contextlib.suppress(OSError):
            self._sendall(wire.request_problem(
                error_code, _DETAILS.get(error_code, _DETAILS[500]), self.environ or {},
                self._app_request_id()))

    def _app_request_id(self) -> str | None:
        # NOTE: the app may have chosen the request's id (and logged with it) before it
        # failed: the answer keeps it. `status` is reset per request, `response_headers` not.
        if self.status is not None and self.response_headers:
            headers = cast("list[tuple[bytes, bytes]]", self.response_headers)
            for name, value in headers:
                if name.lower() == b"x-request-id":
                    return value.decode("latin-1")
        return None

    def get_environ(self) -> WSGIEnvironment:
        env = super().get_environ()
        # NOTE: PATH_INFO is already percent-decoded, so "%2F" and "/" look alike there; the
        # router matches on the raw target and decodes each path parameter itself.
        env["RAW_URI"] = self.path
        if env.get("wsgi.input") is self.wsgi_input:
            # NOTE: same slots: a stalled body then says 408 (`_Input`), at no extra cost.
            self.wsgi_input.__class__ = _Input
        return env

    def finalize_headers(self) -> None:
        super().finalize_headers()
        failed = getattr(self.wsgi_input, "_chunked_input_error", False)  # NOTE: pywsgi's
        if (self.server.draining or failed) and not self.close_connection:
            # NOTE: tell the client this connection ends here, so it does not send its next
            # request into a socket we are about to close (stopping), or whose body could
            # not be read (what follows it cannot be taken for a request).
            self.close_connection = True
            # NOTE: pywsgi stores the headers latin-1 encoded (its stub says str).
            headers = cast("list[tuple[bytes, bytes]]", self.response_headers)
            headers[:] = [(name, value) for name, value in headers
                          if name.lower() != b"connection"]
            headers.append((b"Connection", b"close"))

    def _sendall(self, data: bytes | bytearray | memoryview) -> None:
        # NOTE: gevent's sendall() applies the socket timeout to the whole call, which would cut
        # a slow reader of a large response after keepalive_timeout_s. send() applies it per
        # write, so only a client that stops reading is dropped.
        view = memoryview(data)
        send = self.socket.send
        try:
            while view:
                view = view[send(view):]
        except OSError as ex:
            # Same bookkeeping as pywsgi's own _sendall (the access log reads it).
            self.status = f"socket error: {ex}"
            if self.code is not None and self.code > 0:
                self.code = -self.code
            raise

    def log_error(self, msg: str, *args: object) -> None:
        # NOTE: pywsgi's report of a request it refused (400): the client's fault, not an
        # error of the server's (pywsgi would write it to the error log at ERROR).
        _log.info("pywsgi refused a request " + msg, *args)

    def _log_error(self, t: type[BaseException], v: BaseException,
                   tb: TracebackType | None) -> None:
        # NOTE: pywsgi prints these to stderr through the hub; send them to our logger.
        if issubclass(t, TimeoutError):  # a client that stalled mid-request: its fault, not ours
            _log.info("closing a stalled connection (%s %s, over %ss without progress)",
                      self.command, self.path, self.server.keepalive_timeout_s)
        elif not issubclass(t, gevent.GreenletExit):
            _log.error("unhandled error in the WSGI app on %s %s", self.command, self.path,
                       exc_info=(t, v, tb))


class PywsgiServer(WSGIServer):
    """gevent.pywsgi's server plus the state its connection handlers share.

    Args:
        listener: a bound, listening socket, or a (host, port) to bind at `start`.
        application: the WSGI application.
        pool: the bounded pool connection greenlets are spawned from.
        keepalive_timeout_s: idle keep-alive connections are closed after this; also the
            longest stall allowed on any single read or write.
        server_name: SERVER_NAME of the environ.
    """

    handler_class = _ConnectionHandler

    def __init__(self, listener: socket.socket | tuple[str, int], application: WSGIApplication,
                 *, pool: Pool, keepalive_timeout_s: float, server_name: str) -> None:
        super().__init__(
            listener, application, spawn=pool,
            log=None,  # PERF: no access log line per request
            error_log=_log,
            # NOTE: a given SERVER_NAME spares pywsgi a reverse DNS lookup at start.
            environ={"SERVER_NAME": server_name},
        )
        self.keepalive_timeout_s = keepalive_timeout_s
        #: Set by the owner when stopping: answers say ``Connection: close``.
        self.draining = False
        self.connections: set[_ConnectionHandler] = set()
        self._pool = pool

    def start(self) -> None:
        """Bind (when given an address) and start accepting."""
        if self._pool.size is not None:
            ensure_fd_limit(self._pool.size)
        super().start()

    def has_room(self) -> bool:
        """Whether another connection fits in the pool."""
        return not self._pool.full()

    def close_idle(self) -> None:
        """Close the connections waiting for a request line, as a stop does.

        As `HttptoolsServer.close_idle`: call it in the hub, with `draining` set.
        """
        for conn in list(self.connections):
            if conn.idle and conn.greenlet is not None:
                conn.greenlet.throw(_Drained())  # NOTE: from the hub, as a gevent Timeout

    def connection_stats(self) -> dict[str, int]:
        """Return the connection figures, read on demand (for /metrics).

        As `HttptoolsServer.connection_stats`; ``idle`` counts the connections waiting for
        a request line, and ``evicted`` is always 0 (a new client waits for a free slot).
        """
        pool = self._pool
        return {"open": len(pool), "idle": sum(1 for conn in self.connections if conn.idle),
                "limit": pool.size or 0, "evicted": 0}
