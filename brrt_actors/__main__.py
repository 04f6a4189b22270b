"""Entry point: `python -m brrt_actors ...` and the `brrt` console script."""
from typing import Any

from gevent import events as _events
from gevent import monkey


def _patch_all() -> None:
    # PERF: patch_all sends ~25 events and looks up gevent's plugin entry points for each,
    # every look-up reading the metadata of every installed distribution: ~90 ms of a
    # ~130 ms patch_all with 50 distributions (benchmarks/start_time.py). Here the entry
    # points are read once; the plugins still get every event, as gevent would call them.
    events: Any = _events  # NOTE: gevent's stubs do not declare its plugin machinery
    original = getattr(events, "notify_and_call_entry_points", None)
    if original is None:  # NOTE: another gevent: do it its way
        monkey.patch_all()
        return
    from importlib import metadata

    installed = metadata.entry_points()

    def notify_and_call_entry_points(event: Any) -> None:
        events.notify(event)
        for plugin in installed.select(group=event.ENTRY_POINT_NAME):
            plugin.load()(event)

    events.notify_and_call_entry_points = notify_and_call_entry_points
    try:
        monkey.patch_all()
    finally:
        events.notify_and_call_entry_points = original


# NOTE: first, before anything imports socket, ssl or threading (DESIGN.md, gevent discipline).
_patch_all()

import sys  # noqa: E402


def main() -> None:
    """Run the brrt command line."""
    from brrt_actors.cli import run

    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
