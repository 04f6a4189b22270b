"""One client connection of the HTTP/1.1 engine: parse with httptools, run the WSGI app,
write the answers in order.

The connection greenlet reads, feeds httptools (llhttp) and serves the parsed requests one
after another; pipelined requests wait in a queue. The parser's callbacks fill the environ
as the head comes (a copy of the connection's base environ per request). A request body is
not read ahead: the app's ``wsgi.input`` pulls it from the socket (and sends
``100 Continue`` first when asked to).

Limits answered by the engine itself, with a problem+json body and ``Connection: close``:
414 (request target), 431 (header count or size), 413 (body), 400 (anything llhttp rejects,
among them request smuggling shapes: Content-Length with Transfer-Encoding, duplicate
Content-Length, obs-fold, CR/LF in a header value, bad chunk sizes), 408 (headers not
complete within ``header_timeout_s`` of their first byte, or a body that stalls). Rendered
by `brrt_actors.problem` as the app's answers are: ``X-Request-ID`` (the app's, the
client's sane one, or a new one) and ``instance`` once the request target was parsed.
"""
from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httptools
from gevent import GreenletExit

from brrt_actors.engine import wire
from brrt_actors.engine.message import NO_BODY, BodyReadError, Input, Message
from brrt_actors.problem import body_too_large

if TYPE_CHECKING:
    from gevent.socket import socket as Socket

    from brrt_actors.engine.httptools_server import HttptoolsServer

__all__ = ["Connection", "Expired"]

_log = logging.getLogger("brrt_actors.server")

_RECV_SIZE = 65536
# PERF: head and body go out in one send up to this size (at the cost of copying the body);
# above it, in two sends.
_COALESCE_MAX = 65536
_NO_BODY_STATUS = frozenset({204, 304})
_KEYS = wire._KEYS
_STATUS = wire._STATUS
_KINDS = wire._KINDS
_LENGTH, _DATE, _SERVER, _CONNECTION = wire.LENGTH, wire.DATE, wire.SERVER_HEADER, wire.CONNECTION
_METHODS = {m.encode(): m for m in
            ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")}
_PROTOCOLS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0"}
_ExcInfo = (tuple[type[BaseException], BaseException, TracebackType]
            | tuple[None, None, None])


class Expired(TimeoutError):
    """A wait on the socket went past the connection's deadline."""


class _ClientGone(OSError):
    """Writing to the client failed (it reset, left, or stopped reading)."""


class _Reject(Exception):
    """Raised inside a parser callback: stop parsing, answer `status`, close."""


class Connection:
    """Serve one client connection until it closes, fails, idles out, or the server stops.

    The ``on_*`` methods are httptools' parser callbacks.
    """

    __slots__ = (
        "_base", "_base_len", "_chunked", "_current", "_environ", "_eof", "_extra", "_failed",
        "_feeding", "_head_deadline", "_in_head", "_in_message", "_keep", "_left", "_msg_fed",
        "_no_body", "_parser", "_queue", "_reject", "_req", "_resp_headers", "_sent", "_status",
        "_timeout", "_url", "deadline", "greenlet", "server", "sock",
    )

    def __init__(self, server: HttptoolsServer, sock: Socket, address: Any) -> None:
        self.server = server
        self.sock = sock
        self.greenlet: Any = None
        base = server.base_environ.copy()
        if isinstance(address, tuple):
            base["REMOTE_ADDR"] = str(address[0])
            base["REMOTE_PORT"] = str(address[1])
        else:  # NOTE: AF_UNIX listeners give the peer name as a string
            base["REMOTE_ADDR"] = str(address or "")
            base["REMOTE_PORT"] = ""
        self._base = base
        self._base_len = len(base)
        #: While blocked on the socket: when the wait ends (monotonic), else 0. The server's
        #: reaper throws `Expired` into the greenlet past it (see `expire`).
        self.deadline = 0.0
        self._parser: Any = httptools.HttpRequestParser(self)
        self._queue: deque[Message] = deque()
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
        self._timeout: float | None = None
        # response state
        self._req: Message | None = None
        self._status: str | None = None
        self._resp_headers: list[tuple[str, str]] = []
        self._sent = False
        self._chunked = False
        self._no_body = False
        self._keep = True
        self._left = -1

    @property
    def idle(self) -> bool:
        """True only while waiting for the next request (nothing in flight or half-read)."""
        return self in self.server.idle_connections

    # --- parser callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._environ = self._base.copy()
        self._extra = 0  # header fields not counted by the environ's size
        self._in_head = True
        self._in_message = True
        self._msg_fed = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self.server.max_target_bytes:
            self._reject = (414, f"the request target is longer than "
                                 f"{self.server.max_target_bytes} bytes")
            raise _Reject

    def on_header(self, name: bytes, value: bytes) -> None:
        environ = self._environ
        if environ is None:
            return  # NOTE: after the head: trailers of a chunked body, dropped
        key = _KEYS.get(name)
        if key is None:
            key = wire.environ_key(name)
        if not key:
            self._extra += 1
        elif key in environ:
            self._extra += 1
            environ[key] += ("; " if key == "HTTP_COOKIE" else ",") + value.decode("latin-1")
        else:
            environ[key] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        server = self.server
        parser = self._parser
        environ = self._environ
        assert environ is not None
        # NOTE: `_environ` stays set until the head is accepted: a refusal reads it.
        self._in_head = False
        self._head_deadline = 0.0
        if len(environ) - self._base_len + self._extra > server.max_header_count:
            self._reject = (431, f"more than {server.max_header_count} header fields")
            raise _Reject
        # PERF: the head cannot be larger than what was fed for it; measured only when that
        # could pass the limit.
        if (self._msg_fed + self._feeding > server.max_header_bytes
                and len(self._url) + sum(len(key) + len(value) for key, value in environ.items()
                                         if key not in self._base) > server.max_header_bytes):
            self._reject = (431, f"the request head is larger than "
                                 f"{server.max_header_bytes} bytes")
            raise _Reject
        version = parser.get_http_version()
        protocol = _PROTOCOLS.get(version)
        if protocol is None:
            self._reject = ((505, "only HTTP/1.0 and HTTP/1.1 are served")
                            if version[:1] > "1" else (400, "malformed request line"))
            raise _Reject
        length = environ.get("CONTENT_LENGTH")
        if length is not None and int(length) > server.max_body_bytes:
            # SECURITY: refused before a single body byte is read.
            self._reject = (413, body_too_large(server.max_body_bytes))
            raise _Reject
        self._environ = None  # NOTE: what comes after the head (trailers) is dropped
        raw_method = parser.get_method()
        method = _METHODS.get(raw_method) or raw_method.decode("latin-1")
        raw = self._url.decode("latin-1")
        path, _, query = raw.partition("?")
        environ["REQUEST_METHOD"] = method
        environ["SERVER_PROTOCOL"] = protocol
        environ["RAW_URI"] = raw
        environ["PATH_INFO"] = wire.path_info(path) if "%" in path else path
        environ["QUERY_STRING"] = query
        # NOTE: an upgrade (or CONNECT) is answered as a plain request, then the connection
        # ends: what follows it on the wire is another protocol.
        req = Message(environ, parser.should_keep_alive() and not parser.should_upgrade(),
                       method == "HEAD", protocol == "HTTP/1.0")
        if (length is not None and length != "0") or "HTTP_TRANSFER_ENCODING" in environ:
            environ["wsgi.input"] = Input(self, req)
            expect = environ.get("HTTP_EXPECT")
            req.expect = (expect is not None and expect.lower() == "100-continue"
                          and not req.http10)
        else:
            environ["wsgi.input"] = NO_BODY
        self._current = req
        self._queue.append(req)

    def on_body(self, body: bytes) -> None:
        req = self._current
        if req is None:  # pragma: no cover - llhttp calls on_body inside a message only
            return
        req.chunks.append(body)
        req.buffered += len(body)
        req.received += len(body)
        if req.received > self.server.max_body_bytes:
            # NOTE: a chunked body has no length up front: counted as it comes.
            self._reject = (413, body_too_large(self.server.max_body_bytes))
            raise _Reject

    def on_message_complete(self) -> None:
        req = self._current
        if req is not None:
            req.complete = True
            self._current = None
        self._in_message = False

    # --- reading ------------------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        self._feeding = len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._eof = True  # NOTE: serve what is queued, then close
            return
        except httptools.HttpParserCallbackError:
            self._fail(*self._reject)
            return
        except httptools.HttpParserError as ex:
            self._fail(400, f"malformed request: {ex}")
            return
        if self._in_message:
            # SECURITY: httptools buffers a header line (and trailers) until it ends; these
            # bound what a client can make it hold. The count includes whatever preceded
            # the message in its first packet, hence the extra packet's worth.
            server = self.server
            fed = self._msg_fed = self._msg_fed + len(data)
            if self._in_head:
                if fed > server.max_header_bytes + _RECV_SIZE:
                    self._fail(431, f"the request head is larger than "
                                    f"{server.max_header_bytes} bytes")
                elif not self._head_deadline:
                    self._head_deadline = time.monotonic() + server.header_timeout_s
            elif fed > 2 * server.max_body_bytes + server.max_header_bytes + 2 * _RECV_SIZE:
                self._fail(413, body_too_large(server.max_body_bytes))

    def _fail(self, status: int, detail: str) -> None:
        in_head = self._in_head
        self._eof = True  # nothing more is read from this connection
        self._in_head = self._in_message = False
        req = self._current
        if req is not None:
            req.error, req.detail = status, detail  # the request that was being read
            self._current = None
        else:
            self._failed = (status, self._head_problem(status, detail, in_head))

    def _head_problem(self, status: int, detail: str, in_head: bool) -> bytes:
        """Render the answer to a request refused before (or as) its head completed."""
        environ = self._environ
        if environ is None:  # nothing of a request parsed yet
            return wire.problem_response(status, detail)
        # NOTE: the target is known whole once a header field (httptools hands one over
        # when the next begins), or the head's end, followed it.
        if not in_head or len(environ) > self._base_len or self._extra:
            environ["RAW_URI"] = self._url.decode("latin-1")
        return wire.request_problem(status, detail, environ)

    def fill(self, req: Message) -> None:
        """Read more of `req`'s body from the socket (the app's ``wsgi.input`` calls it).

        Raises:
            BodyReadError: the body is malformed, too large, stalled, or the client left.
        """
        if not req.error:
            if req.expect:
                req.expect = False
                self._send(wire.CONTINUE)
            if self._eof:
                req.error, req.detail = 400, "the request body ended early"
            else:
                self.deadline = time.monotonic() + self.server.stall_timeout_s
                try:
                    data = self.sock.recv(_RECV_SIZE)
                except Expired:
                    data = None
                    req.error, req.detail = 408, "the request body stalled"
                finally:
                    self.deadline = 0.0
                if data:
                    self._feed(data)
                elif data is not None:
                    self._eof = True
                    req.error, req.detail = 400, "the client closed inside the request body"
        if req.error:
            self._eof = True
            raise BodyReadError(req.detail)

    def _settimeout(self, timeout: float) -> None:
        # NOTE: only for the last words (linger, the answer to a stop); the hot path waits
        # without a socket timeout, bounded by `deadline` instead.
        if timeout != self._timeout:
            self.sock.settimeout(timeout)
            self._timeout = timeout

    def expire(self) -> None:
        """Raise `Expired` in the greenlet, blocked on the socket past its `deadline`.

        Called from the hub, as gevent's own Timeout does: by the server's reaper, and by
        the server's eviction of an idle connection (which then ends within this call).
        """
        self.deadline = 0.0
        self.greenlet.throw(Expired("no progress within the time allowed"))

    # --- the loop -----------------------------------------------------------------------

    def serve(self) -> None:
        """Serve requests until the connection ends; never raises for a client's fault."""
        try:
            self._serve()
        except OSError:
            pass  # NOTE: the client reset, left, or stalled on a write: nothing left to say
        except GreenletExit:  # the server is stopping and the grace period is over
            if self._req is not None and not self._sent:
                with contextlib.suppress(OSError):
                    self._settimeout(0.5)
                    self.sock.sendall(wire.request_problem(
                        503, "the server stopped before the answer was ready",
                        self._req.environ, self._app_request_id()))
        except Exception:
            _log.exception("the HTTP engine failed on a connection")
        finally:
            # NOTE: the parser holds our callbacks: break the cycle, free the memory now.
            self._parser = None
            self._queue.clear()

    def _serve(self) -> None:
        queue = self._queue
        server = self.server
        recv = self.sock.recv
        keepalive_s = server.keepalive_timeout_s
        monotonic = time.monotonic
        # NOTE: in this (insertion-ordered) dict exactly while blocked waiting for the next
        # request, longest-waiting first: the server closes the first one to make room when
        # its pool is full. PERF: an insert and a delete per wait (~35 ns more than setting
        # and clearing a flag).
        idle = server.idle_connections
        # SECURITY: counted from the last answer, not from the last packet: bytes that start
        # no request (empty lines) do not keep an idle connection open.
        idle_until = 0.0
        while True:
            while queue:
                idle_until = 0.0
                req = queue.popleft()
                if not self._respond(req):
                    if req.error or not req.complete or queue or self._in_message:
                        self._linger()  # NOTE: bytes we did not read may still come
                    return None
            if self._failed is not None:
                self._send(self._failed[1])
                # NOTE: a client too slow with its head gets no more of our time than this.
                return self._linger(0.2 if self._failed[0] == 408 else 1.0)
            if self._eof or server.draining:
                return None
            if self._in_head:  # part of the next request's head is here: its deadline runs
                if self._head_deadline <= monotonic():
                    self._fail(408, "the request head did not arrive in time")
                    continue
                self.deadline = self._head_deadline
            else:
                if not idle_until:
                    idle_until = monotonic() + keepalive_s
                self.deadline = idle_until
                idle[self] = None
            try:
                data = recv(_RECV_SIZE)
            except Expired:
                if not self._in_head:
                    return None  # idle for keepalive_timeout_s, or evicted: close quietly
                self._fail(408, "the request head did not arrive in time")
                continue
            finally:
                self.deadline = 0.0
                idle.pop(self, None)
            if not data:
                return None
            self._feed(data)

    def _linger(self, seconds: float = 1.0) -> None:
        # NOTE: closing with unread bytes in the receive buffer makes the kernel send a
        # reset, which can destroy the answer just sent; read (and drop) a little first.
        sock = self.sock
        with contextlib.suppress(OSError):
            sock.shutdown(1)  # SHUT_WR: the client sees the end of our answer
            self._settimeout(min(seconds, 0.5))
            deadline = time.monotonic() + seconds
            budget = 1 << 20
            while budget > 0 and time.monotonic() < deadline:
                data = sock.recv(_RECV_SIZE)
                if not data:
                    break
                budget -= len(data)

    # --- writing ------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        # NOTE: a fresh deadline per piece: a slow but steady reader of a large answer is
        # never cut, one that stops reading is (after stall_timeout_s).
        sock = self.sock
        stall_s = self.server.stall_timeout_s
        try:
            self.deadline = time.monotonic() + stall_s
            sent = sock.send(data)
            if sent < len(data):
                view = memoryview(data)[sent:]
                while view:
                    self.deadline = time.monotonic() + stall_s
                    view = view[sock.send(view):]
        except OSError as ex:
            raise _ClientGone(str(ex)) from ex
        finally:
            self.deadline = 0.0

    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: _ExcInfo | None = None) -> Callable[[bytes], None]:
        """The WSGI ``start_response`` callable (PEP 3333)."""
        if exc_info is not None and exc_info[1] is not None:
            try:
                if self._sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # NOTE: PEP 3333: break the traceback's reference cycle
        elif self._status is not None:
            raise AssertionError("start_response called a second time without exc_info")
        self._status = status
        self._resp_headers = headers
        return self.write

    def _head(self, length: int, body: bytes = b"") -> bytes:
        """Build the status line and headers, followed by `body` when the answer has one.

        `length` is the body's length, < 0 for a streamed body.
        """
        req = self._req
        assert req is not None and self._status is not None
        if req.error:
            raise BodyReadError(req.detail)  # NOTE: the engine answers instead of the app
        line, code = _STATUS.get(self._status) or wire.status_line(self._status)
        keep = req.keep_alive and not self.server.draining
        given = -1
        date = wire.date_block
        parts = []
        kinds = _KINDS
        for name, value in self._resp_headers:
            kind = kinds.get(name)
            if kind is None:
                kind = wire.header_kind(name)
            if kind:
                if kind == _LENGTH:
                    given = int(value)
                elif kind == _DATE:
                    date = wire.no_date
                elif kind == _SERVER:
                    date = wire.date_line if date is wire.date_block else date
                else:
                    # NOTE: hop-by-hop headers are the engine's: it frames the body and
                    # says whether the connection stays open.
                    if kind == _CONNECTION and "close" in value.lower():
                        keep = False
                    continue
            parts.append(f"{name}: {value}\r\n")
        block = "".join(parts)
        # SECURITY: exactly one CR and one LF per header line: no response splitting.
        if block.count("\n") != len(parts) or block.count("\r") != len(parts):
            raise ValueError("a response header holds a line break")
        self._no_body = no_body = req.head or code in _NO_BODY_STATUS or code < 200
        self._chunked = False
        self._left = given
        framing = b""
        if no_body:
            body = b""
            if given < 0 and length > 0 and req.head and code >= 200:
                framing = b"Content-Length: %d\r\n" % length
        elif given >= 0:
            if length >= 0 and given != length:
                keep = False  # NOTE: the app's length is wrong: never reuse this connection
        elif length >= 0:
            framing = b"Content-Length: %d\r\n" % length
        elif req.http10:
            keep = False  # NOTE: no chunked coding in HTTP/1.0: the close ends the body
        else:
            self._chunked = True
            framing = b"Transfer-Encoding: chunked\r\n"
        if not req.complete:
            keep = False  # NOTE: the unread rest of the body would be taken for a request
        self._keep = keep
        self._sent = True
        return b"".join((line, block.encode("latin-1"), framing,
                         (b"" if not req.http10 else b"Connection: keep-alive\r\n") if keep
                         else b"Connection: close\r\n",
                         date(), b"\r\n", body))

    def write(self, data: bytes) -> None:
        """The WSGI ``write`` callable, and the writer of every streamed chunk."""
        if not data:
            return
        if self._status is None:
            raise AssertionError("write() before start_response")
        if not self._sent:
            # NOTE: framed before the head is built: `_head` decides the framing, and the
            # chunk goes out with it (dropped there when the answer has no body).
            head = self._head(-1)
            self._send(head if self._no_body else head + self._frame(data))
            return
        if not self._no_body:
            self._send(self._frame(data))

    def _frame(self, data: bytes) -> bytes:
        if self._chunked:
            return b"%x\r\n%b\r\n" % (len(data), data)
        if self._left >= 0:  # the app gave a Content-Length: never send more than that
            if len(data) > self._left:
                data = data[:self._left]
                self._keep = False
            self._left -= len(data)
        return data

    def _respond(self, req: Message) -> bool:
        """Serve one request; return True when the connection may carry another."""
        if req.error:
            self._send(wire.request_problem(req.error, req.detail, req.environ))
            return False
        self._req = req
        self._status = None
        self._sent = False
        try:
            result = self.server.application(req.environ, self.start_response)
            kind = type(result)
            if (kind is list or kind is tuple) and not self._sent and self._status is not None:
                # PERF: the common case: the whole body in hand, one send for everything.
                body = (result[0] if len(result) == 1 else b"".join(result)) if result else b""
                if len(body) <= _COALESCE_MAX:
                    self._send(self._head(len(body), body))
                else:
                    self._send(self._head(len(body)))
                    if not self._no_body:
                        self._send(body)
            else:
                self._stream(result)
        except Exception as ex:
            self._req = None
            return self._failed_app(req, ex)
        # NOTE: left set when GreenletExit goes through: `serve` then answers 503.
        self._req = None
        return self._keep and req.complete

    def _stream(self, result: Iterable[bytes]) -> None:
        try:
            for data in result:
                if data:
                    self.write(data)
                    if self._no_body:
                        break  # NOTE: HEAD/204/304: the rest would be dropped (SSE never ends)
            if not self._sent:
                if self._status is None:
                    raise AssertionError("the WSGI app returned without start_response")
                self._send(self._head(0))
            elif self._chunked:
                self._send(wire.LAST_CHUNK)
            elif self._left > 0:
                self._keep = False  # NOTE: shorter than its Content-Length
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    def _failed_app(self, req: Message, ex: Exception) -> bool:
        if isinstance(ex, _ClientGone):
            raise ex
        if self._sent:
            if isinstance(ex, BodyReadError):
                return False
            # NOTE: part of the answer is out: the only honest signal left is to close.
            _log.error("the WSGI app failed while answering %s %s",
                       req.environ["REQUEST_METHOD"], req.environ["RAW_URI"], exc_info=ex)
            return False
        # NOTE: the app may have chosen the request's id (and logged with it) before it
        # failed, or before the engine replaced its answer: the engine's answer keeps it.
        request_id = self._app_request_id()
        if req.error:
            self._send(wire.request_problem(req.error, req.detail, req.environ, request_id))
            return False
        _log.error("unhandled error in the WSGI app on %s %s",
                   req.environ["REQUEST_METHOD"], req.environ["RAW_URI"], exc_info=ex)
        self._send(wire.request_problem(500, "internal server error", req.environ,
                                        request_id))
        return False

    def _app_request_id(self) -> str | None:
        """Return the ``X-Request-ID`` the app gave the answer not sent yet, if any."""
        if self._status is not None:
            for name, value in self._resp_headers:
                if name.lower() == "x-request-id":
                    return value
        return None
