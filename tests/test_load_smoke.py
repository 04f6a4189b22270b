"""A short locust run against the real server: the load test's whole path, kept small.

benchmarks/loadtest.py serves the pet store (pinned to CPU 0 when there are two), runs locust
headless in its own process (CPU 1) at a low constant rate for a few seconds, stops the
server with SIGTERM, and fails on any failed request, a p95 over the bound, or an unclean
stop. Only 127.0.0.1 is used; the run ends by itself well within a minute.
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
    # Every scenario of the mix was sent (the names of locustfiles/petstore.py).
    stats = (tmp_path / "load_stats.csv").read_text()
    for name in ("GET /pets/{id}", "POST /pets", "GET /users/{user_id}/posts", "GET /search",
                 "POST /items/{id}", "GET /matrix/{coords}", "GET /metrics", "GET /docs"):
        assert name in stats, name
