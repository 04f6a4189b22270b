"""The handler of benchmarks/overload.yaml: 10 ms of waiting, as for a database call."""
from __future__ import annotations

import time
from typing import Any

from brrt_actors import Request

WORK_S = 0.010


def work(request: Request) -> dict[str, Any]:
    time.sleep(WORK_S)  # monkey-patched: a gevent sleep, the worker is free for others
    return {"ok": True}
