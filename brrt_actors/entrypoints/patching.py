"""gevent's monkey-patching, as the entry point does it: first, and without slowing the start.

`monkey.patch_all()` sends about 25 events, and for each gevent looks up its plugin entry
points (``gevent.plugins.*``) through `importlib.metadata`: importing that machinery and
reading every installed distribution's metadata, once per event.

# PERF: measured on the pet store's start (benchmarks/start_time.py, 2-CPU VM):
#   gevent's own look-ups: ~90 ms of a ~130 ms patch_all (50 distributions installed);
#   importlib.metadata once for all events: import 20-34 ms + one read 5-8 ms;
#   reading the dist-info entry_points.txt files here: ~2 ms.
# The plugins found are called exactly as gevent would call them. Wherever a plugin could
# hide from the plain file scan of .dist-info and .egg-info folders (an .egg, an .egg-link,
# a zip on sys.path), the scan gives up and `importlib.metadata` answers, as in gevent.

This module imports nothing that monkey-patching replaces (no socket, ssl, threading).
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from importlib import import_module
from typing import Any

from gevent import events as _events
from gevent import monkey

__all__ = ["patch_all"]

_GROUP_PREFIX = "gevent.plugins."
Plugins = dict[str, list[str]]  # entry point group -> ["module:attribute", ...]


def patch_all() -> None:
    """Run ``gevent.monkey.patch_all()`` with its plugins, looked up once."""
    events: Any = _events  # NOTE: gevent's stubs do not declare its plugin machinery
    original = getattr(events, "notify_and_call_entry_points", None)
    if original is None:  # NOTE: another gevent: do it its way
        monkey.patch_all()
        return
    plugins = _scan_dist_info(sys.path)
    find = _by_scan(plugins) if plugins is not None else _by_metadata()

    def notify_and_call_entry_points(event: Any) -> None:
        events.notify(event)
        for plugin in find(event.ENTRY_POINT_NAME):
            plugin(event)

    events.notify_and_call_entry_points = notify_and_call_entry_points
    try:
        monkey.patch_all()
    finally:
        events.notify_and_call_entry_points = original


def _by_scan(plugins: Plugins) -> Callable[[str], list[Callable[[Any], None]]]:
    def find(group: str) -> list[Callable[[Any], None]]:
        return [_load(value) for value in plugins.get(group, ())]

    return find


def _by_metadata() -> Callable[[str], list[Callable[[Any], None]]]:
    from importlib import metadata

    installed = metadata.entry_points()

    def find(group: str) -> list[Callable[[Any], None]]:
        return [plugin.load() for plugin in installed.select(group=group)]

    return find


def _load(value: str) -> Callable[[Any], None]:
    module_name, _, attribute = value.partition(":")
    loaded: Any = import_module(module_name.strip())
    for part in attribute.strip().split(".") if attribute.strip() else ():
        loaded = getattr(loaded, part)
    plugin: Callable[[Any], None] = loaded
    return plugin


def _scan_dist_info(path: list[str]) -> Plugins | None:
    """Return the gevent plugin entry points of the distributions on `path`.

    None when a place on `path` needs `importlib.metadata` to be read (a zip, an .egg).
    Like `importlib.metadata`, a distribution found twice counts where it is found first.
    """
    plugins: Plugins = {}
    seen: set[str] = set()
    for place in path:
        folder = place or "."
        try:
            names = os.listdir(folder)
        except NotADirectoryError:
            return None  # a zip archive on sys.path
        except OSError:
            continue  # NOTE: absent (python311.zip usually is), or unreadable: nothing there
        for name in names:
            if name.endswith((".egg", ".egg-link")):
                return None
            if name.endswith(".dist-info"):
                stem = name[:-len(".dist-info")]
            elif name.endswith(".egg-info"):
                stem = name[:-len(".egg-info")]  # NOTE: a file instead has no entry points
            else:
                continue
            distribution = stem.partition("-")[0].lower().replace("_", "-")
            if distribution in seen:
                continue
            seen.add(distribution)
            try:
                with open(os.path.join(folder, name, "entry_points.txt"), encoding="utf-8") as file:
                    text = file.read()
            except OSError:
                continue
            if _GROUP_PREFIX in text:
                _parse_entry_points(text, plugins)
    return plugins


def _parse_entry_points(text: str, plugins: Plugins) -> None:
    # The entry_points.txt format: INI sections named by group, "name = module:attr [extras]".
    group = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line[0] == "[" and line[-1] == "]":
            group = line[1:-1].strip()
            continue
        if group.startswith(_GROUP_PREFIX):
            _, sep, value = line.partition("=")
            if sep:
                plugins.setdefault(group, []).append(value.partition("[")[0].strip())
