"""Metrics shared by the processes of one server (gunicorn, ``brrt serve --workers N``).

When ``PROMETHEUS_MULTIPROC_DIR`` is set in the environment *before the process starts*,
prometheus_client writes every value to per-process mmap files in that folder, and /metrics
sums the files of all processes. The request figures are then written through
prometheus_client's metric objects per request (a lock and an mmap write each: a few µs more
per request); the actors' and the connections' figures are copied into them every
`SYNC_INTERVAL_S` and before each scrape. `brrt_actors.metrics.figures.build_metrics` chooses this
mode; the families and their names are those of `brrt_actors.metrics.figures`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

import gevent

from brrt_actors.metrics.families import (
    _ACTOR_COUNTERS,
    _ACTOR_GAUGES,
    _CONNECTION_COUNTERS,
    _CONNECTION_GAUGES,
    _HELP_AUTH,
    _HELP_DURATION,
    _HELP_IN_FLIGHT,
    _HELP_REQUESTS,
    _HELP_UNMATCHED,
    _REQUEST_LABELS,
    BUCKETS,
)
from brrt_actors.metrics.figures import ConnectionSource, Metrics, OperationMetrics

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge

    from brrt_actors.actor_system import ActorSystem
    from brrt_actors.actors import Actor

__all__ = ["SYNC_INTERVAL_S", "MultiProcessMetrics"]

# How often the actors' and the connections' figures are copied into the shared files.
SYNC_INTERVAL_S: Final = 1.0


class _SharedOperationMetrics(OperationMetrics):
    """Multi-process mode: each request is written to prometheus_client's mmap files too."""

    __slots__ = ("_children", "_shared")

    def __init__(self, operation_id: str, method: str, shared: _Shared) -> None:
        super().__init__(operation_id, method)
        self._shared = shared
        self._children: dict[int, tuple[Any, Any]] = {}

    def observe(self, status: int, seconds: float) -> None:
        children = self._children.get(status)
        if children is None:
            labels = (self.operation_id, self.method, str(status))
            children = self._children[status] = (self._shared.requests.labels(*labels),
                                                 self._shared.duration.labels(*labels))
        children[0].inc()
        children[1].observe(seconds)


class _Shared:
    """prometheus_client's metric objects backed by the multi-process files (one set per
    process: two value objects of one series in one process would overwrite each other)."""

    def __init__(self) -> None:
        # NOTE: multi-process mode needs prometheus_client from the start (per request).
        from prometheus_client import Histogram

        self.requests = _counter("brrt_requests", _HELP_REQUESTS, _REQUEST_LABELS)
        self.duration = Histogram("brrt_request_duration_seconds", _HELP_DURATION,
                                  _REQUEST_LABELS, registry=None, buckets=BUCKETS)
        self.in_flight = _live_gauge("brrt_requests_in_flight", _HELP_IN_FLIGHT,
                                     ("operation_id", "method"))
        self.unmatched = _counter("brrt_unmatched_requests", _HELP_UNMATCHED, ("status",))
        self.auth = _counter("brrt_auth_failures", _HELP_AUTH, ("scheme", "status"))
        self.actor_gauges = {key: _live_gauge(name, documentation, ("operation_id",))
                             for key, name, documentation in _ACTOR_GAUGES}
        self.actor_counters = {key: _counter(name, documentation, ("operation_id",))
                               for key, name, documentation in _ACTOR_COUNTERS}
        self._connections: tuple[dict[str, Gauge], dict[str, Counter]] | None = None

    def connections(self) -> tuple[dict[str, Gauge], dict[str, Counter]]:
        """The connection gauges and counters (built at the first call)."""
        # NOTE: built only in a process that serves: a metric without labels writes its
        # series to the files as soon as it exists, and an app under another WSGI server
        # shows no connection families.
        if self._connections is None:
            self._connections = (
                {key: _live_gauge(name, documentation, ())
                 for key, name, documentation in _CONNECTION_GAUGES},
                {key: _counter(name, documentation, ())
                 for key, name, documentation in _CONNECTION_COUNTERS})
        return self._connections


def _counter(name: str, documentation: str, labels: Iterable[str]) -> Counter:
    from prometheus_client import Counter

    return Counter(name, documentation, labels, registry=None)


def _live_gauge(name: str, documentation: str, labels: Iterable[str]) -> Gauge:
    # NOTE: "livesum": summed over the living processes only (gunicorn's child_exit hook
    # marks a dead worker's files dead).
    from prometheus_client import Gauge

    return Gauge(name, documentation, labels, registry=None, multiprocess_mode="livesum")


_SHARED: list[_Shared] = []


def _shared() -> _Shared:
    if not _SHARED:
        _SHARED.append(_Shared())
    return _SHARED[0]


class MultiProcessMetrics(Metrics):
    """Figures written to ``PROMETHEUS_MULTIPROC_DIR``; /metrics sums every process's files."""

    multiprocess = True

    def __init__(self, actors: ActorSystem, path: str) -> None:
        # NOTE: imported here like everywhere in this module (see `process_registry`).
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        # NOTE: no process collectors here: prometheus_client does not merge them across
        # processes (its multi-process documentation says so).
        registry = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
        super().__init__(actors, registry)
        self.path = path
        self._shared = _shared()
        self._synced: dict[tuple[str, str], int] = {}
        self._synced_connections: dict[str, int] = {}
        self._syncer: gevent.Greenlet[[], None] | None = None

    def operation(self, operation_id: str, method: str) -> OperationMetrics:
        figures = _SharedOperationMetrics(operation_id, method, self._shared)
        self.operations.append(figures)
        return figures

    def auth_failure_counter(self, schemes: Sequence[str]) -> Callable[[int], None]:
        auth = self._shared.auth
        names = tuple(dict.fromkeys(schemes))

        def failed(status: int) -> None:
            for scheme in names:
                auth.labels(scheme, str(status)).inc()

        return failed

    def count_unmatched(self, status: int) -> None:
        self._shared.unmatched.labels(str(status)).inc()

    def watch_connections(self, source: ConnectionSource) -> None:
        super().watch_connections(source)
        self._sync_connections()  # NOTE: counted from now, not from the next sync

    def start(self) -> None:
        self.sync()
        self._syncer = gevent.spawn(self._sync_forever)
        self._syncer.name = "metrics-sync"

    def stop(self) -> None:
        if self._syncer is not None:
            self._syncer.kill(block=False)
            self._syncer = None
        self.sync()
        # This process no longer serves: its live gauges must not count any more.
        shared = self._shared
        for op in self.operations:
            shared.in_flight.labels(op.operation_id, op.method).set(0)
        for actor in self.actors:
            for gauge in shared.actor_gauges.values():
                gauge.labels(actor.name).set(0)
        if self.connection_sources:
            for gauge in shared.connections()[0].values():
                gauge.set(0)

    def _sync_forever(self) -> None:
        while True:
            gevent.sleep(SYNC_INTERVAL_S)
            self.sync()

    def sync(self) -> None:
        """Copy the in-flight gauges, the actors' and the connections' figures to the files."""
        shared = self._shared
        for op in self.operations:
            shared.in_flight.labels(op.operation_id, op.method).set(op.in_flight)
        for actor in self.actors:
            self._sync_actor(actor)
        self._sync_connections()

    def _sync_actor(self, actor: Actor) -> None:
        shared = self._shared
        figures = actor.stats()
        for key, gauge in shared.actor_gauges.items():
            gauge.labels(actor.name).set(figures[key])
        for key, counter in shared.actor_counters.items():
            mark = (actor.name, key)
            delta = figures[key] - self._synced.get(mark, 0)
            if delta > 0:
                counter.labels(actor.name).inc(delta)
                self._synced[mark] = figures[key]

    def _sync_connections(self) -> None:
        figures = self.connection_stats()
        if figures is None:
            return
        gauges, counters = self._shared.connections()
        for key, gauge in gauges.items():
            gauge.set(figures[key])
        for key, counter in counters.items():
            delta = figures[key] - self._synced_connections.get(key, 0)
            if delta > 0:
                counter.inc(delta)
                self._synced_connections[key] = figures[key]
