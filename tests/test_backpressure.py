"""Backpressure over real sockets: bursts of cheap requests are served, probes are not shed."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
import pytest
from conftest import PETSTORE_ENV, ROOT, TEST_SPECS, Serve
from gevent.event import Event

from brrt_actors.handler import Request

BURST = 2000  # requests at once, one per connection (the figure)
_LISTENING = re.compile(r"listening on http://([0-9.]+):([0-9]+)")

# The clients run in a process of their own, as a load generator does: the server's hub
# then reads the whole burst at once. asyncio: no monkey-patching outside the entry points.
_BURST_CLIENT = """
import asyncio, collections, resource, sys

HOST, PORT, COUNT = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft != resource.RLIM_INFINITY and soft < COUNT + 64:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(COUNT + 64, hard), hard))
REQUEST = (b"GET /pets/1 HTTP/1.1\\r\\nHost: burst\\r\\nX-API-Key: test123\\r\\n"
           b"Connection: close\\r\\n\\r\\n")

async def main():
    connections = []
    for _ in range(COUNT):  # connect first, in turn: the listen backlog is bounded
        connections.append(await asyncio.open_connection(HOST, PORT))
    for _, writer in connections:  # then the whole burst at once
        writer.write(REQUEST)
    answers = await asyncio.gather(*(reader.read() for reader, _ in connections))
    for _, writer in connections:
        writer.close()
    statuses = collections.Counter(answer.split(b" ", 2)[1].decode() if answer else "closed"
                                   for answer in answers)
    print(dict(statuses))

asyncio.run(main())
"""


def _server_environment() -> dict[str, str]:
    # NOTE: without coverage's variables: traced, the server is several times slower and
    # the burst would measure the tracer, not the runtime.
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("BRRTR_", "COV_CORE_", "COVERAGE_PROCESS_")) and name != "PORT"}
    env.update(PETSTORE_ENV)
    return env


@pytest.mark.slow
def test_a_burst_of_cheap_requests_with_default_settings_is_not_shed(tmp_path: Path) -> None:
    # 2,000 requests at once on GET /pets/1 gave 717 x 503 with BRRTRouter's 50 ms block
    # timeout (issue 9, defect 9); the defaults serve such a burst. `brrt serve` and the
    # clients run in processes of their own, as in production and under a load generator.
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "brrt_actors", "serve", "specs/petstore.yaml",
             "--handlers", "handlers", "--port", "0"],
            cwd=ROOT, env=_server_environment(), stdout=out, stderr=subprocess.STDOUT)
    try:
        host, port = _listening(server, log)
        done = subprocess.run([sys.executable, "-c", _BURST_CLIENT, host, port, str(BURST)],
                              capture_output=True, text=True, timeout=120, check=False)
        metrics = _page(host, port, "/metrics")
    finally:
        server.kill()
        server.wait(timeout=10)

    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str({"200": BURST}), done.stdout
    assert 'brrt_actor_rejected_total{operation_id="get_pet"} 0.0' in metrics


def _listening(server: subprocess.Popen[bytes], log: Path) -> tuple[str, str]:
    deadline = gevent.Timeout(30, AssertionError("brrt serve did not start"))
    with deadline:
        while not (found := _LISTENING.search(log.read_text(errors="replace"))):
            assert server.poll() is None, log.read_text(errors="replace")
            gevent.sleep(0.05)
    return found.group(1), found.group(2)


def _page(host: str, port: str | int, path: str) -> str:
    # One GET on a new connection, read until the server closes it.
    with socket.create_connection((host, int(port)), timeout=10) as client:
        client.sendall(f"GET {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n"
                       .encode())
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    return answer.decode(errors="replace")


# -- an operation on /health is not shed like the rest -------------------------------------

FLOOD = 20  # per operation; each actor: one worker, a mailbox of one, shed when full
_FLOOD_ENV = {"BRRTR_HANDLER_WORKERS": "1", "BRRTR_HANDLER_QUEUE_BOUND": "1",
              "BRRTR_BACKPRESSURE_MODE": "shed"}


def _get(address: tuple[str, int], path: str) -> int:
    return int(_page(*address, path).split(" ", 2)[1])


def _statuses(calls: list[gevent.Greenlet[..., int]]) -> Counter[int]:
    return Counter(call.value for call in calls if call.ready())


def _in_flight(app: Any, operation_id: str) -> int:
    return next(op.in_flight for op in app.metrics.operations
                if op.operation_id == operation_id)


def test_a_flood_on_the_health_operation_is_served_not_shed(
        serve: Serve, make_app: Callable[..., Any]) -> None:
    release = Event()

    def held(request: Request) -> dict[str, Any]:
        release.wait(timeout=10)
        return {}

    app = make_app(TEST_SPECS / "probes.yaml", {"liveness": held, "work": held}, **_FLOOD_ENV)
    address = serve(app).address[:2]

    # The same settings shed the other operation: one runs, one waits, the rest get 503.
    work = [gevent.spawn(_get, address, "/work") for _ in range(FLOOD)]
    gevent.wait(work, count=FLOOD - 2, timeout=10)
    assert _statuses(work) == {503: FLOOD - 2}

    health = [gevent.spawn(_get, address, "/health") for _ in range(FLOOD)]
    deadline = gevent.Timeout(10)
    with deadline:  # every probe is in (one running, the others waiting), or one answered
        while _in_flight(app, "liveness") < FLOOD and not _statuses(health):
            gevent.sleep(0.01)
    assert _statuses(health) == {}  # shed like the rest: {503: 18}
    release.set()
    gevent.joinall(health + work, timeout=10)

    assert _statuses(health) == {200: FLOOD}
    assert _statuses(work) == {503: FLOOD - 2, 200: 2}
    assert app.actors["liveness"].rejected == 0
