"""Process start to accepting: from Popen until a TCP connect succeeds and GET /health answers.

    python benchmarks/start_time.py --runs 20

Starts ``python -m brrt_actors serve specs/petstore.yaml --handlers handlers`` N times (after
one warm-up run that is not counted, so the bytecode caches exist) and prints the median and
minimum. The target is under 0.3 s. PYTHONDONTWRITEBYTECODE is removed from the children's
environment: without bytecode caches every start recompiles every module.

Not on this path, by design: pyjwt and cryptography (loaded by a JWT scheme's first token,
or at build for a PEM key or a JWK Set URL) and prometheus_client (the first /metrics scrape).

To see where the time goes:

    PYTHONDONTWRITEBYTECODE= python -X importtime -m brrt_actors serve specs/petstore.yaml \\
        --handlers handlers 2> /tmp/imports.txt   # then Ctrl-C
    sort -t'|' -k2 -n /tmp/imports.txt | tail -30
"""
from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 30.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _environment() -> dict[str, str]:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("BRRTR_") and name not in ("PORT", "PYTHONDONTWRITEBYTECODE")}
    env["BRRTR_API_KEY__ApiKeyHeader"] = "test123"
    env["BRRTR_JWT_SECRET__BearerAuth"] = "bench-bearer-secret-0123456789abcdef"
    env["BRRTR_JWT_SECRET__OAuth2"] = "bench-oauth2-secret-0123456789abcdef"
    return env


def _accepting(port: int) -> bool:
    try:
        connection = socket.create_connection(("127.0.0.1", port), timeout=1)
    except OSError:
        return False
    connection.close()
    return True


def _health(port: int) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/health")
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def measure_once(command: list[str]) -> float:
    """Return the seconds from Popen to a /health answer; stop the server (SIGTERM)."""
    port = _free_port()
    started = time.perf_counter()
    process = subprocess.Popen([*command, "--port", str(port)], cwd=ROOT, env=_environment(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while not _accepting(port):
            if process.poll() is not None:
                _, err = process.communicate()
                raise SystemExit(f"the server exited {process.returncode}:\n{err.decode()}")
            if time.perf_counter() - started > TIMEOUT_S:
                raise SystemExit(f"not accepting after {TIMEOUT_S:.0f}s")
            time.sleep(0.002)
        status = _health(port)
        elapsed = time.perf_counter() - started
        if status != 200:
            raise SystemExit(f"/health answered {status}")
        return elapsed
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=10, help="measured runs (default 10)")
    parser.add_argument("--spec", default="specs/petstore.yaml")
    parser.add_argument("--handlers", default="handlers")
    parser.add_argument("--python", default=sys.executable, help="interpreter to start")
    args = parser.parse_args()
    command = [args.python, "-m", "brrt_actors", "serve", args.spec,
               "--handlers", args.handlers, "--log-level", "WARNING"]
    print(" ".join(command[1:]))
    measure_once(command)  # warm-up: writes the bytecode caches
    times = [measure_once(command) for _ in range(args.runs)]
    print(f"start -> accepting and /health answered, {args.runs} runs: "
          f"median {statistics.median(times) * 1000:.0f} ms, "
          f"min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms "
          "(target < 300 ms)")


if __name__ == "__main__":
    main()
