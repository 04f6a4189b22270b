"""Prometheus metrics, served at GET /metrics: requests and latency per operation, actors, auth,
the HTTP server's connections.

The request path only adds to plain Python ints and floats; prometheus_client sees them at
scrape time, through a custom collector that builds the metric families then (and, for the
classic text format, writes them directly: see `Metrics.render`). In single-process mode
prometheus_client is not even imported before the first scrape (or the first look at
``app.metrics.registry``). Each app has its own
`CollectorRegistry` (not the global one), so several apps in one process do not clash; users
may register their own collectors on ``app.metrics.registry``.

Multi-process serving (gunicorn, ``brrt serve --workers N``) shares the figures through
``PROMETHEUS_MULTIPROC_DIR``: see `brrt_actors.metrics.multiprocess`.

The connection figures come from the servers that serve the app: whoever builds one for it
(``brrt serve``, the gunicorn worker) tells the app's metrics with `Metrics.watch_connections`;
they are read at scrape time (and synced like the actors' in multi-process mode). An app
served by another WSGI server has no ``brrt_http_connections*`` families at all.

Metric names (labels):

    brrt_requests_total{operation_id, method, status}               counter
    brrt_request_duration_seconds{operation_id, method, status}     histogram
    brrt_requests_in_flight{operation_id, method}                    gauge
    brrt_unmatched_requests_total{status}                            counter (404, 405)
    brrt_auth_failures_total{scheme, status}                         counter (401, 403)
    brrt_reloads_total{result}                                       counter (--reload only)
    brrt_actor_workers / _busy_workers / _mailbox_depth / _mailbox_capacity{operation_id}
    brrt_actor_{completed, handler_errors, rejected, refused, deadline_exceeded,
                cancelled, expired, worker_restarts}_total{operation_id}
    brrt_hub_blocked_total{operation_id}                             counter (hub_monitor.py)
    brrt_http_connections / _idle / _limit                          gauge
    brrt_http_connections_evicted_total                             counter
    process_*, python_info, python_gc_* (single-process mode)
"""
from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from brrt_actors.errors import ConfigError
from brrt_actors.metrics.exposition import Collector, process_registry
from brrt_actors.metrics.families import (
    _SUM,
    BUCKETS,
)

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import Metric

    from brrt_actors.actor_system import ActorSystem

__all__ = ["BUCKETS", "MULTIPROC_ENV", "ConnectionSource", "Metrics", "OperationMetrics",
           "build_metrics"]

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"

# SECURITY: nothing in a page of metrics comes from a request: the labels are operationIds,
# HTTP methods of the spec, status codes and security scheme names, never a header, a path
# or a credential.
_PAGE_HEADERS: Final = (("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"))

# (status, headers, body), as `brrt_actors.builtins.Builtin` answers.
Answer = tuple[int, list[tuple[str, str]], bytes]

#: Returns a server's connection figures (``open``, ``idle``, ``limit``, ``evicted``), as
#: `brrt_actors.entrypoints.server.HTTPServer.connection_stats` does.
ConnectionSource = Callable[[], Mapping[str, int]]


class OperationMetrics:
    """One operation's request figures: plain ints and floats, read at scrape time.

    Attributes:
        operation_id, method: the labels.
        in_flight: requests of this operation being served now.
        series: by status, the latency bucket counts (not cumulative, +Inf last), then the
            sum of seconds.
    """

    __slots__ = ("in_flight", "method", "operation_id", "series")

    def __init__(self, operation_id: str, method: str) -> None:
        self.operation_id = operation_id
        self.method = method
        self.in_flight = 0
        self.series: dict[int, list[float]] = {}

    def observe(self, status: int, seconds: float) -> None:
        """Count one request answered with `status` after `seconds`."""
        # PERF: no lock and no prometheus_client object here: the process is single-threaded
        # (gevent: greenlets switch only where they block, and nothing here blocks), so
        # plain list items are safe. A labelled prometheus_client Counter.inc() plus
        # Histogram.observe() costs ~5 µs per request in a gevent-patched process (locks,
        # label look-ups); this ~0.2 µs (benchmarks/metrics.py, taskset -c 1, CPython 3.11).
        series = self.series.get(status)
        if series is None:
            series = self.series[status] = [0] * _SUM + [0.0]
        series[bisect_left(BUCKETS, seconds)] += 1
        series[_SUM] += seconds


class Metrics:
    """The figures of one app and its /metrics endpoint (single-process mode).

    Build it with `build_metrics`. The pipeline asks it for one `OperationMetrics` per
    operation and one auth-failure counter per secured operation, at start.

    Attributes:
        collector: the prometheus_client collector of brrt's own families (built from the
            figures at each scrape).
        registry: the app's own `CollectorRegistry`, with the process, platform and GC
            collectors; register your own collectors on it and /metrics serves them too.
        multiprocess: True when figures are shared through ``PROMETHEUS_MULTIPROC_DIR``.
    """

    multiprocess = False

    def __init__(self, actors: ActorSystem, registry: CollectorRegistry | None = None) -> None:
        self.actors = actors
        self.operations: list[OperationMetrics] = []
        self.auth_failures: dict[tuple[str, int], int] = {}
        self.unmatched: dict[int, int] = {}
        self.connection_sources: list[ConnectionSource] = []
        #: Hot reloads (``brrt serve --reload``) that swapped in a new version, and those
        #: whose new version could not be built; None until a reload watch starts.
        self.reloads: dict[str, int] | None = None
        self._by_operation: dict[tuple[str, str], OperationMetrics] = {}
        self._counters: dict[str, Any] = {}
        self.collector: Collector | None = Collector(self) if registry is None else None
        self._registry = registry

    @property
    def registry(self) -> CollectorRegistry:
        """The app's own registry (built on first use: the first scrape, or you)."""
        registry = self._registry
        if registry is None:
            registry = self._registry = process_registry()
        return registry

    def counter(self, name: str, documentation: str) -> Any:
        """Return the prometheus_client Counter `name` of these figures, made on first use.

        A hot reload reuses the app's figures, so a stage built again gets the same counter
        instead of registering the name twice.
        """
        found = self._counters.get(name)
        if found is None:
            from prometheus_client import Counter

            found = self._counters[name] = Counter(
                name, documentation, registry=None if self.multiprocess else self.registry)
        return found

    def operation(self, operation_id: str, method: str) -> OperationMetrics:
        """Return the figures of an operation (built at start; a hot reload gets the same
        figures again for an operation it keeps, so that they go on counting)."""
        figures = self._by_operation.get((operation_id, method))
        if figures is None:
            figures = self._by_operation[(operation_id, method)] = OperationMetrics(
                operation_id, method)
            self.operations.append(figures)
        return figures

    def retain(self, operations: Iterable[tuple[str, str]]) -> None:
        """Keep the figures of these (operationId, method) only: those a reload still serves."""
        kept = set(operations)
        latest = {(f.operation_id, f.method): f for f in self.operations}
        self._by_operation = {key: figures for key, figures in latest.items() if key in kept}
        self.operations = list(self._by_operation.values())

    def watch_reloads(self) -> None:
        """Count hot reloads from now on (``brrt_reloads_total{result}`` on /metrics)."""
        if self.reloads is None:
            self.reloads = {"ok": 0, "failed": 0}

    def count_reload(self, ok: bool) -> None:
        """Count one hot reload: its new version was swapped in (`ok`), or not built."""
        self.watch_reloads()
        assert self.reloads is not None
        self.reloads["ok" if ok else "failed"] += 1

    def auth_failure_counter(self, schemes: Sequence[str]) -> Callable[[int], None]:
        """Return ``failed(status)``, counting one 401/403 for each of `schemes`."""
        counts = self.auth_failures
        names = tuple(dict.fromkeys(schemes))

        def failed(status: int) -> None:
            for scheme in names:
                key = (scheme, status)
                counts[key] = counts.get(key, 0) + 1

        return failed

    def count_unmatched(self, status: int) -> None:
        """Count a request that no operation served (404 or 405)."""
        self.unmatched[status] = self.unmatched.get(status, 0) + 1

    def watch_connections(self, source: ConnectionSource) -> None:
        """Show the connection figures `source` returns on /metrics (read at each scrape).

        Args:
            source: a server's ``connection_stats``
                (`brrt_actors.entrypoints.server.HTTPServer`). The figures of several
                sources (one server per listener) add up. Until one is given, the
                ``brrt_http_connections*`` families are absent.
        """
        self.connection_sources.append(source)

    def connection_stats(self) -> dict[str, int] | None:
        """Return the watched servers' connection figures added up, or None without any."""
        if not self.connection_sources:
            return None
        total = dict.fromkeys(("open", "idle", "limit", "evicted"), 0)
        for source in self.connection_sources:
            for key, count in source().items():
                total[key] += count
        return total

    def start(self) -> None:
        """Start whatever runs in the background (nothing in single-process mode)."""

    def stop(self) -> None:
        """Stop whatever runs in the background (nothing in single-process mode)."""

    def sync(self) -> None:
        """Bring shared figures up to date (nothing to do in single-process mode)."""

    def collect(self) -> Iterator[Metric]:
        """Yield every family /metrics serves: brrt's own, then the registry's."""
        if self.collector is not None:
            yield from self.collector.collect()
        yield from self.registry.collect()

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """Return the page of metrics and its Content-Type, in the format `accept` asks for."""
        # PERF: prometheus_client loads at the first scrape, not at start (see `registry`).
        from prometheus_client.exposition import choose_encoder, generate_latest

        self.sync()
        encode, content_type = choose_encoder(accept)
        if encode is generate_latest and self.collector is not None:
            # PERF: brrt's own families in the classic text format are written directly
            # (~0.3 ms for the pet store's ~460 lines against ~3 ms through prometheus_client's
            # generate_latest); tests/test_metrics.py checks both give the same samples.
            return self.collector.render_text() + generate_latest(self.registry), content_type
        return encode(self), content_type

    def endpoint(self, environ: dict[str, Any]) -> Answer:
        """Answer GET /metrics, in the format the Accept header asks for."""
        body, content_type = self.render(environ.get("HTTP_ACCEPT") or "")
        headers = [("Content-Type", content_type), *_PAGE_HEADERS]
        if "gzip" in (environ.get("HTTP_ACCEPT_ENCODING") or ""):
            import gzip  # PERF: not at start (~0.5 ms); prometheus_client loaded it anyway

            body = gzip.compress(body, compresslevel=1)
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Vary", "Accept, Accept-Encoding"))
        headers.append(("Content-Length", str(len(body))))
        return 200, headers, body


def build_metrics(actors: ActorSystem, multiproc_dir: str | None = None) -> Metrics:
    """Return the metrics of an app whose actors are `actors`.

    Args:
        actors: read at scrape time (mailbox depth, busy workers, counters).
        multiproc_dir: the ``PROMETHEUS_MULTIPROC_DIR`` of the process, if any: figures are
            then shared through files there, and /metrics sums all processes.

    Raises:
        ConfigError: ``PROMETHEUS_MULTIPROC_DIR`` is not a folder, or was set only after
            prometheus_client was imported (it chooses its storage once, at import).
    """
    if not multiproc_dir:
        return Metrics(actors)
    if not os.path.isdir(multiproc_dir):
        raise ConfigError([(MULTIPROC_ENV, f"{multiproc_dir!r} is not a folder; create it "
                                           "(empty) before the server starts")])
    # NOTE: the first import of prometheus_client in a single-process server is at its
    # first scrape (see `process_registry`); here, it may be this one.
    from prometheus_client import values

    if not getattr(values.ValueClass, "_multiprocess", False):
        raise ConfigError([(MULTIPROC_ENV, "was set after prometheus_client was imported, so "
                                           "this process does not write to it; set it in the "
                                           "environment before the process starts")])
    from brrt_actors.metrics.multiprocess import MultiProcessMetrics

    return MultiProcessMetrics(actors, multiproc_dir)
