"""The parsing side of a client connection: httptools' callbacks, feeding the parser,
reading a request body.

The callbacks fill each request's environ as its head comes (a copy of the connection's
base environ) and check the head as it comes: its limits (414, 431, 413 by
Content-Length), its version (505, HTTP/2's preface too), its ``Host`` (400 when an
HTTP/1.1 request has none, or any request more than one: RFC 9112 section 3.2) and its
method (501 unless one of RFC 9110's, PATCH or QUERY). A refusal raised inside a callback
stops the parser (`_Reject`), and `_fail` turns it into the connection's last answer. A parsed
request joins the connection's queue; its body is read only when the app's ``wsgi.input``
asks for it (`fill`).
"""
from __future__ import annotations

import re
import time

import httptools

from brrt_actors.engine import wire
from brrt_actors.engine.connection_base import RECV_SIZE, ConnectionBase, Expired
from brrt_actors.engine.message import NO_BODY, BodyReadError, Input, Message
from brrt_actors.problem import body_too_large

__all__ = ["RequestParsing"]

_KEYS = wire._KEYS
#: The methods served: RFC 9110's, PATCH (RFC 5789) and QUERY (the IETF's safe method with a
#: body, which llhttp parses); any other gets 501. A known method the route does not declare
#: gets the app's 405 with Allow.
_METHODS = {m.encode(): m for m in
            ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
             "QUERY")}
_UNKNOWN_METHOD = f"the method is not served here; use one of {', '.join(_METHODS.values())}"
_PROTOCOLS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0"}
_VERSIONS = "only HTTP/1.0 and HTTP/1.1 are served"
# A request line (a method token, a target, HTTP): llhttp stops at an unknown method before
# the line ends, so the refused message is found by its method among those in the data.
_REQUEST_LINE = re.compile(rb"(?:\A|\n)([!#$%&'*+.^_`|~0-9A-Za-z-]+) [^ \r\n]+ HTTP/")


class _Reject(Exception):
    """Raised inside a parser callback: stop parsing, answer `status`, close."""


class RequestParsing(ConnectionBase):
    """The parsing side of `Connection` (a mixin: it has no state of its own).

    The ``on_*`` methods are httptools' parser callbacks.
    """

    __slots__ = ()

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
            if key == "HTTP_HOST":  # NOTE: RFC 9112 section 3.2, in any version
                self._reject = (400, "more than one Host header")
                raise _Reject
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
        keep_alive = parser.should_keep_alive()
        if (keep_alive and "HTTP_CONNECTION" not in environ
                and "HTTP_PROXY_CONNECTION" not in environ):
            # PERF: llhttp keeps an HTTP/1.0 (or 0.9, 2.0) connection alive only when a
            # Connection or Proxy-Connection field asks for it: without one, this is HTTP/1.1
            # (get_http_version: -0.3 us per request, in process; test_engine_fast_paths.py).
            protocol = "HTTP/1.1"
        else:
            version = parser.get_http_version()
            known = _PROTOCOLS.get(version)
            if known is None:
                self._reject = ((505, _VERSIONS)
                                if version[:1] > "1" else (400, "malformed request line"))
                raise _Reject
            protocol = known
        length = environ.get("CONTENT_LENGTH")
        if length is not None and int(length) > server.max_body_bytes:
            # SECURITY: refused before a single body byte is read.
            self._reject = (413, body_too_large(server.max_body_bytes))
            raise _Reject
        if "HTTP_HOST" not in environ and protocol == "HTTP/1.1":  # RFC 9112 section 3.2
            self._reject = (400, "an HTTP/1.1 request needs a Host header")
            raise _Reject
        raw_method = parser.get_method()
        method = _METHODS.get(raw_method)
        if method is None:
            self._reject = (501, _UNKNOWN_METHOD)
            raise _Reject
        self._environ = None  # NOTE: what comes after the head (trailers) is dropped
        raw = self._url.decode("latin-1")
        path, _, query = raw.partition("?")
        environ["REQUEST_METHOD"] = method
        environ["SERVER_PROTOCOL"] = protocol
        environ["RAW_URI"] = raw
        environ["PATH_INFO"] = wire.path_info(path) if "%" in path else path
        environ["QUERY_STRING"] = query
        # NOTE: an upgrade (or CONNECT) is answered as a plain request, then the connection
        # ends: what follows it on the wire is another protocol.
        req = Message(environ, keep_alive and not parser.should_upgrade(), method == "HEAD",
                      protocol == "HTTP/1.0")
        if (length is not None and length != "0") or "HTTP_TRANSFER_ENCODING" in environ:
            environ["wsgi.input"] = Input(self, req)
            expect = environ.get("HTTP_EXPECT")
            req.open_body(expect is not None and expect.lower() == "100-continue"
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
        except httptools.HttpParserInvalidMethodError as ex:
            if any(line[1] not in _METHODS for line in _REQUEST_LINE.finditer(data)):
                self._fail(501, _UNKNOWN_METHOD)
            else:
                self._fail(400, f"malformed request: {ex}")
            return
        except httptools.HttpParserError as ex:
            parser = self._parser
            # NOTE: llhttp stops at HTTP/2's prior-knowledge preface ("PRI * HTTP/2.0"), and
            # at versions it does not know (HTTP/3.0); it passes HTTP/2.0 (505 when the head
            # is complete).
            if parser.get_method() == b"PRI" or parser.get_http_version()[:1] > "1":
                self._fail(505, _VERSIONS)
            else:
                self._fail(400, f"malformed request: {ex}")
            return
        if self._in_message:
            # SECURITY: httptools buffers a header line (and trailers) until it ends; these
            # bound what a client can make it hold. The count includes whatever preceded
            # the message in its first packet, hence the extra packet's worth.
            server = self.server
            fed = self._msg_fed = self._msg_fed + len(data)
            if self._in_head:
                if fed > server.max_header_bytes + RECV_SIZE:
                    self._fail(431, f"the request head is larger than "
                                    f"{server.max_header_bytes} bytes")
                elif not self._head_deadline:
                    self._head_deadline = time.monotonic() + server.header_timeout_s
            elif fed > 2 * server.max_body_bytes + server.max_header_bytes + 2 * RECV_SIZE:
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
        return wire.request_problem(status, detail, environ,
                                    cors=wire.cors_hook(self.server.application))

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
                    data = self.sock.recv(RECV_SIZE)
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
            raise BodyReadError(req.detail, req.error)
