"""The HTTP engines: what turns sockets into WSGI calls.

Two engines serve the same WSGI app behind `brrt_actors.entrypoints.server.HTTPServer`:

- ``httptools`` (default, `HttptoolsServer`): gevent's StreamServer and httptools' C parser
  (llhttp), with its own keep-alive, pipelining, limits (413/414/431), header-read and stall
  timeouts, and answers coalesced into one write.
- ``pywsgi`` (`PywsgiServer`): gevent.pywsgi, pure-Python parsing; ``BRRTR_HTTP_ENGINE=pywsgi``.

Both are gevent StreamServers spawning from the pool they are given, whose size bounds their
connections, and both keep a set of live connections whose ``idle`` flag tells a stop which
ones may be closed at once (`Engine.close_idle`, run in the hub, where no connection can be
half-way into a request). pywsgi's holds a greenlet per connection; the httptools engine's
idle connections hold none (they are parked on a read watcher).
Both raise the soft open files limit to fit the pool at start (`fdlimit`). When the pool is full,
the httptools engine closes the longest-idle keep-alive connection to make room for a new
one; pywsgi's makes the new one wait for a free slot.
"""
from __future__ import annotations

from collections.abc import Collection
from typing import Any, Protocol

__all__ = ["ENGINES", "Engine", "LiveConnection"]

#: The engine names HTTPServer accepts; the first is the default.
ENGINES = ("httptools", "pywsgi")


class LiveConnection(Protocol):
    """A connection being served, as a stop sees it."""

    @property
    def idle(self) -> bool:
        """True while waiting for the next request (nothing in flight)."""
    @property
    def greenlet(self) -> Any:
        """The greenlet serving it."""


class Engine(Protocol):
    """What `HTTPServer` needs of an engine."""

    draining: bool

    @property
    def connections(self) -> Collection[LiveConnection]:
        """The connections being served."""
    @property
    def started(self) -> bool:
        """True while accepting."""
    @property
    def address(self) -> Any:
        """The bound address."""

    def connection_stats(self) -> dict[str, int]:
        """Return ``open``, ``idle``, ``limit`` and ``evicted`` connections, read now."""
    def start(self) -> None:
        """Bind if needed and start accepting."""
    def do_read(self) -> Any:
        """Accept one connection waiting in the listen backlog: its (socket, address), or None."""
    def do_handle(self, *accepted: Any) -> None:
        """Serve a connection `do_read` accepted, from the pool."""
    def has_room(self) -> bool:
        """Whether another connection fits under the bound."""
    def close(self) -> None:
        """Stop accepting and close the listener."""
    def close_idle(self) -> None:
        """Close the connections waiting for their next request (call it in the hub)."""
