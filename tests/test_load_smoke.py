"""A short locust run against the real server: the load test's whole path, kept small.

benchmarks/loadtest.py serves the pet store (pinned to CPU 0 when there are two), runs locust
headless in its own process (CPU 1) at a low constant rate for a few seconds, stops the
server with SIGTERM, and fails on any failed request, a p95 over the bound, or an unclean
stop. Only 127.0.0.1 is used; the run ends by itself well within a minute. Beside locust's
figures it reports the server's own (benchmarks/_load_figures.py), checked here too.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from conftest import ROOT

RATE_RPS = 40
USERS = 8
DURATION = "8s"
# Generous: CI shares the machine with the rest of the suite; the real bounds are the
# load test's own (tox -e load).
P95_MS = 250
TIMEOUT_S = 55
# The "Aggregated" row of locust's printed request table: requests, then failures(share).
PRINTED_AGGREGATED = re.compile(r"^\s+Aggregated\s+(?P<requests>\d+)\s+(?P<failures>\d+)\(",
                                re.MULTILINE)


def _load_figures() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "_load_figures", ROOT / "benchmarks" / "_load_figures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # NOTE: dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_window_figures_are_the_marks_differences() -> None:
    figures = _load_figures()
    inf = float("inf")
    # Cumulative counts by upper bound (s): 10 requests before the window, 100 in it.
    first = figures.Mark(1.0, 1.0, 2.0, {0: 5.0, 1: 5.0},
                         {0.001: 10.0, 0.005: 10.0, inf: 10.0})
    last = figures.Mark(11.0, 6.0, 11.5, {0: 10.5, 1: 14.5},
                        {0.001: 60.0, 0.005: 110.0, inf: 110.0})

    found = figures.window_figures(first, last, 1, (0, [1]))

    # p50: the 50th of 100 is the last of the first bucket; p95 and p99 are 90% and 98% of
    # the way through the second one (1 to 5 ms).
    assert (found["server_p50_ms"], found["server_p95_ms"], found["server_p99_ms"]) == (
        1.0, 4.6, 4.92)
    assert found["server_window_s"] == [1.0, 11.0]
    assert found["server_window_operations"] == 100
    assert found["server_busy_share"] == 0.5 and found["locust_busy_share"] == 0.95
    assert found["others_cpu_percent"] == 5.0
    assert found["server_cpu_busy_share"] == 0.55 and found["locust_cpus_busy_share"] == 0.95
    assert found["rate_capped_by"] == "load generator"
    # Locust's CPU full of other processes: the load generator capped the rate still.
    starved = figures.Mark(11.0, 6.0, 4.0, {0: 10.5, 1: 14.5}, last.buckets)
    assert figures.window_figures(first, starved, 1, (0, [1]))["rate_capped_by"] == (
        "load generator")
    # A rank in the +Inf bucket is at least the largest finite bound.
    assert figures.quantiles({0.005: 0.0, inf: 4.0})["p50"] == 5.0


@pytest.mark.slow
def test_load_smoke(tmp_path: Path) -> None:
    if importlib.util.find_spec("locust") is None:
        if os.environ.get("CI"):
            pytest.fail("locust is not installed: the test extra of setup.cfg brings it")
        pytest.skip("locust is not installed (pip install -e '.[test]')")
    env = {key: value for key, value in os.environ.items() if not key.startswith("BRRTR_")}

    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "loadtest.py"), "--rate", str(RATE_RPS),
         "--users", str(USERS), "--duration", DURATION, "--p95-ms", str(P95_MS),
         "--min-rate-ratio", "0.5", "--reports", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)

    output = done.stdout[-4000:] + done.stderr[-4000:]
    assert done.returncode == 0, output
    summary = json.loads((tmp_path / "load_summary.json").read_text())
    assert summary["problems"] == [], output
    assert summary["failures"] == 0 and summary["requests"] >= RATE_RPS * 4, summary
    assert summary["server_exit"] == 0 and summary["locust_exit"] == 0, summary
    assert summary["rss_start_kib"] > 0 and summary["rss_end_kib"] > 0, summary
    assert (tmp_path / "load_stats.csv").exists() and (tmp_path / "load.html").exists()
    # One count for the run: locust's printed summary, its CSV and load_summary.json agree.
    printed = PRINTED_AGGREGATED.search(done.stderr + done.stdout)  # locust logs it to stderr
    assert printed is not None, output
    with (tmp_path / "load_stats.csv").open(newline="") as stream:
        csv_row = next(row for row in csv.DictReader(stream) if row["Name"] == "Aggregated")
    assert (int(printed["requests"]), int(printed["failures"])) == (
        int(csv_row["Request Count"]), int(csv_row["Failure Count"])) == (
        summary["requests"], summary["failures"]), output
    # The server's own figures over the steady window, beside locust's.
    assert 0 < summary["server_p50_ms"] <= summary["server_p95_ms"] <= summary[
        "server_p99_ms"], summary
    assert 0 < summary["server_busy_share"] <= 1 and summary["locust_busy_share"] > 0, summary
    assert summary["server_window_operations"] > 0, summary
    assert summary["requests_per_server_cpu_s"] > 0, summary
    assert summary["rate_capped_by"] in (None, "server", "load generator"), summary
    # One locust process per CPU left after the server's: 1, without --processes, on 2 CPUs.
    processes = max(1, len(os.sched_getaffinity(0)) - 1)
    assert summary["locust_processes"] == processes, summary
    command = next(line for line in done.stdout.splitlines()
                   if line.startswith("locust: LOAD_USER_RPS="))
    assert ("--processes" in command) == (processes > 1), command
    for line in ("locust, whole run", "server, ", "server core: ", "busy"):
        assert line in done.stdout, output
    # Every scenario of the mix was sent (the names of locustfiles/petstore.py).
    stats = (tmp_path / "load_stats.csv").read_text()
    for name in ("GET /pets/{id}", "POST /pets", "GET /users/{user_id}/posts", "GET /search",
                 "POST /items/{id}", "GET /matrix/{coords}", "GET /metrics", "GET /docs"):
        assert name in stats, name
