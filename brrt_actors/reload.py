"""Hot reload in one process (``brrt serve --reload``): a changed spec, config or handler
swaps in a new version of the app without losing a request.

A `Reloader` watches what the served version was built from (`brrt_actors.watching`). On a
change it re-imports the changed handler modules, then builds the new version with
`brrt_actors.build.build_app` (``previous=`` the app served), in a greenlet of its own: no
request builds anything. If the build fails, every problem is logged, /ready shows them (and
stays 200) and the old version goes on serving. If it succeeds, the new actors start, the app
swaps its routes and pipelines in one assignment (`App.replace_version`), and what only the
old version used is drained in the background: the actors of removed operations, and of
operations whose handler or actor settings changed, finish their mailboxes within the grace
period; then the old security providers and stage resources are released. Operations whose
handler and settings did not change keep their actors, mailboxes and requests in flight.
Metrics count the reloads (``brrt_reloads_total{result}``).

Under ``--workers N`` there is no in-process reload: the arbiter sends itself SIGHUP
(`brrt_actors.watching.watch_for_arbiter`), and gunicorn replaces the workers gracefully.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

import gevent
from gevent import monkey

from brrt_actors.errors import StartError
from brrt_actors.watching import WatchSet, describe, watch_changes

if TYPE_CHECKING:
    from threading import Event

    from brrt_actors.app import App, RetiredVersion

__all__ = ["Reloader", "reimport_changed"]

logger = logging.getLogger("brrt_actors.reload")

#: Settings the listening server took at start: a reload cannot change them.
RESTART_SETTINGS: Final = ("host", "port", "max_connections", "keepalive_timeout_s",
                           "max_body_bytes", "http_engine", "workers", "metrics")
# The problems /ready shows of a failed reload, at most.
_SHOWN_PROBLEMS: Final = 50


def _original_event() -> Event:
    # NOTE: watchfiles polls it from an OS thread of the hub's pool: a plain threading.Event.
    event_class: Any = monkey.get_original("threading", "Event")
    event: Event = event_class()
    return event


def _modules_from(sources: Iterable[Path]) -> list[ModuleType]:
    roots = [path.resolve() for path in sources]
    found = []
    for module in list(sys.modules.values()):
        origin = getattr(module, "__file__", None)
        if not origin:
            continue
        path = Path(origin).resolve()
        if any(path == root or root in path.parents for root in roots):
            found.append(module)
    return found


def reimport_changed(changed: Iterable[Path], sources: Iterable[Path]) -> list[str]:
    """Re-import the handler modules whose files changed; return their names.

    Modules of the handlers (under `sources`) that hold functions of a changed module (a
    package's ``__init__`` that re-exports them) are re-imported after it, so that no stale
    function stands beside the new one. Modules whose files did not change keep their
    function objects, so that the actors of their operations are kept.

    Raises:
        Exception: whatever importing a changed module raised (a syntax error ...).
    """
    changed = {path.resolve() for path in changed if path.suffix == ".py"}
    importlib.invalidate_caches()  # NOTE: a new module file must be found by the next build
    if not changed:
        return []
    modules = _modules_from(sources)
    first = [m for m in modules if Path(m.__file__ or "").resolve() in changed]
    names = {m.__name__ for m in first}
    after = [m for m in modules if m.__name__ not in names and any(
        inspect.isfunction(value) and value.__module__ in names for value in vars(m).values())]
    for module in sorted(first, key=lambda m: -m.__name__.count(".")) + after:
        cached = importlib.util.cache_from_source(module.__file__ or "")
        # NOTE: bytecode is checked against the source's mtime in whole seconds; two saves
        # within one second could otherwise bring back the older code.
        Path(cached).unlink(missing_ok=True)
        importlib.reload(module)
    return [m.__name__ for m in first + after]


class Reloader:
    """Watch what `app` was built from; on a change, build the new version and swap it in.

    Args:
        app: the app served (started).
        build: builds the next version from the app served, as
            ``build_app(..., previous=app)`` does; raises `StartError` when it cannot.
        watched: returns what to watch for the version now served.
        grace_s: how long retired actors may take to drain (default: the app's
            ``shutdown_grace_s``).
    """

    def __init__(self, app: App, build: Callable[[App], App], watched: Callable[[], WatchSet],
                 *, grace_s: float | None = None) -> None:
        self.app = app
        self._build = build
        self._watched = watched
        self._grace_s = grace_s
        self._stop = _original_event()
        self._watcher: gevent.Greenlet[[], None] | None = None
        self.status: dict[str, Any] = {"watching": True, "reloads": 0, "failed": 0,
                                       "error": None}
        app.reload_status = self.status
        if app.metrics is not None:
            app.metrics.watch_reloads()

    def start(self) -> Reloader:
        """Start watching (in a greenlet; the file system is watched in a pool thread)."""
        self._watcher = gevent.spawn(self._watch_forever)
        self._watcher.name = "brrt-reload-watch"
        return self

    def stop(self, grace_s: float = 0.0) -> None:
        """Stop watching (a server's on_stop hook: takes the seconds of grace left)."""
        self._stop.set()
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.join(timeout=2.0)
            watcher.kill(block=False)

    def _watch_forever(self) -> None:
        pool = gevent.get_hub().threadpool
        while not self._stop.is_set():
            watched = self._watched()
            changes = watch_changes(watched, self._stop)
            try:
                while not self._stop.is_set():
                    batch = pool.apply(next, (changes, None))
                    if batch is None:
                        return
                    self.reload(batch, watched)
                    if self._watched() != watched:
                        break  # NOTE: watch the files the new version was built from
            finally:
                changes.close()

    def reload(self, changed: Iterable[Path] = (), watched: WatchSet | None = None) -> bool:
        """Build the new version and swap it in; return False (old one serving) on failure."""
        changed = list(changed)
        started = time.perf_counter()
        logger.info("reloading: %s changed", describe(changed) or "nothing")
        sources = (watched or self._watched()).source_paths()
        try:
            reimported = reimport_changed(changed, sources)
            if reimported:
                logger.info("re-imported %s", ", ".join(reimported))
            new = self._build(self.app)
        except StartError as ex:
            self._failed(ex.problems)
            return False
        except Exception as ex:
            logger.exception("reload failed: the previous version goes on serving")
            self._failed([("", f"{type(ex).__name__}: {ex}")])
            return False
        self._swap(new, started)
        return True

    def _failed(self, problems: list[tuple[str, str]]) -> None:
        app = self.app
        logger.error("reload failed, %d problem(s); %s %s goes on serving:\n%s",
                     len(problems), app.spec.title, app.spec.version,
                     "\n".join(f"  {where or '-'}: {message}" for where, message in problems))
        self.status["failed"] += 1
        self.status["error"] = {
            "at": _now(), "problems": [{"where": where, "message": message}
                                       for where, message in problems[:_SHOWN_PROBLEMS]]}
        if app.metrics is not None:
            app.metrics.count_reload(False)
            app.metrics.retain((op.operation_id, op.method) for op in app.spec.operations)

    def _swap(self, new: App, started: float) -> None:
        app = self.app
        fresh = [actor for actor in new.actors if not actor.workers]
        for actor in fresh:
            actor.start()
        _warn_restart_settings(app, new)
        before = {(op.method, op.path) for op in app.spec.operations}
        after = {(op.method, op.path) for op in new.spec.operations}
        retired = app.replace_version(new)
        old_actors = set(retired.actors)
        kept = sum(1 for actor in new.actors if actor in old_actors)
        self.status["reloads"] += 1
        self.status["error"] = None
        if app.metrics is not None:
            app.metrics.count_reload(True)
        logger.info("reloaded %s %s in %.0f ms: %d operation(s) added, %d removed, %d actor(s) "
                    "kept, %d started", new.spec.title, new.spec.version,
                    (time.perf_counter() - started) * 1000, len(after - before),
                    len(before - after), kept, len(fresh))
        gevent.spawn(self._retire, retired, set(new.actors)).name = "brrt-reload-drain"

    def _retire(self, retired: RetiredVersion, serving: set[Any]) -> None:
        grace = self.app.settings.shutdown_grace_s if self._grace_s is None else self._grace_s
        leaving = [actor for actor in retired.actors if actor not in serving]
        gevent.joinall([gevent.spawn(actor.stop, grace) for actor in leaving],
                       timeout=grace + 2.0)
        for provider in retired.providers:
            try:
                provider.close()
            except Exception:
                logger.exception("closing a retired security provider failed")
        for release in retired.releases:
            try:
                release()
            except Exception:
                logger.exception("releasing a retired version's resource failed")


def _warn_restart_settings(app: App, new: App) -> None:
    changed = [name for name in RESTART_SETTINGS
               if getattr(app.settings, name) != getattr(new.settings, name)]
    if changed:
        logger.warning("changed settings need a restart to take effect: %s (the server "
                       "keeps the values it started with)", ", ".join(changed))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
