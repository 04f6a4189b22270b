"""The answering side of a client connection: the WSGI app's call, ``start_response``, the
status line and headers, the body's framing, streaming, and the answers that replace a
failed app's.

An answer whose body is in hand goes out in one send with its head; a streamed one is framed
as it comes (chunked, or cut at the app's Content-Length). The engine owns the hop-by-hop
headers: it frames the body and says whether the connection stays open.

A streamed body finds in its request's environ, under `KEEP_STREAMING`, a ``() -> bool`` it
may call between pieces (server-sent events do, at each heartbeat): False once the client
closed or reset the connection, or the server is stopping.
"""
from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from gevent import monkey

from brrt_actors.engine import wire
from brrt_actors.engine.connection_base import ClientGone, ConnectionBase
from brrt_actors.engine.message import BodyReadError, Message

__all__ = ["KEEP_STREAMING", "Answering"]

#: The environ key of a streamed answer's ``() -> bool`` (see the module's docstring).
KEEP_STREAMING = "brrt.keep_streaming"
# NOTE: the real select: a zero-timeout look, never a wait.
_select = monkey.get_original("select", "select")

_log = logging.getLogger("brrt_actors.server")

# PERF: head and body go out in one send up to this size (at the cost of copying the body);
# above it, in two sends.
_COALESCE_MAX = 65536
_NO_BODY_STATUS = frozenset({204, 304})
_STATUS = wire._STATUS
_KINDS = wire._KINDS
_LENGTH, _DATE, _SERVER, _CONNECTION = wire.LENGTH, wire.DATE, wire.SERVER_HEADER, wire.CONNECTION
_DATED, _DATE_ONLY, _UNDATED = wire.DATED, wire.DATE_ONLY, wire.UNDATED
_KEPT, _KEPT_HTTP10, _CLOSED = wire.KEPT, wire.KEPT_HTTP10, wire.CLOSED
_ExcInfo = (tuple[type[BaseException], BaseException, TracebackType]
            | tuple[None, None, None])


class Answering(ConnectionBase):
    """The answering side of `Connection` (a mixin: it has no state of its own)."""

    __slots__ = ()

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
        if req.error:  # NOTE: the engine answers instead of the app
            raise BodyReadError(req.detail, req.error)
        line, code = _STATUS.get(self._status) or wire.status_line(self._status)
        # NOTE: while stopping, the requests already read (pipelined) are answered too; the
        # last one says the connection ends.
        keep = req.keep_alive and (not self.server.draining or bool(self._queue))
        given = -1
        dated = _DATED
        lines = []
        kinds = _KINDS
        for name, value in self._resp_headers:
            kind = kinds.get(name)
            if kind is None:
                kind = wire.header_kind(name)
            if kind:
                if kind == _LENGTH:
                    given = int(value)
                elif kind == _DATE:
                    dated = _UNDATED
                elif kind == _SERVER:
                    if dated == _DATED:
                        dated = _DATE_ONLY
                else:
                    # NOTE: hop-by-hop headers are the engine's: it frames the body and
                    # says whether the connection stays open.
                    if kind == _CONNECTION and "close" in value.lower():
                        keep = False
                    continue
            header = f"{name}: {value}"
            # SECURITY: no CR nor LF inside a header line: no response splitting.
            # PERF: two `in` per line (~60 ns) instead of counting both over the block.
            if "\n" in header or "\r" in header:
                raise ValueError("a response header holds a line break")
            lines.append(header)
        self._no_body = no_body = req.head or code in _NO_BODY_STATUS or code < 200
        self._chunked = False
        self._left = given
        if no_body:
            body = b""
            if given < 0 and length > 0 and req.head and code >= 200:
                lines.append(f"Content-Length: {length}")
        elif given >= 0:
            if length >= 0 and given != length:
                keep = False  # NOTE: the app's length is wrong: never reuse this connection
        elif length >= 0:
            lines.append(f"Content-Length: {length}")
        elif req.http10:
            keep = False  # NOTE: no chunked coding in HTTP/1.0: the close ends the body
        else:
            self._chunked = True
            lines.append("Transfer-Encoding: chunked")
        if not req.complete:
            keep = False  # NOTE: the unread rest of the body would be taken for a request
        self._keep = keep
        self._sent = True
        if lines:
            lines.append("")  # NOTE: the last line's CRLF
        said = (_KEPT_HTTP10 if req.http10 else _KEPT) if keep else _CLOSED
        return b"".join((line, "\r\n".join(lines).encode("latin-1"),
                         wire.head_ends()[said + dated], body))

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
            self._send(wire.request_problem(req.error, req.detail, req.environ,
                                            cors=wire.cors_hook(self.server.application)))
            return False
        self._req = req
        self._status = None
        self._sent = False
        direct = self.server.direct
        result: Any  # NOTE: any iterable of bytes; a list or tuple is the fast case
        try:
            if direct is not None:
                # PERF: a brrt app answers with its status code and headers in hand: no
                # start_response, no status string to build and parse back.
                self._status, self._resp_headers, result = direct(req.environ)
            else:
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
        self._resp_headers = ()  # NOTE: not kept alive while the connection idles
        return self._keep and req.complete

    def _stream(self, result: Iterable[bytes]) -> None:
        assert self._req is not None
        # NOTE: set here, not per request: only streamed bodies (lazy, read below) ask.
        self._req.environ[KEEP_STREAMING] = self._keep_streaming
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

    def _keep_streaming(self) -> bool:
        """Tell a streamed body to go on: False once the client left or the server stops."""
        if self.server.draining:
            return False
        sock = self.sock
        try:
            if not _select([sock], [], [], 0)[0]:
                return True  # nothing came: the client is there, or its reset is on the way
            # NOTE: a peek leaves a pipelined request for the parser; b"" is the client's FIN.
            return bool(sock.recv(1, socket.MSG_PEEK))
        except (OSError, ValueError):  # NOTE: reset, or the socket already closed
            return False

    def _failed_app(self, req: Message, ex: Exception) -> bool:
        if isinstance(ex, ClientGone):
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
        cors = wire.cors_hook(self.server.application)
        if req.error:
            self._send(wire.request_problem(req.error, req.detail, req.environ, request_id,
                                            cors=cors))
            return False
        _log.error("unhandled error in the WSGI app on %s %s",
                   req.environ["REQUEST_METHOD"], req.environ["RAW_URI"], exc_info=ex)
        self._send(wire.request_problem(500, "internal server error", req.environ,
                                        request_id, cors=cors))
        return False

    def _app_request_id(self) -> str | None:
        """Return the ``X-Request-ID`` the app gave the answer not sent yet, if any."""
        if self._status is not None:
            for name, value in self._resp_headers:
                if name.lower() == "x-request-id":
                    return value
        return None
