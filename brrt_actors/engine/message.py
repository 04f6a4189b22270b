"""Request bodies of the HTTP/1.1 engine: the parsed message and its ``wsgi.input``.

The body is never read ahead: `Input` asks the connection (`BodySource.fill`) for more
when the app wants bytes that have not arrived, so an app that answers without reading
costs no reading at all.
"""
from __future__ import annotations

from typing import Any, Protocol

__all__ = ["NO_BODY", "BodyReadError", "BodySource", "Input", "Message"]


class BodyReadError(OSError):
    """The request body cannot be read: malformed, too large, stalled, or the client left.

    The engine answers such a request itself (whatever the app answers instead); `status` is
    that answer's status (400, 408, 413), so the app counts and logs it as the client's fault.
    """

    def __init__(self, detail: str, status: int = 400) -> None:
        super().__init__(detail)
        self.status = status


class BodySource(Protocol):
    """Where an `Input` gets more of its body from (the connection)."""

    def fill(self, message: Message) -> None:
        """Read more of `message`'s body, or raise `BodyReadError`."""


class Message:
    """One parsed request: its environ and the state of its body."""

    __slots__ = ("buf", "buffered", "chunks", "complete", "detail", "environ", "error",
                 "expect", "head", "http10", "keep_alive", "pos", "received")

    def __init__(self, environ: dict[str, Any], keep_alive: bool, head: bool,
                 http10: bool) -> None:
        self.environ = environ
        self.keep_alive = keep_alive
        self.head = head
        self.http10 = http10
        self.complete = False
        self.error = 0  # an engine answer replacing the app's (400, 408, 413), 0 = none
        self.detail = ""
        # PERF: the body's state is set by `open_body`, only for a request that has one
        # (5 fewer writes per request without a body: ~0.1 us).

    def open_body(self, expect: bool) -> None:
        """Set up the state of a body to come (the parser calls it before any of it).

        `expect` is True when the client waits for ``100 Continue`` before sending it.
        """
        self.expect = expect
        # The unread body: buf[pos:] then chunks (what the parser gave since); buffered
        # counts both.
        self.buf = b""
        self.pos = 0
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.received = 0

    def flatten(self) -> bytes:
        """Return `buf` after moving the chunks into it (the unread part starts at `pos`)."""
        chunks = self.chunks
        if chunks:
            if self.pos < len(self.buf):
                chunks.insert(0, self.buf[self.pos:])
            self.buf = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            self.pos = 0
            chunks.clear()
        return self.buf

    def take(self, size: int) -> bytes:
        """Return up to `size` unread bytes (no copy when that is all of them)."""
        buf = self.flatten()
        start = self.pos
        end = min(start + size, len(buf))
        self.pos = end
        self.buffered -= end - start
        return buf if start == 0 and end == len(buf) else buf[start:end]


class _NoBody:
    """``wsgi.input`` of a request without a body (shared: it has no state)."""

    __slots__ = ()

    def read(self, size: int | None = -1) -> bytes:
        return b""

    def readline(self, size: int | None = -1) -> bytes:
        return b""

    def readlines(self, hint: int = -1) -> list[bytes]:
        return []

    def __iter__(self) -> _NoBody:
        return self

    def __next__(self) -> bytes:
        raise StopIteration


#: ``wsgi.input`` of every request without a body.
NO_BODY = _NoBody()


class Input:
    """``wsgi.input``: reads the request body from the connection as the app asks for it."""

    __slots__ = ("_conn", "_req")

    def __init__(self, conn: BodySource, req: Message) -> None:
        self._conn = conn
        self._req = req

    def read(self, size: int | None = -1) -> bytes:
        req = self._req
        if size is None or size < 0:
            while not req.complete:
                self._conn.fill(req)
            return req.take(req.buffered)
        while req.buffered < size and not req.complete:
            self._conn.fill(req)
        return req.take(size)

    def readline(self, size: int | None = -1) -> bytes:
        req = self._req
        limit = -1 if size is None or size < 0 else size
        while True:
            buf = req.flatten()
            stop = len(buf) if limit < 0 else min(len(buf), req.pos + limit)
            end = buf.find(b"\n", req.pos, stop) + 1
            if end:
                return req.take(end - req.pos)
            if req.complete or 0 <= limit <= req.buffered:
                return req.take(req.buffered if limit < 0 else limit)
            self._conn.fill(req)

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines, total = [], 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Input:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line
