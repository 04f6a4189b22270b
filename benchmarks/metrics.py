"""What metrics cost per request: the pet store's whole pipeline with metrics on and off.

Two apps in one process, identical but for ``BRRTR_METRICS``, called in interleaved rounds
(so that machine noise hits both alike) as a WSGI server calls them; prints the median µs
per request of each and the difference, per case. Also times `OperationMetrics.observe`
alone, and the labelled prometheus_client calls it replaces.

    taskset -c 1 .venv/bin/python benchmarks/metrics.py [--requests 20000] [--rounds 9]

(Plain timing loop, like benchmarks/pipeline.py: pyperf's workers do not mix with gevent.)
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from _wsgi import environ as _environ  # noqa: E402
from prometheus_client import CollectorRegistry, Counter, Histogram  # noqa: E402

from brrt_actors import create_app  # noqa: E402
from brrt_actors.metrics.figures import BUCKETS, OperationMetrics  # noqa: E402
from brrt_actors.stages import _measured  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _round(call: Callable[[], None], count: int) -> float:
    start = time.process_time()
    for _ in range(count):
        call()
    return (time.process_time() - start) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--aa", action="store_true",
                        help="both apps with metrics off: shows the noise floor")
    args = parser.parse_args()
    config = ROOT / "specs" / "petstore.config.yaml"
    apps = {switch: create_app(ROOT / "specs" / "petstore.yaml", str(ROOT / "handlers"),
                               environ={"BRRTR_METRICS": "off" if args.aa else switch},
                               config_file=config)
            for switch in ("off", "on")}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        assert status[:1] == "2", status

    def request(app: Any, method: str, path: str, query: str = "",
                body: bytes = b"") -> Callable[[], None]:
        def call() -> None:
            b"".join(app(_environ(method, path, query, body), start_response))
        return call

    cases = {
        "GET /pets/{id}": ("GET", "/pets/1", "", b""),
        "GET /pets?limit=10": ("GET", "/pets", "limit=10", b""),
        "POST /pets": ("POST", "/pets", "", b'{"name": "Rex", "breed": "Poodle"}'),
    }
    print(f"cpu µs per request, median of {args.rounds} interleaved rounds of "
          f"{args.requests}")
    for name, (method, path, query, body) in cases.items():
        calls = {switch: request(app, method, path, query, body) for switch, app in apps.items()}
        times: dict[str, list[float]] = {"off": [], "on": []}
        for call in calls.values():
            call()
        for index in range(args.rounds):
            order = ("off", "on") if index % 2 == 0 else ("on", "off")
            for switch in order:
                times[switch].append(_round(calls[switch], args.requests))
        off, on = statistics.median(times["off"]), statistics.median(times["on"])
        diffs = [b - a for a, b in zip(times["off"], times["on"], strict=True)]
        print(f"{name:22} off {off:6.2f} (min {min(times['off']):6.2f})  on {on:6.2f} "
              f"(min {min(times['on']):6.2f})  on-off: medians {on - off:+5.2f}, "
              f"paired {statistics.median(diffs):+5.2f}")

    # The added work alone, around a no-op stage: deterministic, unlike the difference of
    # two whole-pipeline timings on a noisy machine.
    figures = OperationMetrics("get_pet", "GET")
    answer: Any = (200, [], ())

    def bare(environ: Any, raw_params: Any, request_id: str) -> Any:
        return answer

    measured = _measured(bare, figures)
    registry = CollectorRegistry()
    labels = ("operation_id", "method", "status")
    counter = Counter("bench_requests", "-", labels, registry=registry)
    histogram = Histogram("bench_seconds", "-", labels, registry=registry, buckets=BUCKETS)

    def prometheus_client_way() -> None:
        counter.labels("get_pet", "GET", "200").inc()
        histogram.labels("get_pet", "GET", "200").observe(0.0012)

    count = args.requests * 10
    timed: tuple[tuple[str, Callable[[], object]], ...] = (
        ("observe(status, seconds)", lambda: figures.observe(200, 0.0012)),
        ("prometheus_client labels()", prometheus_client_way),
        ("no-op stage, bare", lambda: bare({}, {}, "")),
        ("no-op stage, measured", lambda: measured({}, {}, "")))
    for label, timed_call in timed:
        runs = []
        for _ in range(args.rounds):
            start = time.process_time()
            for _ in range(count):
                timed_call()
            runs.append((time.process_time() - start) / count * 1e6)
        print(f"{label:28} {statistics.median(runs):.3f} µs (min {min(runs):.3f})")
    for app in apps.values():
        app.stop(1)


if __name__ == "__main__":
    main()
