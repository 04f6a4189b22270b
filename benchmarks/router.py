"""Route lookup cost with 10, 100 and 1000 routes (it must not grow with the count).

    taskset -c 0 python benchmarks/router.py --fast -o /tmp/router.json
"""
from __future__ import annotations

import pyperf

from brrt_actors.router import Router


def build(count: int) -> Router[int]:
    router: Router[int] = Router()
    for i in range(count):
        # A realistic mix: static collections, items by id, nested items.
        router.add("GET", f"/api/r{i}", i)
        router.add("GET", f"/api/r{i}/{{id}}", i)
        router.add("GET", f"/api/r{i}/{{id}}/children/{{child}}", i)
    router.finish(lambda declared: ["OPTIONS"])
    return router


def main() -> None:
    runner = pyperf.Runner()
    for count in (10, 100, 1000):
        router = build(count // 3 or 1)
        middle = count // 6
        runner.bench_func(f"router lookup /api/rN/{{id}}, {count} routes", router.lookup,
                          f"/api/r{middle}/12345")
        runner.bench_func(f"router lookup nested, {count} routes", router.lookup,
                          f"/api/r{middle}/12345/children/9")
        runner.bench_func(f"router miss (404), {count} routes", router.lookup,
                          "/api/nowhere/at/all")


if __name__ == "__main__":
    main()
