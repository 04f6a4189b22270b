"""Overload: 10x the capacity for 30 s, then half of it; what is shed, admitted, recovered.

    .venv/bin/python benchmarks/overload.py                  # 10x for 30 s
    .venv/bin/python benchmarks/overload.py --factor 5 --seconds 10

The service is ``benchmarks/overload.yaml``: one operation whose handler waits 10 ms (as for
a database), served by ``brrt serve`` with the default actor settings (workers, mailbox,
backpressure), pinned to CPU 0. Its capacity is workers / 10 ms (the workers from its
/metrics). An open-loop client in this process (gevent, keep-alive connections, CPU 1)
sends at a fixed rate whatever the answers: 5 s at half the capacity (the baseline), 30 s at
``--factor`` x the capacity, then 5 s at half again. Latency counts from the moment a request
was due, so waiting for a connection counts too.

Checks (the exit code says whether all held): every answer is 200 or 503; every 503 has
Retry-After; the admitted requests' p99 during the overload stays under what the mailbox
allows (mailbox / workers x 10 ms, x1.5, +100 ms); the server's RSS grows by less than
``--rss-bound-mib``; after the load drops, the answers are all 200 again and as fast as the
baseline within a second. Figures go to ``<reports>/overload.json``.
"""
from __future__ import annotations

import sys

if __name__ == "__main__":
    # NOTE: this script's entry point: the client is gevent; patched before anything else.
    from brrt_actors.entrypoints.patching import patch_all

    patch_all()

import argparse
import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import gevent
from _servers import HOST, can_pin, free_port, pinned, stop, wait_healthy
from gevent.pool import Pool
from geventhttpclient import HTTPClient
from loadtest import _rss_kib

ROOT = Path(__file__).resolve().parent.parent
WORK_S = 0.010  # the handler's wait (benchmarks/overload_handlers.py)
WINDOW_S = 0.1
# (phase, due since start in s, status or None, latency in s, has Retry-After)
Result = tuple[str, float, int | None, float, bool]


def _actor_figures(base: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        text = response.read().decode()
    figures: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("operation_id") == "work":
                figures[sample.name] = sample.value
    return figures


def _quantile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def drive(port: int, phases: list[tuple[str, float, float]], connections: int,
          server_pid: int) -> tuple[list[Result], list[int]]:
    """Send each phase's rate for its seconds, open-loop; return the results and RSS samples."""
    client = HTTPClient(HOST, port, concurrency=connections, connection_timeout=10,
                        network_timeout=60)
    results: list[Result] = []
    rss: list[int] = []
    # NOTE: bounds the greenlets waiting for a connection; a full pool counts as a failure.
    waiting = Pool(50_000)
    start = time.monotonic()

    def one(phase: str, due: float) -> None:
        try:
            response = client.get("/work")
            response.read()
            status: int | None = response.status_code
            retry_after = response.get("retry-after") is not None
        except (OSError, gevent.Timeout):
            status, retry_after = None, False
        results.append((phase, due - start, status, time.monotonic() - due, retry_after))

    def sample_rss() -> None:
        while True:
            rss.append(_rss_kib(server_pid) or 0)
            gevent.sleep(0.5)

    sampler = gevent.spawn(sample_rss)
    due = start
    for phase, rate, seconds in phases:
        for _ in range(int(rate * seconds)):
            delay = due - time.monotonic()
            if delay > 0:
                gevent.sleep(delay)
            if waiting.full():
                results.append((phase, due - start, None, 0.0, False))
            else:
                waiting.spawn(one, phase, due)
            due += 1 / rate
    waiting.join(timeout=120)
    sampler.kill()
    client.close()
    return results, rss


def recovery_s(results: list[Result], drop_at: float, baseline_p99: float) -> float | None:
    """Seconds from the drop until every later window is all 200 and as fast as the baseline."""
    after = [r for r in results if r[0] == "after"]
    if not after:
        return None
    windows: dict[int, list[Result]] = {}
    for result in after:
        windows.setdefault(int((result[1] - drop_at) / WINDOW_S), []).append(result)
    slow = max(3 * baseline_p99, 0.02)
    bad = [index for index, window in windows.items()
           if any(r[2] != 200 or r[3] > slow for r in window)]
    return (max(bad) + 1) * WINDOW_S if bad else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factor", type=float, default=10.0, help="times the capacity")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the overload lasts")
    # NOTE: more connections than the mailbox holds: with fewer, the server never has more
    # requests than its mailbox takes, and the client's own queue makes the latency.
    parser.add_argument("--connections", type=int, default=4000,
                        help="the client's keep-alive connections (default 4000)")
    parser.add_argument("--rss-bound-mib", type=float, default=64.0,
                        help="most the server's RSS may grow")
    parser.add_argument("--reports", type=Path, default=Path(os.environ.get("REPORTS",
                                                                             "reports")))
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    args = parser.parse_args()
    reports = args.reports if args.reports.is_absolute() else ROOT / args.reports
    reports.mkdir(parents=True, exist_ok=True)
    pin = not args.no_pin and can_pin()
    if pin:
        os.sched_setaffinity(0, {1})  # NOTE: the client on CPU 1, the server on CPU 0
    port = free_port()
    base = f"http://{HOST}:{port}"
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("BRRTR_") and key != "PORT"}
    log = (reports / "overload_server.log").open("wb")
    server = subprocess.Popen(pinned(0, [
        sys.executable, "-m", "brrt_actors", "serve", "benchmarks/overload.yaml", "--handlers",
        "benchmarks/overload_handlers.py", "--host", HOST, "--port", str(port),
        "--log-level", "WARNING"], pin), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    problems: list[str] = []
    summary: dict[str, Any] = {"factor": args.factor, "seconds": args.seconds}
    try:
        wait_healthy(f"{base}/health", server)
        actor = _actor_figures(base)
        workers = actor.get("brrt_actor_workers", 4.0)
        mailbox = actor.get("brrt_actor_mailbox_capacity", 1024.0)
        capacity = workers / WORK_S
        phases = [("baseline", capacity / 2, 5.0), ("overload", capacity * args.factor,
                                                    args.seconds), ("after", capacity / 2, 5.0)]
        summary.update(workers=workers, mailbox=mailbox, capacity_rps=capacity,
                       offered_rps=capacity * args.factor)
        results, rss = drive(port, phases, args.connections, server.pid)
        summary["after_metrics"] = {key.removeprefix("brrt_actor_"): value
                                    for key, value in _actor_figures(base).items()}
    except RuntimeError as ex:
        problems.append(str(ex))
        results, rss = [], []
    finally:
        problems += stop(server)
        log.close()
    if server.returncode != 0:
        problems.append(f"the server exited with {server.returncode}")
    if results:
        baseline = [r[3] for r in results if r[0] == "baseline" and r[2] == 200]
        over = [r for r in results if r[0] == "overload"]
        admitted = [r[3] for r in over if r[2] == 200]
        shed = [r for r in over if r[2] == 503]
        other = [r for r in results if r[2] not in (200, 503)]
        baseline_p99 = _quantile(baseline, 0.99)
        drop_at = 5.0 + args.seconds
        bound_s = (mailbox / workers) * WORK_S * 1.5 + 0.1
        summary.update({
            "baseline_p99_ms": round(baseline_p99 * 1000, 1),
            "overload_sent": len(over), "overload_admitted": len(admitted),
            "overload_admitted_rps": round(len(admitted) / args.seconds, 1),
            "overload_shed_503": len(shed),
            "shed_without_retry_after": sum(1 for r in shed if not r[4]),
            "other_answers": len(other),
            "admitted_p50_ms": round(_quantile(admitted, 0.5) * 1000, 1),
            "admitted_p99_ms": round(_quantile(admitted, 0.99) * 1000, 1),
            "admitted_max_ms": round(max(admitted, default=0.0) * 1000, 1),
            "admitted_p99_bound_ms": round(bound_s * 1000, 1),
            "shed_p99_ms": round(_quantile([r[3] for r in shed], 0.99) * 1000, 1),
            "rss_start_mib": round(rss[0] / 1024, 1) if rss else None,
            "rss_peak_mib": round(max(rss) / 1024, 1) if rss else None,
            "recovery_s": recovery_s(results, drop_at, baseline_p99),
        })
        if other:
            problems.append(f"{len(other)} answers neither 200 nor 503 (or no answer)")
        if summary["shed_without_retry_after"]:
            problems.append(f"{summary['shed_without_retry_after']} 503s without Retry-After")
        if _quantile(admitted, 0.99) > bound_s:
            problems.append(f"admitted p99 {summary['admitted_p99_ms']} ms above "
                            f"{summary['admitted_p99_bound_ms']} ms")
        if rss and (max(rss) - rss[0]) / 1024 > args.rss_bound_mib:
            problems.append(f"RSS grew {(max(rss) - rss[0]) / 1024:.1f} MiB")
        if summary["recovery_s"] is None or summary["recovery_s"] > 1.0:
            problems.append(f"not recovered within 1 s of the drop ({summary['recovery_s']})")
    summary["problems"] = problems
    (reports / "overload.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print("overload " + ("FAILED: " + "; ".join(problems) if problems else "passed"), flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
