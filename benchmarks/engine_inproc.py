"""The HTTP engine and the app together, in process: raw request bytes in, answer bytes out.

Each request's bytes are fed to a real engine `Connection` (httptools parser, environ,
the app's direct entry, the answer's head and framing) serving the real app, through a fake
socket that keeps what is sent: everything a request costs the server but the socket calls
and the event loop's wake-ups. Prints the median (and min) CPU µs per request over several
rounds for each case, and the wall-time median (trust CPU time on a shared machine).

The requests are those of the shared peer benchmark (``../shared/bench``, beside the
checkout; its wrk scripts): ``get_pet`` is ``GET /pets/1``, ``list`` ``GET /pets?limit=10``,
``post`` ``POST /pets`` with a JSON body, all with the API key; ``mix`` cycles its deck of
1,000 shuffled requests, 70% ``GET /pets/{random id}``, 20% list, 10% post. Without the
shared benchmark (or with ``--target repo``) the repository's own pet store is served, with
requests that fit it.

    taskset -c 1 .venv/bin/python benchmarks/engine_inproc.py [--requests 20000] [--rounds 7]
    taskset -c 1 .venv/bin/python benchmarks/engine_inproc.py --case get_pet --case mix
    .venv/bin/python benchmarks/engine_inproc.py --target repo --requests 200 --rounds 1

``--spec``/``--handlers`` serve another copy of the target's spec (the requests stay the
target's). Each case's first answers are checked (200/201 and a JSON body): anything else
stops the run with exit status 1.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import NamedTuple  # noqa: E402

from gevent.pool import Pool  # noqa: E402

from brrt_actors import create_app  # noqa: E402
from brrt_actors.app import App  # noqa: E402
from brrt_actors.engine.connection import Connection  # noqa: E402
from brrt_actors.engine.httptools_server import HttptoolsServer  # noqa: E402
from brrt_actors.entrypoints.server import DEFAULT_HEADER_TIMEOUT_S  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED_BENCH = ROOT.parent / "shared" / "bench"
CASES = ("get_pet", "list", "post", "mix")
# The shared benchmark's mix (its lua/mix.lua): a deck of this many requests, in these shares.
DECK_SIZE = 1000
MIX_SHARES = {"get_pet": 0.7, "list": 0.2, "post": 0.1}
_SEED = 12345
# What wrk sends besides the request line (its Host, and the key from run.sh's -H).
_HOST = b"127.0.0.1:8181"
_API_KEY = b"test123"


class Target(NamedTuple):
    """A pet store to serve, and what its requests need."""

    spec: Path
    handlers: Path
    config_file: Path | None
    #: Added to the process environment for the app (the secrets the harness sets).
    environ: dict[str, str]
    #: The ids of ``GET /pets/{id}`` in the mix (each must exist).
    pet_ids: range
    post_body: bytes


TARGETS = {
    "bench": Target(SHARED_BENCH / "spec" / "petstore-bench.yaml",
                    SHARED_BENCH / "peers" / "brrt_handlers.py", None,
                    {"BRRTR_API_KEY__ApiKeyAuth": _API_KEY.decode()}, range(1, 100_001),
                    b'{"name":"Tom","tag":"cat","status":"pending"}'),
    "repo": Target(ROOT / "specs" / "petstore.yaml", ROOT / "handlers",
                   ROOT / "specs" / "petstore.config.yaml", {}, range(1, 4),
                   b'{"name":"Rex","breed":"Poodle"}'),
}


def _request(method: str, target: str, body: bytes = b"") -> bytes:
    head = b"%s %s HTTP/1.1\r\nHost: %s\r\nX-API-Key: %s\r\n" % (
        method.encode(), target.encode(), _HOST, _API_KEY)
    if body:
        head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
    return head + b"\r\n" + body


def _cases(target: Target) -> dict[str, list[bytes]]:
    """Return each case's requests (cycled by the timing loop)."""
    kinds = {"get_pet": [_request("GET", "/pets/1")],
             "list": [_request("GET", "/pets?limit=10")],
             "post": [_request("POST", "/pets", target.post_body)]}
    rng = random.Random(_SEED)
    deck = [_request("GET", f"/pets/{rng.choice(target.pet_ids)}")
            for _ in range(round(DECK_SIZE * MIX_SHARES["get_pet"]))]
    deck += kinds["list"] * round(DECK_SIZE * MIX_SHARES["list"])
    deck += kinds["post"] * round(DECK_SIZE * MIX_SHARES["post"])
    rng.shuffle(deck)
    return {**kinds, "mix": deck}


class _Socket:
    """What `Connection` uses of its socket on this path: `send`, kept in `sent` (the engine
    writes to the real socket under gevent's, ``_sock``: here the same object)."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self._sock = self

    def send(self, data: bytes) -> int:
        self.sent.append(bytes(data))
        return len(data)

    def recv(self, size: int) -> bytes:
        raise AssertionError("the benchmark feeds the connection itself: nothing reads")


def _engine_server(app: App) -> HttptoolsServer:
    """Return the engine's server for `app`, built as `brrt serve` builds it, never serving."""
    settings = app.settings
    server = HttptoolsServer(("127.0.0.1", 0), app, pool=Pool(settings.max_connections),
                             keepalive_timeout_s=settings.keepalive_timeout_s,
                             header_timeout_s=DEFAULT_HEADER_TIMEOUT_S,
                             stall_timeout_s=settings.keepalive_timeout_s,
                             max_body_bytes=settings.max_body_bytes, server_name="127.0.0.1")
    # NOTE: started once (and stopped) for its base_environ, made by `start` as for every
    # real connection; nothing connects meanwhile.
    server.start()
    server.stop()
    return server


def _serving(server: HttptoolsServer, sock: _Socket) -> Callable[[bytes], None]:
    """Return `serve(data)`: one whole request through one keep-alive connection.

    NOTE: the engine's internals this benchmark relies on, all here: feed the parser
    (`_feed`), take the parsed request (`_queue`), answer it (`_respond`).
    """
    conn = Connection(server, sock, ("127.0.0.1", 50000))  # type: ignore[arg-type]
    queue = conn._queue

    def serve(data: bytes) -> None:
        conn._feed(data)
        if len(queue) != 1 or not conn._respond(queue.pop(0)):
            raise SystemExit(f"the connection did not stay open after {data[:40]!r}: "
                             f"{b''.join(sock.sent)[-300:]!r}")
    return serve


def _check(request: bytes, answer: bytes) -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = head[9:12]
    try:
        json.loads(body)
    except ValueError:
        status = b"a body that is not JSON: " + status
    if status not in (b"200", b"201"):
        raise SystemExit(f"{request.split(b' HTTP')[0].decode()} answered {status.decode()}:"
                         f"\n{answer[:600].decode(errors='replace')}")


def _round(serve: Callable[[bytes], None], requests: list[bytes], count: int,
           sock: _Socket) -> tuple[float, float]:
    sock.sent.clear()
    feed = itertools.islice(itertools.cycle(requests), count)
    wall, cpu = time.perf_counter(), time.process_time()
    for data in feed:
        serve(data)
    return ((time.perf_counter() - wall) / count * 1e6,
            (time.process_time() - cpu) / count * 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000, help="per round and case")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--case", action="append", choices=CASES,
                        help="a case to run (repeatable; default: all)")
    parser.add_argument("--target", choices=sorted(TARGETS),
                        default="bench" if TARGETS["bench"].spec.exists() else "repo",
                        help="the shared benchmark's pet store (default when ../shared/bench "
                             "is beside the checkout) or the repository's own")
    parser.add_argument("--spec", type=Path, help="default: the target's")
    parser.add_argument("--handlers", type=Path, help="default: the target's")
    parser.add_argument("--show", action="store_true", help="print each case's first answer")
    args = parser.parse_args()
    target = TARGETS[args.target]
    app = create_app(args.spec or target.spec, str(args.handlers or target.handlers),
                     environ={**os.environ, **target.environ}, config_file=target.config_file)
    try:
        _run(app, target, args)
    finally:
        app.stop(1)


def _run(app: App, target: Target, args: argparse.Namespace) -> None:
    sock = _Socket()
    serve = _serving(_engine_server(app), sock)
    cases = _cases(target)
    medians: dict[str, float] = {}
    for name in args.case or CASES:
        requests = cases[name]
        for index, data in enumerate(requests):  # a warm-up pass, every answer checked
            sock.sent.clear()
            serve(data)
            _check(data, b"".join(sock.sent))
            if args.show and index == 0:
                print(b"".join(sock.sent).decode(errors="replace"))
        rounds = [_round(serve, requests, args.requests, sock) for _ in range(args.rounds)]
        walls, cpus = [r[0] for r in rounds], [r[1] for r in rounds]
        medians[name] = statistics.median(cpus)
        print(f"{name:8} cpu median {medians[name]:6.2f} µs (min {min(cpus):6.2f})"
              f"  wall median {statistics.median(walls):6.2f} µs")
    if all(name in medians for name in MIX_SHARES):
        weighted = sum(share * medians[name] for name, share in MIX_SHARES.items())
        print(f"weighted cpu {weighted:6.2f} µs (the three cases at the mix's shares)")


if __name__ == "__main__":
    main()
