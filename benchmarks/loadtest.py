"""Load test: serve the pet store on one core, drive it with locust from another, check.

    .venv/bin/python benchmarks/loadtest.py                          # smoke: 500 req/s, 30 s
    RATE_RPS=5000 DURATION=2m P95_MS=20 .venv/bin/python benchmarks/loadtest.py

Steps: pick a free port on 127.0.0.1; start ``brrt serve specs/petstore.yaml ...`` pinned to
CPU 0 (``taskset -c 0``); wait for /health; start locust headless, pinned to the CPUs left
(``--processes N`` when it may use more than one), at a constant total rate
(``constant_throughput`` per user); write ``<reports>/load_stats.csv`` (and the other CSVs)
and ``<reports>/load.html``; stop the server with SIGTERM and check it exits 0; record its
RSS at start, at the end of the load and its peak. Exits non-zero when any request failed,
the p95 (locust's "Aggregated" row) is above the bound, the rate reached is far below the
target, locust itself failed, or the server did not stop cleanly. A summary is printed and
written to ``<reports>/load_summary.json``.

Counts: locust's printed summary, ``load_stats.csv``, ``load_failures.csv`` and
``load_summary.json`` all hold the figures of the whole run, up to the last request. (Locust
alone rewrites its CSV files once a second and not at the end, so they would miss the last
second; ``_locust_final_stats.py``, loaded beside the locustfile, writes them once more when
locust quits.) ``load_stats_history.csv`` is the once-a-second series.

The server's own figures, beside locust's (``_load_figures.py``), so that a rate capped by
the load generator is told from the server's capacity: over the steady window (25% to 90%
of the run, after locust's start and ramp-up), its p50/p95/p99 from the bucket deltas of
its /metrics histogram (the spec's operations only, timed inside the server, interpolated
within the bucket), its core's busy share and locust's (CPU time from /proc), and how busy
their pinned CPUs were with whatever ran on them; over the whole run, the requests it served
per CPU-second it used. When locust's CPUs are full (of locust or of other
processes) and the server's core is not, the load generator capped the rate: the run says so.

Settings (flags win over the environment):
    RATE_RPS (500)   target total requests per second
    DURATION (30s)   locust's run time (30s, 2m ...)
    USERS            simulated users (default RATE_RPS / 100); each sends RATE_RPS / USERS
                     requests per second, one at a time on its own keep-alive connection
    P95_MS (50)      p95 bound, in ms
    LOAD_PROCESSES   locust processes (--processes; default: one per CPU left after the
                     server's, so 1 on a 2-CPU machine, where locust runs as one process)
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
from pathlib import Path
from typing import Any

from _load_figures import SATURATED, Mark, cpu_s, take_mark, window_figures
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
# The steady window of the server's figures, in shares of the run time since locust started.
WINDOW = (0.25, 0.9)
# Below this share of the target rate, with neither side saturated, the users held it back.
SHORT_OF_TARGET = 0.95
# Other processes busy this much (% of one CPU) in the window spoil the figures.
OTHERS_SPOIL = 25


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
    parser.add_argument("--processes", type=int,
                        default=int(env("LOAD_PROCESSES", "0")) or None,
                        help="locust processes (LOAD_PROCESSES; default: one per CPU left "
                             "after the server's)")
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


def _locust_placement(processes: int | None, pin: bool) -> tuple[int, list[int], int, str]:
    """Return locust's process count, pinned CPUs ([]: none), CPUs it can use, and why.

    Locust keeps at most one CPU busy per process: its users are greenlets.
    """
    mine = sorted(os.sched_getaffinity(0))
    left = [cpu for cpu in mine if cpu != 0] if pin else mine[1:]
    count = processes or max(1, len(left))
    cpus = left[:count] if pin else []
    if pin:
        place = (f"on CPU {','.join(map(str, cpus))}; {len(left)} CPU(s) left after the "
                 "server's CPU 0")
    else:
        place = f"not pinned; {len(mine)} CPU(s) shared with the server"
    how = "1 process, no --processes" if count == 1 else f"--processes {count}"
    return (count, cpus, len(cpus) if pin else min(count, len(mine)),
            f"{how} ({place}; default: one process per CPU left)")


def _still_running(process: subprocess.Popen[bytes], until: float) -> bool:
    """Wait for `process` until monotonic time `until`; tell whether it runs still."""
    try:
        process.wait(timeout=max(0.0, until - time.monotonic()))
    except subprocess.TimeoutExpired:
        return True
    return False


def _side_by_side(summary: dict[str, Any]) -> str:
    """Locust's figures and the server's own, to read at a glance (the JSON has them all)."""
    lines = [f"{'':26}{'p50':>8}{'p95':>8}{'p99':>8}  ms"]
    if "p50_ms" in summary:
        lines.append(f"{'locust, whole run':26}"
                     + "".join(f"{summary[key]:>8.1f}" for key in ("p50_ms", "p95_ms", "p99_ms"))
                     + f"  {summary['rps']:,.0f} req/s, {summary['requests']:,} requests")
    if "server_p50_ms" in summary:
        start, end = summary["server_window_s"]
        lines.append(f"{f'server, {start:.1f}-{end:.1f} s':26}"
                     + "".join(f"{summary[f'server_{name}_ms']:>8.2f}"
                               for name in ("p50", "p95", "p99"))
                     + f"  {summary['server_window_operations_rps']:,.0f} req/s of the "
                     "spec's operations")
        lines.append("  (server: its own /metrics histogram, the window's bucket deltas, "
                     "interpolated within the bucket; routing to the response's headers)")
    if "server_busy_share" in summary:
        server, locust = summary["server_busy_share"], summary["locust_busy_share"]
        per_cpu_s = summary.get("requests_per_server_cpu_s")
        lines.append(f"server core: {server:.0%} busy in that window"
                     + (f"; {per_cpu_s:,} requests per server-CPU-second over the run "
                        "(warm-up included)"
                        if per_cpu_s else ""))
        processes, cpus = summary["locust_processes"], summary["locust_cpus"]
        lines.append(f"locust: {processes} process{'es' if processes > 1 else ''} on {cpus} "
                     f"CPU{'s' if cpus > 1 else ''}, {locust:.0%} busy; other load on the machine: "
                     f"{summary['others_cpu_percent']:.0f}% of a CPU")
        if "locust_cpus_busy_share" in summary:
            lines.append(f"pinned CPUs, busy with whatever ran on them: the server's "
                         f"{summary['server_cpu_busy_share']:.0%}, locust's "
                         f"{summary['locust_cpus_busy_share']:.0%}")
        if summary["rate_capped_by"] == "load generator":
            others = "" if locust >= SATURATED else (
                f", {locust:.0%} by locust itself and the rest by other processes")
            lines.append(f"the load generator, not the server, capped the rate (locust's "
                         f"CPUs full{others}; the server's core {server:.0%} busy); the "
                         f"server's capacity on its core is about {per_cpu_s or 0:,} req/s "
                         "of this mix")
        elif summary["rate_capped_by"] == "server":
            lines.append(f"the server's core was saturated ({server:.0%} busy): this rate is "
                         "about its capacity")
        elif summary["rate_capped_by"]:
            lines.append(f"{summary['rate_capped_by']} capped the rate: the server got "
                         f"{server:.0%} of its CPU; run again on a quiet machine")
        else:
            lines.append(f"neither side was saturated (server {server:.0%}, locust "
                         f"{locust:.0%} busy)")
            if summary["others_cpu_percent"] >= OTHERS_SPOIL:
                lines.append(f"other load on the machine took "
                             f"{summary['others_cpu_percent']:.0f}% of a CPU meanwhile: it "
                             "held both sides back; run again on a quiet machine")
            elif summary.get("rps", 0) < SHORT_OF_TARGET * summary["target_rps"]:
                lines.append(f"the rate fell short of the target: each user waits for its "
                             f"answer (p50 {summary['p50_ms']:.1f} ms by locust, "
                             f"{summary.get('server_p50_ms', 0):.2f} ms by the server) before "
                             "it sends the next request; more users (USERS) send more")
    return "\n".join(lines)


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
    processes, locust_cpus, locust_cores, placement = _locust_placement(args.processes, pin)
    summary: dict[str, Any] = {"target_rps": args.rate, "duration_s": run_s,
                               "users": args.users, "p95_bound_ms": args.p95_ms,
                               "pinned": pin, "locust_processes": processes,
                               "locust_cpus": locust_cores, "problems": []}
    problems: list[str] = summary["problems"]
    peak = [0]
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
        locust_command = pinned(locust_cpus, [
            PYTHON, "-m", "locust", "-f", ",".join(str(path) for path in locustfiles),
            "--headless", "-u", str(args.users), "-r", str(args.users),
            "-t", args.duration, "--host", base, "--csv", str(prefix),
            "--html", str(reports / "load.html"), "--exit-code-on-error", "1",
            "--stop-timeout", "5", "--only-summary", "--loglevel", "WARNING",
            *(["--processes", str(processes)] if processes > 1 else [])], pin)
        print(f"locust: {placement}", flush=True)
        print(f"locust: LOAD_USER_RPS={locust_env['LOAD_USER_RPS']} "
              f"{' '.join(locust_command)}", flush=True)
        started[0] = time.monotonic()
        server_cpu_start = cpu_s(server.pid)
        locust = subprocess.Popen(locust_command, cwd=ROOT, env=locust_env)
        locust_pid.append(locust.pid)
        # The steady window: the side near 100% of its CPUs limits the rate. What else ran
        # on the machine meanwhile ("others", in % of one CPU) spoils the figures.
        marks: list[Mark] = []
        for share in WINDOW:
            if not _still_running(locust, started[0] + share * run_s):
                break
            try:
                mark = take_mark(time.monotonic() - started[0], base, server.pid, locust.pid)
            except (urllib.error.URLError, OSError, ValueError) as ex:
                summary["server_figures_error"] = f"/metrics: {ex}"
                break
            if mark is not None:
                marks.append(mark)
        try:
            summary["locust_exit"] = locust.wait(
                timeout=max(0.0, started[0] + run_s + 60 - time.monotonic()))
        except subprocess.TimeoutExpired:
            locust.kill()
            locust.wait()
            problems.append("locust did not stop by itself")
            summary["locust_exit"] = None
        server_cpu_end = cpu_s(server.pid)
        summary["rss_end_kib"] = _rss_kib(server.pid)
        if len(marks) == len(WINDOW):
            summary.update(window_figures(marks[0], marks[-1], locust_cores,
                                          (0, locust_cpus) if pin else None))
        if server_cpu_start is not None and server_cpu_end is not None:
            summary["server_cpu_s"] = round(server_cpu_end - server_cpu_start, 3)
        # RSS once the load runs (what the first requests load is in by then: the pet
        # store's bounded records fill up, lazy imports are done) against the end: a leak
        # shows as growth between the two.
        steady_rss = [rss for at, rss in rss_samples if at >= 0.25 * run_s]
        if steady_rss:
            summary["rss_steady_kib"] = steady_rss[0]
            summary["rss_growth_steady_to_end_kib"] = (summary["rss_end_kib"] or 0) - steady_rss[0]
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
        if summary["requests"] and summary.get("server_cpu_s"):
            summary["requests_per_server_cpu_s"] = round(
                summary["requests"] / summary["server_cpu_s"])
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
    print(_side_by_side(summary), flush=True)
    print("load test " + ("FAILED: " + "; ".join(problems) if problems else "passed"),
          flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
