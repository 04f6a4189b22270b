"""Handlers of tests/specs/slow.yaml: one that takes its time, one that does not."""
from __future__ import annotations

import logging
import time
from typing import Any

from brrt_actors import Request

logger = logging.getLogger("fx_slow")


def slow(request: Request) -> dict[str, Any]:
    seconds = request.query["seconds"]
    logger.warning("slow request %s started", request.request_id)  # tests wait for this line
    time.sleep(seconds)  # monkey-patched: a gevent sleep
    return {"slept": seconds}


def fast(request: Request) -> dict[str, Any]:
    return {"ok": True}
