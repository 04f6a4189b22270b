"""The whole in-process pipeline of the pet store, without sockets.

Routing, the API-key check, parameter decoding and validation, the actor hop, the handler,
response validation and JSON encoding, for `GET /pets/{id}`, `GET /pets?limit=10` and
`POST /pets`, called as brrt's HTTP engine calls the app (its direct entry, `App.respond`;
``--wsgi``: as any WSGI server calls it). Prints the median (and min) µs per request over
several rounds, in wall time and in process CPU time.

    taskset -c 0 .venv/bin/python benchmarks/pipeline.py [--requests 20000] [--rounds 7] [--wsgi]

``--cors`` turns CORS on (one allowed origin) and sends that ``Origin`` with every request:
the difference from a run without it is what CORS costs per request.

(pyperf's worker processes do not mix with gevent's hub, hence the plain timing loop.)
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from _wsgi import environ as _environ  # noqa: E402

from brrt_actors import create_app  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _round(call: Callable[[], None], count: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        call()
    return ((time.perf_counter() - wall) / count * 1e6,
            (time.process_time() - cpu) / count * 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--cors", action="store_true",
                        help="CORS on, and an allowed Origin on every request")
    parser.add_argument("--wsgi", action="store_true",
                        help="call the app through WSGI (start_response) instead of its direct "
                             "entry")
    args = parser.parse_args()
    origin = "https://app.example"
    app = create_app(ROOT / "specs" / "petstore.yaml", str(ROOT / "handlers"),
                     environ={"BRRTR_CORS_ORIGINS": origin} if args.cors else {},
                     config_file=ROOT / "specs" / "petstore.config.yaml")
    make_environ: Callable[..., dict[str, Any]] = _environ
    if args.cors:
        def make_environ(*request: Any) -> dict[str, Any]:
            return {**_environ(*request), "HTTP_ORIGIN": origin}
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        statuses.append(status)

    def request(method: str, path: str, query: str = "",
                body: bytes = b"") -> Callable[[], None]:
        if args.wsgi:
            def call() -> None:
                b"".join(app(make_environ(method, path, query, body), start_response))
        else:
            def call() -> None:
                status, _, chunks = app.respond(make_environ(method, path, query, body))
                statuses.append(str(status))
                b"".join(chunks)
        return call

    cases = {
        "GET /pets/{id}": request("GET", "/pets/1"),
        "GET /pets?limit=10": request("GET", "/pets", "limit=10"),
        "POST /pets": request("POST", "/pets", body=b'{"name": "Rex", "breed": "Poodle"}'),
    }
    for name, call in cases.items():
        statuses.clear()
        call()
        assert statuses[0][:1] == "2", f"{name} answered {statuses[0]}"
        rounds = [_round(call, args.requests) for _ in range(args.rounds)]
        walls, cpus = [r[0] for r in rounds], [r[1] for r in rounds]
        print(f"{name:22} wall median {statistics.median(walls):6.1f} µs (min {min(walls):6.1f})"
              f"  cpu median {statistics.median(cpus):6.1f} µs (min {min(cpus):6.1f})")
    app.stop(1)


if __name__ == "__main__":
    main()
