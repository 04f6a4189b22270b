"""What benchmarks/loadtest.py reads off the server and locust while the load runs.

Two readings ("marks") bound the run's steady window; the figures of the window are their
differences: CPU seconds from ``/proc/<pid>/stat`` (user + system, in clock ticks), and the
server's own request-duration histogram from its ``/metrics``, whose bucket counts are
subtracted so that the quantiles tell the window alone, not the ramp-up before it.
"""
from __future__ import annotations

import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The server's histogram of its operations' latency (brrt_actors/metrics/families.py):
# from routing to the response's headers; built-ins (/health, /metrics, /docs) not counted.
DURATION_FAMILY = "brrt_request_duration_seconds"
# A side whose CPUs are this busy (share of the CPUs it may use) limits the rate.
SATURATED = 0.9
QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))


@dataclass(frozen=True)
class Mark:
    """One reading of the run, at `at` seconds after locust started."""

    at: float
    server_cpu_s: float
    locust_cpu_s: float  # locust and its worker processes (--processes)
    cpu_busy_s: dict[int, float]  # by CPU number, whatever ran on it
    # The server's histogram: cumulative count by upper bound (s), summed over its series.
    buckets: dict[float, float]


def cpu_s(pid: int) -> float | None:
    """Return the user + system CPU seconds process `pid` used so far (None: it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _parents() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
    return parents


def tree_cpu_s(pid: int) -> float | None:
    """Return the CPU seconds of process `pid` and of its living descendants."""
    parents = _parents()
    tree, grown = {pid}, True
    while grown:
        children = {child for child, parent in parents.items() if parent in tree} - tree
        tree |= children
        grown = bool(children)
    own = cpu_s(pid)
    if own is None:
        return None
    return own + sum(cpu_s(child) or 0.0 for child in tree - {pid})


def cpu_busy_s() -> dict[int, float]:
    """Return, by CPU, the seconds it spent busy so far (not idle, not waiting for I/O)."""
    busy: dict[int, float] = {}
    with open("/proc/stat", encoding="ascii") as stat:
        for line in stat:
            name, *fields = line.split()
            if name.startswith("cpu") and name[3:].isdigit():
                ticks = [int(field) for field in fields[:8]]
                busy[int(name[3:])] = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf(
                    "SC_CLK_TCK")
    return busy


def scrape_buckets(base: str) -> dict[float, float]:
    """Return the server's latency histogram from ``<base>/metrics``, all series summed."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        text = response.read().decode()
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == DURATION_FAMILY:
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    bound = float(sample.labels["le"])
                    buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return buckets


def take_mark(at: float, base: str, server_pid: int, locust_pid: int) -> Mark | None:
    """Read the CPU times and the server's histogram now (None: a process is gone)."""
    server, locust = cpu_s(server_pid), tree_cpu_s(locust_pid)
    if server is None or locust is None:
        return None
    busy = cpu_busy_s()
    # NOTE: the scrape comes last: the CPU it costs the server falls after this mark.
    return Mark(at, server, locust, busy, scrape_buckets(base))


def quantiles(buckets: dict[float, float]) -> dict[str, float]:
    """Return p50/p95/p99 in ms of a cumulative histogram, interpolated within the bucket.

    As Prometheus' ``histogram_quantile``: linear between the bucket's lower and upper
    bound (the first bucket from 0); a rank in the +Inf bucket gives the largest finite bound.
    """
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return {}
    found: dict[str, float] = {}
    for name, quantile in QUANTILES:
        rank, lower, below = quantile * total, 0.0, 0.0
        for bound in bounds:
            if buckets[bound] >= rank:
                if bound == float("inf"):
                    found[name] = round(lower * 1000, 3)
                else:
                    share = (rank - below) / max(buckets[bound] - below, 1e-9)
                    found[name] = round((lower + (bound - lower) * share) * 1000, 3)
                break
            lower, below = bound, buckets[bound]
    return found


def _busy_share(first: Mark, last: Mark, cpus: list[int]) -> float:
    """The share of time CPUs `cpus` were busy between the marks, whatever ran on them."""
    busy = sum(last.cpu_busy_s[cpu] - first.cpu_busy_s[cpu] for cpu in cpus)
    return min(busy / (last.at - first.at) / len(cpus), 1.0)


def window_figures(first: Mark, last: Mark, locust_cpus: int,
                   pinned_to: tuple[int, list[int]] | None) -> dict[str, Any]:
    """Return the steady window's figures, as load_summary.json names them.

    Args:
        first, last: the marks at the window's start and end.
        locust_cpus: how many CPUs locust may use (its busy share is of these).
        pinned_to: the server's CPU and locust's, when pinned: then how busy those CPUs
            were, whatever ran on them, tells whether other processes starved either side.
    """
    seconds = last.at - first.at
    server_share = (last.server_cpu_s - first.server_cpu_s) / seconds
    if pinned_to:  # NOTE: on one CPU, a share above 1 is clock-tick rounding
        server_share = min(server_share, 1.0)
    locust_share = (last.locust_cpu_s - first.locust_cpu_s) / seconds / locust_cpus
    others = _busy_share(first, last, sorted(last.cpu_busy_s)) * len(last.cpu_busy_s) \
        - server_share - locust_share * locust_cpus
    delta = {bound: count - first.buckets.get(bound, 0.0)
             for bound, count in last.buckets.items()}
    operations = max(delta.values(), default=0.0)
    figures: dict[str, Any] = {
        "server_window_s": [round(first.at, 2), round(last.at, 2)],
        "server_busy_share": round(server_share, 4),
        "locust_busy_share": round(locust_share, 4),
        "others_cpu_percent": round(100 * others, 1),
        "server_window_operations": int(operations),
        "server_window_operations_rps": round(operations / seconds, 1),
    }
    figures.update({f"server_{name}_ms": value for name, value in quantiles(delta).items()})
    server_cpu_full = locust_cpus_full = False
    if pinned_to:
        figures["server_cpu_busy_share"] = round(_busy_share(first, last, [pinned_to[0]]), 4)
        figures["locust_cpus_busy_share"] = round(_busy_share(first, last, pinned_to[1]), 4)
        server_cpu_full = figures["server_cpu_busy_share"] >= SATURATED
        locust_cpus_full = figures["locust_cpus_busy_share"] >= SATURATED
    if server_share >= SATURATED:
        figures["rate_capped_by"] = "server"
    elif server_cpu_full:
        figures["rate_capped_by"] = "other load on the server's CPU"
    elif locust_share >= SATURATED or locust_cpus_full:
        figures["rate_capped_by"] = "load generator"
    else:
        figures["rate_capped_by"] = None
    return figures
