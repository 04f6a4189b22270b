"""The /metrics page, built at scrape time from an app's plain figures.

`Collector` turns `brrt_actors.metrics.figures.Metrics` into prometheus_client metric
families (OpenMetrics, and any other use of the registry), and writes the classic text
format directly; `process_registry` builds the app's own registry, with the process,
platform and GC collectors, at the first scrape.
"""
from __future__ import annotations

from collections.abc import Iterator
from itertools import accumulate
from typing import TYPE_CHECKING

from brrt_actors.metrics.families import (
    _ACTOR_COUNTERS,
    _ACTOR_GAUGES,
    _CONNECTION_COUNTERS,
    _CONNECTION_GAUGES,
    _HELP_AUTH,
    _HELP_DURATION,
    _HELP_IN_FLIGHT,
    _HELP_RELOADS,
    _HELP_REQUESTS,
    _HELP_UNMATCHED,
    _LE,
    _REQUEST_LABELS,
    _SUM,
)

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import Metric

    from brrt_actors.metrics.figures import Metrics


def process_registry() -> CollectorRegistry:
    # PERF: prometheus_client is imported here, at the first scrape, and not at start:
    # ~22 ms of the pet store's start (benchmarks/start_time.py). The process, platform and
    # GC collectors read their figures at collect time, so building them late changes
    # nothing in the page.
    from prometheus_client import CollectorRegistry
    from prometheus_client.gc_collector import GCCollector
    from prometheus_client.platform_collector import PlatformCollector
    from prometheus_client.process_collector import ProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def _label_value(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def _header(name: str, kind: str, documentation: str) -> str:
    escaped = documentation.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {escaped}\n# TYPE {name} {kind}\n"


class Collector:
    """Builds brrt's metric families from the plain figures, at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._labels: dict[str, str] = {}  # operationId -> its label text, escaped once

    def collect(self) -> Iterator[Metric]:
        """Yield the families as prometheus_client objects (OpenMetrics and other uses)."""
        # PERF: at scrape time only (see `process_registry`).
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        metrics = self._metrics
        requests = CounterMetricFamily("brrt_requests", _HELP_REQUESTS, labels=_REQUEST_LABELS)
        duration = HistogramMetricFamily("brrt_request_duration_seconds", _HELP_DURATION,
                                         labels=_REQUEST_LABELS)
        in_flight = GaugeMetricFamily("brrt_requests_in_flight", _HELP_IN_FLIGHT,
                                      labels=("operation_id", "method"))
        for op in metrics.operations:
            in_flight.add_metric((op.operation_id, op.method), op.in_flight)
            for status, series in sorted(op.series.items()):
                labels = (op.operation_id, op.method, str(status))
                cumulative = list(accumulate(series[:_SUM]))
                requests.add_metric(labels, cumulative[-1])
                duration.add_metric(labels, list(zip(_LE, cumulative, strict=True)),
                                    series[_SUM])
        yield requests
        yield duration
        yield in_flight

        unmatched = CounterMetricFamily("brrt_unmatched_requests", _HELP_UNMATCHED,
                                        labels=("status",))
        for status, count in sorted(metrics.unmatched.items()):
            unmatched.add_metric((str(status),), count)
        yield unmatched
        if metrics.reloads is not None:
            reloads = CounterMetricFamily("brrt_reloads", _HELP_RELOADS, labels=("result",))
            for result, count in metrics.reloads.items():
                reloads.add_metric((result,), count)
            yield reloads
        auth = CounterMetricFamily("brrt_auth_failures", _HELP_AUTH, labels=("scheme", "status"))
        for (scheme, status), count in sorted(metrics.auth_failures.items()):
            auth.add_metric((scheme, str(status)), count)
        yield auth

        connections = metrics.connection_stats()
        if connections is not None:
            for key, name, documentation in _CONNECTION_GAUGES:
                yield GaugeMetricFamily(name, documentation, value=connections[key])
            for key, name, documentation in _CONNECTION_COUNTERS:
                yield CounterMetricFamily(name, documentation, value=connections[key])

        stats = [(actor.name, actor.stats()) for actor in metrics.actors]
        for key, name, documentation in _ACTOR_GAUGES:
            gauge = GaugeMetricFamily(name, documentation, labels=("operation_id",))
            for operation_id, figures in stats:
                gauge.add_metric((operation_id,), figures[key])
            yield gauge
        for key, name, documentation in _ACTOR_COUNTERS:
            counter = CounterMetricFamily(name, documentation, labels=("operation_id",))
            for operation_id, figures in stats:
                counter.add_metric((operation_id,), figures[key])
            yield counter

    def _op_labels(self, operation_id: str) -> str:
        text = self._labels.get(operation_id)
        if text is None:
            text = self._labels[operation_id] = f'operation_id="{_label_value(operation_id)}"'
        return text

    def render_text(self) -> bytes:
        """Return the families in Prometheus' text format 0.0.4, as `collect` gives them."""
        metrics = self._metrics
        counts: list[str] = [_header("brrt_requests_total", "counter", _HELP_REQUESTS)]
        buckets: list[str] = [_header("brrt_request_duration_seconds", "histogram",
                                      _HELP_DURATION)]
        in_flight: list[str] = [_header("brrt_requests_in_flight", "gauge", _HELP_IN_FLIGHT)]
        for op in metrics.operations:
            base = f'{self._op_labels(op.operation_id)},method="{_label_value(op.method)}"'
            in_flight.append(f"brrt_requests_in_flight{{{base}}} {op.in_flight}.0\n")
            for status, series in sorted(op.series.items()):
                labels = f'{base},status="{status}"'
                total = 0
                for le, count in zip(_LE, series[:_SUM], strict=True):
                    total += int(count)
                    buckets.append(
                        f'brrt_request_duration_seconds_bucket{{{labels},le="{le}"}} {total}.0\n')
                buckets.append(f"brrt_request_duration_seconds_count{{{labels}}} {total}.0\n")
                buckets.append(f"brrt_request_duration_seconds_sum{{{labels}}} "
                               f"{float(series[_SUM])!r}\n")
                counts.append(f"brrt_requests_total{{{labels}}} {total}.0\n")
        out = counts + buckets + in_flight
        out.append(_header("brrt_unmatched_requests_total", "counter", _HELP_UNMATCHED))
        out.extend(f'brrt_unmatched_requests_total{{status="{status}"}} {count}.0\n'
                   for status, count in sorted(metrics.unmatched.items()))
        if metrics.reloads is not None:
            out.append(_header("brrt_reloads_total", "counter", _HELP_RELOADS))
            out.extend(f'brrt_reloads_total{{result="{result}"}} {count}.0\n'
                       for result, count in metrics.reloads.items())
        out.append(_header("brrt_auth_failures_total", "counter", _HELP_AUTH))
        out.extend(f'brrt_auth_failures_total{{scheme="{_label_value(scheme)}",'
                   f'status="{status}"}} {count}.0\n'
                   for (scheme, status), count in sorted(metrics.auth_failures.items()))
        connections = metrics.connection_stats()
        if connections is not None:
            for key, name, documentation in _CONNECTION_GAUGES:
                out.append(_header(name, "gauge", documentation))
                out.append(f"{name} {connections[key]}.0\n")
            for key, name, documentation in _CONNECTION_COUNTERS:
                out.append(_header(f"{name}_total", "counter", documentation))
                out.append(f"{name}_total {connections[key]}.0\n")
        stats = [(self._op_labels(actor.name), actor.stats()) for actor in metrics.actors]
        for key, name, documentation in _ACTOR_GAUGES:
            out.append(_header(name, "gauge", documentation))
            out.extend(f"{name}{{{labels}}} {figures[key]}.0\n" for labels, figures in stats)
        for key, name, documentation in _ACTOR_COUNTERS:
            total_name = f"{name}_total"
            out.append(_header(total_name, "counter", documentation))
            out.extend(f"{total_name}{{{labels}}} {figures[key]}.0\n"
                       for labels, figures in stats)
        return "".join(out).encode()
