"""Load test: serve the pet store on one core, drive it with locust from another, check.

    .venv/bin/python benchmarks/loadtest.py                          # smoke: 500 req/s, 30 s
    RATE_RPS=5000 DURATION=2m P95_MS=20 .venv/bin/python benchmarks/loadtest.py

Steps: pick a free port on 127.0.0.1; start ``brrt serve specs/petstore.yaml ...`` pinned to
CPU 0 (``taskset -c 0``); wait for /health; start locust headless, in its own process,
pinned to CPU 1, at a constant total rate (``constant_throughput`` per user); write
``<reports>/load_stats.csv`` (and the other CSVs) and ``<reports>/load.html``; stop the server
with SIGTERM and check it exits 0; record its RSS at start, at the end of the load and its
peak, and how busy the server's and locust's CPUs were. Exits non-zero when any request
failed, the p95 (locust's "Aggregated" row) is above the bound, the rate reached is far
below the target, locust itself failed, or the server did not stop cleanly. A summary is
printed and written to ``<reports>/load_summary.json``.

Counts: locust's printed summary, ``load_stats.csv``, ``load_failures.csv`` and
``load_summary.json`` all hold the figures of the whole run, up to the last request. (Locust
alone rewrites its CSV files once a second and not at the end, so they would miss the last
second; ``_locust_final_stats.py``, loaded beside the locustfile, writes them once more when
locust quits.) ``load_stats_history.csv`` is the once-a-second series. The server's own
quantiles (``server_p95_ms`` ...) come from its /metrics histogram: the spec's operations
only, timed inside the server.

Settings (flags win over the environment):
    RATE_RPS (500)   target total requests per second
    DURATION (30s)   locust's run time (30s, 2m ...)
    USERS            simulated users (default RATE_RPS / 100); each sends RATE_RPS / USERS
                     requests per second, one at a time on its own keep-alive connection
    P95_MS (50)      p95 bound, in ms
    MIN_RATE_RATIO   the run fails below this share of RATE_RPS (default 0.8; the ramp-up
                     and the first second count in locust's average)
    REPORTS (reports) where the CSV, HTML and summary files go

Only 127.0.0.1 is ever used. Without ``taskset`` or with a single CPU, nothing is pinned.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from _servers import HOST, can_pin, free_port, pinned, stop, wait_healthy

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable
# Requests per second of one simulated user, when USERS is not given. Each user waits for
# its answer before the next request, so its period (10 ms) must stay above the latency.
# NOTE: every user is a greenlet in locust's one process; with many slow users (250 at
# 20 req/s) a response waits behind the others for locust's CPU: p95 68 ms by locust (and
# bursts that the server queued: 32 ms by the server), where 50 users at 100 req/s measured
# 12 ms (2.4 ms) against the same server (5,000 req/s target, 2-CPU VM).
USER_RPS = 100





def _seconds(duration: str) -> float:
    """Locust's run-time syntax: 90, 90s, 2m, 1h30m."""
    total, number = 0.0, ""
    for char in duration.strip():
        if char.isdigit() or char == ".":
            number += char
        elif char in "hms" and number:
            total += float(number) * {"h": 3600, "m": 60, "s": 1}[char]
            number = ""
        else:
            raise ValueError(f"bad duration {duration!r} (use 30s, 2m, 1h30m)")
    return total + (float(number) if number else 0.0)


def _rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _cpu_s(pid: int) -> float | None:
    """User + system CPU seconds used so far by process `pid`."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy_s() -> float:
    """CPU seconds all CPUs of the machine spent busy so far (not idle, not waiting)."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(field) for field in stat.readline().split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")











def _server_quantiles(base: str) -> dict[str, float]:
    """The server's own latency quantiles (ms), from its /metrics histogram, all operations.

    Routing to response headers, without HTTP parsing, writing or built-ins: compared with
    locust's figures, it tells the server's time from queueing on either side.
    """
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        text = response.read().decode()
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "brrt_request_duration_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    bounds = sorted(buckets)
    if not bounds or not buckets[bounds[-1]]:
        return {}
    total = buckets[bounds[-1]]
    found: dict[str, float] = {}
    for name, quantile in (("server_p50_ms", 0.5), ("server_p95_ms", 0.95),
                           ("server_p99_ms", 0.99)):
        rank, lower, below = quantile * total, 0.0, 0.0
        for bound in bounds:
            if buckets[bound] >= rank:
                if bound == float("inf"):
                    found[name] = lower * 1000
                else:  # linear within the bucket, as Prometheus' histogram_quantile does
                    share = (rank - below) / max(buckets[bound] - below, 1e-9)
                    found[name] = round((lower + (bound - lower) * share) * 1000, 2)
                break
            lower, below = bound, buckets[bound]
    return found


def _aggregated(stats_csv: Path) -> dict[str, str]:
    with stats_csv.open(newline="") as stream:
        for row in csv.DictReader(stream):
            if row.get("Name") == "Aggregated":
                return row
    raise RuntimeError(f"{stats_csv} has no Aggregated row")


def _number(row: dict[str, str], key: str) -> float:
    value = row.get(key, "")
    return float(value) if value not in ("", "N/A") else float("nan")


def _options() -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=float(env("RATE_RPS", "500")),
                        help="target total requests per second (RATE_RPS)")
    parser.add_argument("--duration", default=env("DURATION", "30s"),
                        help="run time, locust syntax (DURATION)")
    parser.add_argument("--users", type=int, default=int(env("USERS", "0")) or None,
                        help="simulated users (USERS; default: rate / 100)")
    parser.add_argument("--p95-ms", type=float, default=float(env("P95_MS", "50")),
                        help="fail when the aggregated p95 is above this (P95_MS)")
    parser.add_argument("--min-rate-ratio", type=float,
                        default=float(env("MIN_RATE_RATIO", "0.8")),
                        help="fail below this share of the target rate (MIN_RATE_RATIO)")
    parser.add_argument("--reports", type=Path, default=Path(env("REPORTS", "reports")),
                        help="folder for the CSV, HTML and summary (REPORTS)")
    parser.add_argument("--handlers", default="handlers",
                        help="the pet store's handlers package (a path or module name)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the server (BRRTR_HTTP_ENGINE=pywsgi ...)")
    return parser.parse_args()


def main() -> int:
    args = _options()
    if args.users is None:
        args.users = max(1, round(args.rate / USER_RPS))
    run_s = _seconds(args.duration)
    pin = not args.no_pin and can_pin()
    reports = args.reports if args.reports.is_absolute() else ROOT / args.reports
    reports.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://{HOST}:{port}"

    server_env = {key: value for key, value in os.environ.items()
                  if not key.startswith("BRRTR_") and key != "PORT"}
    server_env["BRRTR_HOST"] = HOST
    for pair in args.server_env:
        name, _, value = pair.partition("=")
        server_env[name] = value
    server_command = pinned(0, [PYTHON, "-m", "brrt_actors", "serve", "specs/petstore.yaml",
                                 "--handlers", args.handlers,
                                 "--config", "specs/petstore.config.yaml",
                                 "--port", str(port)], pin)
    server_log = (reports / "load_server.log").open("wb")
    print(f"server: {' '.join(server_command)}", flush=True)
    server = subprocess.Popen(server_command, cwd=ROOT, env=server_env,
                              stdout=server_log, stderr=subprocess.STDOUT)
    summary: dict[str, Any] = {"target_rps": args.rate, "duration_s": run_s,
                               "users": args.users, "p95_bound_ms": args.p95_ms,
                               "pinned": pin, "problems": []}
    problems: list[str] = summary["problems"]
    peak = [0]
    # (seconds since locust started, server, locust and whole-machine CPU s), every 0.5 s.
    samples: list[tuple[float, float, float, float]] = []
    locust_pid: list[int] = []
    started = [0.0]
    sampling = threading.Event()

    # (seconds since locust started, server RSS in KiB), every 0.5 s.
    rss_samples: list[tuple[float, int]] = []

    def sample() -> None:
        while not sampling.wait(0.5):
            rss = _rss_kib(server.pid) or 0
            peak[0] = max(peak[0], rss)
            if locust_pid:
                rss_samples.append((time.monotonic() - started[0], rss))
                server_s, locust_s = _cpu_s(server.pid), _cpu_s(locust_pid[0])
                if server_s is not None and locust_s is not None:
                    samples.append((time.monotonic() - started[0], server_s, locust_s,
                                    _machine_busy_s()))

    try:
        wait_healthy(f"{base}/health", server)
        summary["rss_start_kib"] = _rss_kib(server.pid)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        locust_env = dict(os.environ)
        locust_env["LOAD_USER_RPS"] = str(args.rate / args.users)
        locust_env.setdefault("LOAD_API_KEY", "test123")
        prefix = reports / "load"
        locustfiles = [ROOT / "locustfiles" / "petstore.py", HERE / "_locust_final_stats.py"]
        locust_command = pinned(1, [
            PYTHON, "-m", "locust", "-f", ",".join(str(path) for path in locustfiles),
            "--headless", "-u", str(args.users), "-r", str(args.users),
            "-t", args.duration, "--host", base, "--csv", str(prefix),
            "--html", str(reports / "load.html"), "--exit-code-on-error", "1",
            "--stop-timeout", "5", "--only-summary", "--loglevel", "WARNING"], pin)
        print(f"locust: LOAD_USER_RPS={locust_env['LOAD_USER_RPS']} "
              f"{' '.join(locust_command)}", flush=True)
        started[0] = time.monotonic()
        locust = subprocess.Popen(locust_command, cwd=ROOT, env=locust_env)
        locust_pid.append(locust.pid)
        try:
            summary["locust_exit"] = locust.wait(timeout=run_s + 60)
        except subprocess.TimeoutExpired:
            locust.kill()
            locust.wait()
            problems.append("locust did not stop by itself")
            summary["locust_exit"] = None
        summary["rss_end_kib"] = _rss_kib(server.pid)
        try:
            summary.update(_server_quantiles(base))
        except (urllib.error.URLError, OSError, ValueError) as ex:
            summary["server_quantiles_error"] = str(ex)
        # How busy each side was in the steady part of the run (from 25% to 90% of it, after
        # locust's start and ramp-up): the side near 100% of its CPU limits the rate. What
        # else ran on the machine meanwhile ("others", in % of one CPU) spoils the figures.
        # RSS once the load runs (what the first requests load is in by then: the pet
        # store's bounded records fill up, lazy imports are done) against the end: a leak
        # shows as growth between the two.
        steady_rss = [rss for at, rss in rss_samples if at >= 0.25 * run_s]
        if steady_rss:
            summary["rss_steady_kib"] = steady_rss[0]
            summary["rss_growth_steady_to_end_kib"] = (summary["rss_end_kib"] or 0) - steady_rss[0]
        steady = [sample for sample in samples if 0.25 * run_s <= sample[0] <= 0.9 * run_s]
        if len(steady) >= 2:
            (t0, server0, locust0, busy0), (t1, server1, locust1, busy1) = steady[0], steady[-1]
            server_pct = 100 * (server1 - server0) / (t1 - t0)
            locust_pct = 100 * (locust1 - locust0) / (t1 - t0)
            summary["server_cpu_percent"] = round(server_pct, 1)
            summary["locust_cpu_percent"] = round(locust_pct, 1)
            summary["others_cpu_percent"] = round(
                100 * (busy1 - busy0) / (t1 - t0) - server_pct - locust_pct, 1)
    except RuntimeError as ex:
        problems.append(str(ex))
    finally:
        sampling.set()
        summary["rss_peak_kib"] = peak[0] or None
        problems += stop(server)
        summary["server_exit"] = server.returncode
        server_log.close()
    if summary["server_exit"] != 0:
        problems.append(f"the server exited with {summary['server_exit']} "
                        f"(see {reports / 'load_server.log'})")

    stats_csv = reports / "load_stats.csv"
    if stats_csv.exists() and "locust_exit" in summary:
        row = _aggregated(stats_csv)
        summary.update({
            "requests": int(_number(row, "Request Count")),
            "failures": int(_number(row, "Failure Count")),
            "rps": _number(row, "Requests/s"),
            "p50_ms": _number(row, "50%"), "p95_ms": _number(row, "95%"),
            "p99_ms": _number(row, "99%"), "max_ms": _number(row, "Max Response Time"),
        })
        if summary["failures"]:
            problems.append(f"{summary['failures']} request(s) failed "
                            f"(see {reports / 'load_failures.csv'})")
        if not summary["requests"]:
            problems.append("no request was made")
        if not summary["p95_ms"] <= args.p95_ms:
            problems.append(f"p95 {summary['p95_ms']} ms is above {args.p95_ms} ms")
        if summary["rps"] < args.rate * args.min_rate_ratio:
            problems.append(f"{summary['rps']:.0f} req/s reached, below "
                            f"{args.min_rate_ratio:.0%} of the {args.rate:.0f} req/s target")
        if summary.get("locust_exit") not in (0, None) and not summary["failures"]:
            problems.append(f"locust exited with {summary['locust_exit']}")
    elif not problems:
        problems.append(f"locust wrote no {stats_csv}")

    (reports / "load_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2), flush=True)
    print("load test " + ("FAILED: " + "; ".join(problems) if problems else "passed"),
          flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
