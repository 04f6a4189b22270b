"""Idle connections: with N idle keep-alive connections open, how fast is a new client served?

    .venv/bin/python benchmarks/idle_connections.py                    # N = 10000, defaults
    .venv/bin/python benchmarks/idle_connections.py --connections 2000 --samples 50
    .venv/bin/python benchmarks/idle_connections.py --server-env BRRTR_MAX_CONNECTIONS=10100

The target: 10,000 idle keep-alive connections open at once, a new client's request is
answered in under 50 ms and the server's RSS stays under 200 MB.

Steps: pick a free port on 127.0.0.1; start ``brrt serve specs/petstore.yaml ...`` with its
default settings (BRRTR_* removed from its environment), pinned to CPU 0 (``taskset -c 0``);
wait for /health; pin this process to CPU 1; open N connections, each sends one
``GET /health``, reads the answer and stays open (in batches, so that all are open well
within the default 5 s keep-alive timeout); record the server's RSS (psutil, with its
children); then, one after another, open ``--samples`` new clients and time each from
connect to the end of its answer (each stays open: with the default pool of 10,000 every
sample finds the pool full, and the server closes its longest-idle connection for it);
record the RSS again; count how many of the N connections the server closed; stop the
server with SIGTERM.

Prints the figures; exits non-zero when the slowest sample took 50 ms or more
(``--max-latency-ms``), the RSS reached 200 MB (``--max-rss-mb``), a request failed, the
server did not stop cleanly, or some of the N connections idled out before the samples
(the pool was then not full; opening 10,000 takes 2-3 s of the 5 s keep-alive timeout).
This process raises its own soft RLIMIT_NOFILE to fit N. Only 127.0.0.1 is used. Without
``taskset`` or with a single CPU, nothing is pinned.
"""
from __future__ import annotations

import argparse
import os
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from _servers import HOST, can_pin, free_port, stop, wait_healthy

ROOT = Path(__file__).resolve().parent.parent
READ_TIMEOUT_S = 10.0
REQUEST = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
# Connections opened together: each batch connects, then sends, then reads every answer.
BATCH = 250





def _raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < needed:
            raise SystemExit(f"this process may open {target} files (hard limit), {needed} "
                             "are needed: lower --connections or raise `ulimit -Hn`")








def _read_answer(sock: socket.socket) -> int:
    """Read one answer with a Content-Length body; return its status."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a whole answer: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed inside a body")
        body += chunk
    return int(head.split(b" ", 2)[1])


def _open_idle(port: int, count: int) -> list[socket.socket]:
    socks: list[socket.socket] = []
    while len(socks) < count:
        batch = [socket.create_connection((HOST, port), timeout=READ_TIMEOUT_S)
                 for _ in range(min(BATCH, count - len(socks)))]
        socks.extend(batch)
        for sock in batch:
            sock.sendall(REQUEST)
        for sock in batch:
            status = _read_answer(sock)
            if status != 200:
                raise RuntimeError(f"GET /health answered {status}")
    return socks


def _closed_by_server(socks: list[socket.socket]) -> int:
    """Count the connections the server closed (readable means EOF: nothing else is due)."""
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        return len(selector.select(timeout=0))


def _rss_mb(pid: int) -> float:
    process = psutil.Process(pid)
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        total += child.memory_info().rss
    return total / 2**20


def _options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10000,
                        help="idle keep-alive connections to hold open (10000)")
    parser.add_argument("--samples", type=int, default=20,
                        help="new clients timed, one after another (20)")
    parser.add_argument("--max-latency-ms", type=float, default=50.0,
                        help="fail when the slowest sample takes this long or more (50)")
    parser.add_argument("--max-rss-mb", type=float, default=200.0,
                        help="fail when the server's RSS reaches this (200)")
    parser.add_argument("--handlers", default="handlers",
                        help="the pet store's handlers package (a path or module name)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the server (BRRTR_MAX_CONNECTIONS=...)")
    return parser.parse_args()


def _measure(args: argparse.Namespace, port: int, pid: int) -> dict[str, float]:
    """Open the idle connections, time the new clients, record the RSS; close them all."""
    idle: list[socket.socket] = []
    clients: list[socket.socket] = []
    try:
        figures = {"rss_start": _rss_mb(pid)}
        began = time.monotonic()
        idle = _open_idle(port, args.connections)
        figures["opened_s"] = time.monotonic() - began
        figures["rss_idle"] = _rss_mb(pid)
        figures["closed_before"] = _closed_by_server(idle)
        latencies: list[float] = []
        for _ in range(args.samples):
            began = time.perf_counter()
            sock = socket.create_connection((HOST, port), timeout=READ_TIMEOUT_S)
            clients.append(sock)
            sock.sendall(REQUEST)
            status = _read_answer(sock)
            latencies.append((time.perf_counter() - began) * 1000)
            if status != 200:
                raise RuntimeError(f"a new client got {status}")
        figures["rss_end"] = _rss_mb(pid)
        figures["closed_after"] = _closed_by_server(idle)
        figures["median_ms"] = statistics.median(latencies)
        figures["max_ms"] = max(latencies)
        return figures
    finally:
        for sock in idle + clients:
            sock.close()


def main() -> int:
    args = _options()
    _raise_fd_limit(args.connections + args.samples + 256)
    pin = not args.no_pin and can_pin()
    port = free_port()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("BRRTR_") and key != "PORT"}
    env["BRRTR_HOST"] = HOST
    for pair in args.server_env:
        name, _, value = pair.partition("=")
        env[name] = value
    command = [sys.executable, "-m", "brrt_actors", "serve", "specs/petstore.yaml",
               "--handlers", args.handlers, "--config", "specs/petstore.config.yaml",
               "--port", str(port)]
    if pin:
        command = ["taskset", "-c", "0", *command]
        os.sched_setaffinity(0, {1})
    print(f"server: {' '.join(command)}", flush=True)
    problems: list[str] = []
    figures: dict[str, float] = {}
    # NOTE: the server's log goes to a file: a pipe nobody reads would fill and block it.
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log,
                                  stderr=subprocess.STDOUT)
        try:
            wait_healthy(f"http://{HOST}:{port}/health", server)
            figures = _measure(args, port, server.pid)
        except (OSError, RuntimeError) as ex:
            problems.append(f"{type(ex).__name__}: {ex}")
        finally:
            problems += stop(server)
            if server.returncode != 0:
                problems.append(f"the server exited with {server.returncode}")
        if problems:
            log.seek(0)
            print("server log (end):", log.read().decode(errors="replace")[-2000:], sep="\n")
    if figures:
        print(f"pinned: {pin}")
        print(f"idle connections: {args.connections} opened in {figures['opened_s']:.2f} s; "
              f"closed by the server: {figures['closed_before']:.0f} before the samples, "
              f"{figures['closed_after']:.0f} after {args.samples} samples")
        print(f"new client latency: median {figures['median_ms']:.2f} ms, max "
              f"{figures['max_ms']:.2f} ms (bound {args.max_latency_ms:.0f} ms)")
        print(f"server RSS: {figures['rss_start']:.1f} MB at start, {figures['rss_idle']:.1f} "
              f"MB with the idle connections, {figures['rss_end']:.1f} MB after the samples "
              f"(bound {args.max_rss_mb:.0f} MB)")
        if figures["closed_before"]:
            problems.append(f"{figures['closed_before']:.0f} connections idled out before the "
                            "samples (opening them took too long): the pool was not full; "
                            "retry on a quieter machine or with --server-env "
                            "BRRTR_KEEPALIVE_TIMEOUT_S=30")
        if figures["max_ms"] >= args.max_latency_ms:
            problems.append(f"a new client waited {figures['max_ms']:.1f} ms")
        rss = max(figures["rss_idle"], figures["rss_end"])
        if rss >= args.max_rss_mb:
            problems.append(f"the server's RSS reached {rss:.1f} MB")
    for problem in problems:
        print(f"FAIL: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
