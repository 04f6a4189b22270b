"""What response compression costs per request when on (and that off costs nothing).

The whole in-process pipeline of the pet store (as benchmarks/pipeline.py) for
`GET /pets?limit=20` (~1.6 KB of JSON, 20 pets added first) and `GET /pets/{id}` (~100
bytes, below ``min_bytes``), with compression off and on (``BRRTR_COMPRESSION=on``,
defaults: min_bytes 256, gzip level 6, brotli quality 4), the client sending no
``Accept-Encoding``, ``gzip``, or ``br``. The rounds of every case are interleaved, so that the
machine's drift touches all of them alike. Prints the median (and min) process CPU µs per
request, the difference to "off", and the body's size.

    taskset -c 1 .venv/bin/python benchmarks/compression.py [--requests 5000] [--rounds 7]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    apps = {state: create_app(ROOT / "specs" / "petstore.yaml", str(ROOT / "handlers"),
                              environ={"BRRTR_COMPRESSION": state},
                              config_file=ROOT / "specs" / "petstore.config.yaml")
            for state in ("off", "on")}
    sizes: dict[str, int] = {}

    def request(name: str, app: Any, path: str, query: str, accept: str | None
                ) -> Callable[[], None]:
        def start_response(status: str, headers: list[tuple[str, str]]) -> None:
            assert status.startswith("200"), status

        def make() -> dict[str, Any]:
            environ = _environ("GET", path, query)
            if accept:
                environ["HTTP_ACCEPT_ENCODING"] = accept
            return environ

        sizes[name] = len(b"".join(app(make(), start_response)))

        def call() -> None:
            b"".join(app(make(), start_response))
        return call

    for app in apps.values():
        for n in range(20):
            body = f'{{"name": "Pet {n}", "breed": "Poodle", "tags": ["calm"]}}'.encode()
            b"".join(app(_environ("POST", "/pets", "", body), lambda *a: None))
    cases: dict[str, Callable[[], None]] = {}
    for target, path, query in (("list 20", "/pets", "limit=20"), ("one pet", "/pets/1", "")):
        for state, accept in (("off", "gzip"), ("on", None), ("on", "gzip"), ("on", "br")):
            name = f"{target}, {state}, {accept or 'no Accept-Encoding'}"
            cases[name] = request(name, apps[state], path, query, accept)
    cpus: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, call in cases.items():
            start = time.process_time()
            for _ in range(args.requests):
                call()
            cpus[name].append((time.process_time() - start) / args.requests * 1e6)
    for name, values in cpus.items():
        target = name.split(",", 1)[0]
        base = statistics.median(cpus[f"{target}, off, gzip"])
        median = statistics.median(values)
        print(f"{name:40} cpu median {median:6.1f} µs (min {min(values):6.1f})  "
              f"{median - base:+6.1f} µs  body {sizes[name]:5d} B")
    for app in apps.values():
        app.stop(1)


if __name__ == "__main__":
    main()
