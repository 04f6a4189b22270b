"""The garbage collector's pace in a serving process (`Settings.gc_threshold`).

CPython starts a young-generation collection every 700 net allocations of tracked objects
(dicts, lists, instances...). A server holding a few dozen requests at once keeps more than
that alive, so at the default every few requests start a collection that finds little, and
the survivors drive the older generations into full collections (~10 ms each with the spec,
validators and handlers in the heap): CPU lost, and a p99 several times the p50 under load.
A larger first threshold keeps the young generation a young generation (measured in the
commit that brought it and in the README's Performance section).
"""
from __future__ import annotations

import gc
import logging

__all__ = ["tune_collector"]

_log = logging.getLogger("brrt_actors.server")


def tune_collector(young_threshold: int) -> None:
    """Collect the young generation after `young_threshold` net allocations; 0: leave it.

    The older generations keep their thresholds. Process-wide: called by the entry points
    that serve (``brrt serve``, the gunicorn worker), never by building an app.
    """
    if young_threshold <= 0:
        return
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(young_threshold, older, oldest)
    _log.debug("garbage collector: young generation every %d allocations", young_threshold)
