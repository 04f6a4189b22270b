"""What each optional feature costs per request when on: rate limit, access log, tracing.

The whole in-process pipeline of the pet store's `GET /pets/{id}` (as benchmarks/pipeline.py),
once with every feature off and once with each feature on alone, each in a process of its
own; prints the median (and min) process CPU µs per request and the difference to "off".
The cases' processes are interleaved (--repeat), so that the machine's drift touches all
of them alike.

    taskset -c 1 .venv/bin/python benchmarks/features.py [--requests 10000] [--rounds 5]
        [--redis redis://127.0.0.1:6379/0]

The access log writes to /dev/null through a real handler (the line is built and written);
OpenTelemetry exports to an OTLP/HTTP sink served in this process (the batch export runs in
the background, its cost counted); Redis is measured only with --redis.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from _wsgi import environ as _environ  # noqa: E402

from brrt_actors import create_app  # noqa: E402
from brrt_actors.entrypoints.server import HTTPServer  # noqa: E402
from brrt_actors.stages.access_log import ACCESS_LOGGER  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
#: A limit no benchmark reaches: every request is counted, none refused.
NEVER_REACHED = "100000000/hour"


def _sink(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Length", "0")])
    return [b""]


def _cases(redis: str | None, otlp: str) -> dict[str, dict[str, str]]:
    cases = {
        "off": {},
        "rate limit (memory)": {"BRRTR_RATE_LIMIT": NEVER_REACHED},
        "access log": {"BRRTR_ACCESS_LOG": "1"},
        "access log, sample 0.01": {"BRRTR_ACCESS_LOG": "1", "BRRTR_ACCESS_LOG_SAMPLE": "0.01"},
        "tracing (W3C)": {"BRRTR_TRACING": "1"},
        "tracing (OpenTelemetry)": {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp},
    }
    if redis:
        cases["rate limit (Redis)"] = {"BRRTR_RATE_LIMIT": NEVER_REACHED,
                                       "BRRTR_RATE_LIMIT_STORAGE": redis}
    return cases


def _cpu_per_request(call: Callable[[], None], count: int) -> float:
    cpu = time.process_time()
    for _ in range(count):
        call()
    return (time.process_time() - cpu) / count * 1e6


def _measure(name: str, requests: int, rounds: int, redis: str | None) -> list[float]:
    """Serve `name`'s case in this process; return the CPU µs per request of each round."""
    access = logging.getLogger(ACCESS_LOGGER)
    access.addHandler(logging.StreamHandler(open(os.devnull, "w")))  # noqa: SIM115
    access.propagate = False
    access.setLevel(logging.INFO)  # as `brrt serve` sets it: the lines are built and written
    sink = HTTPServer(_sink, host="127.0.0.1", port=0)
    sink.start()
    env = _cases(redis, f"http://127.0.0.1:{sink.address[1]}")[name]
    app = create_app(ROOT / "specs" / "petstore.yaml", str(ROOT / "handlers"), environ=env,
                     config_file=ROOT / "specs" / "petstore.config.yaml")
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        statuses.append(status)

    def call() -> None:
        b"".join(app(_environ("GET", "/pets/1"), start_response))

    call()
    assert statuses[0][:1] == "2", f"{name} answered {statuses[0]}"
    cpus = [_cpu_per_request(call, requests) for _ in range(rounds)]
    app.stop(1)
    sink.stop(grace_s=0)
    return cpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=2,
                        help="times each case's process runs, interleaved with the others")
    parser.add_argument("--redis", help="a Redis URL: also measure the Redis storage")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # one case, in this process
    args = parser.parse_args()
    if args.case:
        print(" ".join(f"{cpu:.2f}" for cpu in _measure(args.case, args.requests, args.rounds,
                                                          args.redis)))
        return
    # NOTE: one process per case: background work (OpenTelemetry's batch export, the memory
    # storage's expiry sweep) is counted where it belongs, not in the next case.
    results: dict[str, list[float]] = {name: [] for name in _cases(args.redis, "")}
    for _ in range(args.repeat):
        for name in results:
            out = subprocess.run(
                [sys.executable, __file__, "--case", name, "--requests", str(args.requests),
                 "--rounds", str(args.rounds), *(["--redis", args.redis] if args.redis else [])],
                capture_output=True, text=True, check=True)
            results[name] += [float(cpu) for cpu in out.stdout.split()]
    base = statistics.median(results["off"])
    for name, cpus in results.items():
        median = statistics.median(cpus)
        print(f"{name:26} cpu median {median:6.1f} µs (min {min(cpus):6.1f})"
              f"  {median - base:+6.1f} µs")


if __name__ == "__main__":
    main()
