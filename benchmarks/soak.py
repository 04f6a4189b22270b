"""Soak: the pet store mix at a fixed rate for N minutes; every series must stay flat.

    .venv/bin/pip install -e '.[soak]'
    .venv/bin/python benchmarks/soak.py                      # 10 minutes at 500 req/s
    SOAK_MINUTES=2 .venv/bin/python benchmarks/soak.py       # what the README reports
    tox -e soak

The pet store runs as ``brrt serve`` would (the same ``main``), in a process started by this
script so that it can also count its greenlets (``gc`` once per sample, in the server's own
hub; the cost is logged), pinned to CPU 0; locust runs ``locustfiles/petstore.py`` on CPU 1
at ``RATE_RPS``. Every ``SAMPLE_S`` seconds (10) it samples the server's RSS and open file
descriptors (/proc), its greenlets, the depth of every actor's mailbox (summed, from
/metrics) and the server's p99 latency over the last window (from the /metrics histogram),
into ``<reports>/soak.csv`` and ``<reports>/soak.png``. The criterion is flat lines: the
slope of each series over the run, after the first minute's warm-up (or its first fifth,
when shorter), must predict less growth over the run than the series' bound; the script
prints every slope and bound and exits non-zero when one is passed, a request failed, or
the server did not stop cleanly on SIGTERM.
"""
from __future__ import annotations

import sys

if __name__ == "__main__" and "--serve" in sys.argv:
    # NOTE: the server process's entry point: patched first, as the CLI is, before anything
    # below imports socket or ssl.
    from brrt_actors.entrypoints.patching import patch_all

    patch_all()

import argparse
import csv
import gc
import json
import os
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from _servers import HOST, can_pin, free_port, pinned, stop, wait_healthy
from loadtest import USER_RPS, _aggregated, _number, _rss_kib

ROOT = Path(__file__).resolve().parent.parent
SERIES = ("rss_mib", "fds", "greenlets", "mailbox_depth", "p99_ms")
# The most growth the fitted line may predict over the run: (absolute floor, share of the
# series' median). A leak of a request's worth per second passes neither for long.
BOUNDS: dict[str, tuple[float, float]] = {
    "rss_mib": (8.0, 0.05),
    "fds": (4.0, 0.0),
    "greenlets": (8.0, 0.0),
    "mailbox_depth": (4.0, 0.0),
    "p99_ms": (2.0, 0.5),
}


# -- the server process: the pet store through `brrt serve`'s main, plus a greenlet counter --

def serve(port: int, sample_s: float, counts: Path) -> int:
    """Run the pet store (as `brrt serve`) and append its greenlet count to `counts`."""
    import gevent
    import greenlet

    from brrt_actors.entrypoints.cli import run

    def count() -> None:
        while True:
            gevent.sleep(sample_s)
            started = time.perf_counter()
            alive = sum(1 for obj in gc.get_objects()
                        if isinstance(obj, greenlet.greenlet) and not obj.dead)
            cost_ms = (time.perf_counter() - started) * 1000
            with counts.open("a") as out:
                out.write(f"{time.time():.3f} {alive} {cost_ms:.2f}\n")

    gevent.spawn(count)
    return run(["serve", "specs/petstore.yaml", "--handlers", "handlers", "--config",
                      "specs/petstore.config.yaml", "--port", str(port),
                      "--log-level", "WARNING"])


# -- sampling --------------------------------------------------------------------------------

def _scrape(base: str) -> tuple[float, dict[float, float], float]:
    """Mailbox depth (summed), the latency histogram's buckets, and the requests counted."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        text = response.read().decode()
    depth, requests, buckets = 0.0, 0.0, {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "brrt_actor_mailbox_depth":
                depth += sample.value
            elif sample.name == "brrt_request_duration_seconds_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
            elif sample.name == "brrt_requests_total":
                requests += sample.value
    return depth, buckets, requests


def _quantile_ms(buckets: dict[float, float], quantile: float) -> float:
    """A quantile of cumulative histogram buckets, linear within a bucket (histogram_quantile)."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return 0.0
    rank = quantile * buckets[bounds[-1]]
    lower = below = 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if bound == float("inf"):
                return lower * 1000
            share = (rank - below) / max(buckets[bound] - below, 1e-9)
            return (lower + (bound - lower) * share) * 1000
        lower, below = bound, buckets[bound]
    return lower * 1000


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _slope_per_s(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (t, value) points."""
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var if var else 0.0


def judge(rows: list[dict[str, float]], run_s: float) -> tuple[dict[str, Any], list[str]]:
    """Fit a line to each series after the warm-up; return the figures and what failed."""
    warmup = min(60.0, run_s / 5)
    steady = [row for row in rows if row["t_s"] >= warmup]
    figures: dict[str, Any] = {}
    problems: list[str] = []
    if len(steady) < 3:
        return figures, [f"only {len(steady)} samples after the warm-up: run longer"]
    span = steady[-1]["t_s"] - steady[0]["t_s"]
    for name in SERIES:
        values = sorted(row[name] for row in steady)
        median = values[len(values) // 2]
        slope = _slope_per_s([(row["t_s"], row[name]) for row in steady])
        floor, share = BOUNDS[name]
        bound = max(floor, share * median)
        growth = slope * span
        figures[name] = {"first": steady[0][name], "last": steady[-1][name],
                         "median": median, "slope_per_min": round(slope * 60, 4),
                         "growth_over_run": round(growth, 3), "bound": round(bound, 3)}
        if growth > bound:
            problems.append(f"{name} grows {growth:.2f} over {span:.0f} s "
                            f"(slope {slope * 60:.3f}/min), above its bound {bound:.2f}")
    return figures, problems


def plot(rows: list[dict[str, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(SERIES), 1, sharex=True, figsize=(8, 2 * len(SERIES)))
    minutes = [row["t_s"] / 60 for row in rows]
    for axis, name in zip(axes, SERIES, strict=True):
        axis.plot(minutes, [row[name] for row in rows], marker=".")
        axis.set_ylabel(name)
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
    axes[-1].set_xlabel("minutes")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# -- the run ---------------------------------------------------------------------------------

def _options() -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=float(env("SOAK_MINUTES", "10")),
                        help="how long the load runs (SOAK_MINUTES, default 10)")
    parser.add_argument("--rate", type=float, default=float(env("RATE_RPS", "500")),
                        help="total requests per second (RATE_RPS, default 500)")
    parser.add_argument("--sample-s", type=float, default=float(env("SAMPLE_S", "10")),
                        help="seconds between samples (SAMPLE_S, default 10)")
    parser.add_argument("--reports", type=Path, default=Path(env("REPORTS", "reports")),
                        help="folder for soak.csv, soak.png and soak_summary.json (REPORTS)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the server process
    parser.add_argument("--counts", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> int:
    args = _options()
    if args.serve is not None:
        return serve(args.serve, args.sample_s, args.counts)
    reports = args.reports if args.reports.is_absolute() else ROOT / args.reports
    reports.mkdir(parents=True, exist_ok=True)
    counts = reports / "soak_greenlets.txt"
    counts.write_text("")
    run_s = args.minutes * 60
    pin = not args.no_pin and can_pin()
    port = free_port()
    base = f"http://{HOST}:{port}"
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("BRRTR_") and key != "PORT"}
    env["BRRTR_HOST"] = HOST
    server_log = (reports / "soak_server.log").open("wb")
    server = subprocess.Popen(
        pinned(0, [sys.executable, str(Path(__file__).resolve()), "--serve", str(port),
                   "--sample-s", str(args.sample_s), "--counts", str(counts)], pin),
        cwd=ROOT, env=env, stdout=server_log, stderr=subprocess.STDOUT)
    rows: list[dict[str, float]] = []
    problems: list[str] = []
    summary: dict[str, Any] = {"minutes": args.minutes, "rate_rps": args.rate,
                               "sample_s": args.sample_s, "pinned": pin}
    try:
        wait_healthy(f"{base}/health", server)
        users = max(1, round(args.rate / USER_RPS))
        locust_env = {**os.environ, "LOAD_USER_RPS": str(args.rate / users),
                      "LOAD_API_KEY": os.environ.get("LOAD_API_KEY", "test123")}
        locust = subprocess.Popen(pinned(1, [
            sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "petstore.py"),
            "--headless", "-u", str(users), "-r", str(users), "-t", f"{int(run_s)}s",
            "--host", base, "--csv", str(reports / "soak"), "--only-summary",
            "--stop-timeout", "5", "--loglevel", "WARNING"], pin), cwd=ROOT, env=locust_env)
        started = time.monotonic()
        _, last_buckets, last_requests = _scrape(base)
        stop_sampling = threading.Event()
        while not stop_sampling.wait(args.sample_s):
            now = time.monotonic() - started
            if now > run_s - args.sample_s / 2 or locust.poll() is not None:
                break
            depth, buckets, requests = _scrape(base)
            window = {bound: count - last_buckets.get(bound, 0.0)
                      for bound, count in buckets.items()}
            lines = counts.read_text().split()
            rows.append({"t_s": round(now, 1), "rss_mib": (_rss_kib(server.pid) or 0) / 1024,
                         "fds": _fds(server.pid),
                         "greenlets": float(lines[-2]) if len(lines) >= 3 else 0.0,
                         "mailbox_depth": depth, "p99_ms": round(_quantile_ms(window, 0.99), 2),
                         "rps": round((requests - last_requests) / args.sample_s, 1)})
            last_buckets, last_requests = buckets, requests
            print(json.dumps(rows[-1]), flush=True)
        summary["locust_exit"] = locust.wait(timeout=120)
    except RuntimeError as ex:
        problems.append(str(ex))
    finally:
        problems += stop(server)
        summary["server_exit"] = server.returncode
        server_log.close()
    if summary["server_exit"] != 0:
        problems.append(f"the server exited with {summary['server_exit']}")
    costs = [float(line.split()[2]) for line in counts.read_text().splitlines() if line]
    summary["greenlet_count_cost_ms_max"] = max(costs, default=None)
    stats = reports / "soak_stats.csv"
    if stats.exists():
        row = _aggregated(stats)
        summary.update(requests=int(_number(row, "Request Count")),
                       failures=int(_number(row, "Failure Count")),
                       rps=_number(row, "Requests/s"), p99_ms_locust=_number(row, "99%"))
        if summary["failures"]:
            problems.append(f"{summary['failures']} request(s) failed")
    with (reports / "soak.csv").open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=["t_s", *SERIES, "rps"])
        writer.writeheader()
        writer.writerows(rows)
    if rows:
        plot(rows, reports / "soak.png",
             f"pet store soak: {args.rate:.0f} req/s for {args.minutes:g} min")
    figures, flat_problems = judge(rows, run_s)
    summary["series"] = figures
    summary["problems"] = problems + flat_problems
    (reports / "soak_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print("soak " + ("FAILED: " + "; ".join(summary["problems"]) if summary["problems"]
                     else "passed: every series flat"), flush=True)
    return 1 if summary["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
