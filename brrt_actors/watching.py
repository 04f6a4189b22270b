"""What a hot reload watches, and the watching (``brrt serve --reload``).

`WatchSet` names the files a served version was built from: the spec, the local files its
``$ref``s reach, the config file, and the handlers' ``.py`` files. `watch_changes` waits for
any of them to change with `watchfiles` (the ``reload`` extra), in the calling OS thread; the
in-process reload (`brrt_actors.reload`) runs it in a thread of the gevent hub's pool, the
gunicorn arbiter in a thread of its own. `spec_summary` is what /ready says of the spec
served. Nothing here imports gevent: the arbiter uses it unpatched.
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import signal
import threading
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import ujson

from brrt_actors.errors import ConfigError, SpecError
from brrt_actors.spec.reader import load_spec_document

if TYPE_CHECKING:
    from brrt_actors.spec import Spec

__all__ = ["WatchSet", "describe", "referenced_files", "require_watchfiles", "spec_digest",
           "spec_summary", "watch_changes", "watch_for_arbiter", "watch_set"]

logger = logging.getLogger("brrt_actors.reload")

# Folders inside a handlers package that hold no source worth a reload.
_SKIPPED_DIRS = frozenset({"__pycache__", ".git", ".mypy_cache", ".pytest_cache", ".ruff_cache"})


def referenced_files(spec_path: str | Path, document: Any | None = None) -> list[Path]:
    """Return the spec's file and every local file its ``$ref``s reach, each once.

    Files that cannot be read are left out (the build that reads them says why).
    """
    root = Path(spec_path).resolve()
    found: dict[Path, None] = {root: None}
    pending: list[tuple[Path, Any]] = [(root, document)]
    while pending:
        path, node = pending.pop()
        if node is None:
            try:
                node = load_spec_document(path, require_mapping=False)
            except SpecError:
                continue
        for ref in _refs(node):
            file_part = ref.partition("#")[0]
            if not file_part:
                continue
            parts = urlsplit(file_part)
            if parts.scheme == "file":
                target = Path(unquote(parts.path))
            elif parts.scheme or parts.netloc:
                continue
            else:
                target = path.parent / unquote(parts.path)
            target = Path(os.path.normpath(target))
            if target not in found:
                found[target] = None
                pending.append((target, None))
    return list(found)


def _refs(node: Any) -> Iterator[str]:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str):
                yield ref
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def spec_digest(spec: Spec) -> str:
    """Return the SHA-256 (hex) of what `spec` was loaded from: its document and the files
    it ``$ref``s (the document as read, canonical JSON; the other files' bytes)."""
    digest = hashlib.sha256(ujson.dumps(spec.document, sort_keys=True).encode())
    if os.path.isfile(spec.source):
        for path in referenced_files(spec.source, spec.document)[1:]:
            try:
                digest.update(path.read_bytes())
            except OSError:
                continue
    return digest.hexdigest()


def spec_summary(spec: Spec) -> dict[str, str]:
    """Return what /ready says of the spec served: title, version, content hash."""
    return {"title": spec.title, "version": spec.version, "sha256": spec_digest(spec)}


@dataclass(frozen=True, slots=True)
class WatchSet:
    """The files a version was built from, and the folders to watch for them.

    Attributes:
        files: the spec, the files it ``$ref``s, the config file.
        source_dirs: folders whose ``.py`` files (at any depth) are the handlers.
        source_files: a handlers module given as one file.
    """

    files: frozenset[Path]
    source_dirs: frozenset[Path] = frozenset()
    source_files: frozenset[Path] = field(default_factory=frozenset)

    def folders(self) -> list[Path]:
        """The folders to watch (without recursion): each file's, and every handlers folder."""
        folders = {path.parent for path in (*self.files, *self.source_files)}
        for top in self.source_dirs:
            for current, names, _ in os.walk(top):
                names[:] = [n for n in names if n not in _SKIPPED_DIRS]
                folders.add(Path(current))
        return sorted(folder for folder in folders if folder.is_dir())

    def concerns(self, path: str | Path) -> bool:
        """Tell whether a change to `path` may change the app built from these files."""
        path = Path(os.path.normpath(os.path.abspath(path)))
        if path in self.files or path in self.source_files:
            return True
        return path.suffix == ".py" and any(top in path.parents for top in self.source_dirs)

    def source_paths(self) -> list[Path]:
        """Every handlers file or folder (to tell which loaded modules came from them)."""
        return [*self.source_dirs, *self.source_files]


def _handlers_location(handlers: str | Path) -> tuple[Path | None, Path | None]:
    """Return (package folder, module file) of a handlers argument (one of them)."""
    text = str(handlers)
    path = Path(text)
    if isinstance(handlers, Path) or "/" in text or text.endswith(".py") or path.exists():
        path = path.resolve()
        return (path, None) if path.is_dir() else (None, path)
    try:
        found = importlib.util.find_spec(text)
    except (ImportError, ValueError):
        return None, None
    if found is None or found.origin is None:
        return None, None
    if found.submodule_search_locations:
        return Path(found.origin).resolve().parent, None
    return None, Path(found.origin).resolve()


def watch_set(spec: str | Path, config_file: str | Path | None = None,
              handlers: str | Path | None = None) -> WatchSet:
    """Return what a reload of `spec` (with `config_file` and `handlers`) depends on."""
    files = set(referenced_files(spec))
    if config_file is not None:
        files.add(Path(os.path.abspath(config_file)))
    folder = module = None
    if handlers is not None:
        folder, module = _handlers_location(handlers)
    return WatchSet(frozenset(files), frozenset({folder} if folder else ()),
                    frozenset({module} if module else ()))


def _watchfiles() -> Any:
    try:
        import watchfiles
    except ImportError as ex:
        raise ConfigError([("--reload", "needs the watchfiles package: pip install "
                                        "'brrt_actors[reload]' (or pip install watchfiles)")]
                          ) from ex
    return watchfiles


def require_watchfiles() -> None:
    """Check that hot reload can run.

    Raises:
        ConfigError: watchfiles is not installed (the message says how to install it).
    """
    _watchfiles()


def watch_changes(watched: WatchSet, stop: threading.Event, *, step_ms: int = 50,
                  debounce_ms: int = 400) -> Generator[set[Path], None, None]:
    """Yield, in the calling OS thread, the watched files that changed, a batch at a time.

    Returns when `stop` is set (it is looked at every few tens of milliseconds). A batch
    gathers the changes made within `debounce_ms` (an editor's save, a `git checkout`).
    """
    watchfiles = _watchfiles()
    # NOTE: watchfiles logs every batch at INFO, unrelated files too; the reload logs its own.
    logging.getLogger("watchfiles.main").setLevel(logging.WARNING)
    folders = watched.folders()
    if not folders:
        return
    for changes in watchfiles.watch(*folders, recursive=False, stop_event=stop,
                                    step=step_ms, debounce=debounce_ms, rust_timeout=500,
                                    yield_on_timeout=False, raise_interrupt=False):
        relevant = {Path(path) for _, path in changes if watched.concerns(path)}
        if relevant:
            yield relevant


def describe(paths: Iterable[Path]) -> str:
    """Return changed files as a log line shows them."""
    cwd = Path.cwd()
    shown = []
    for path in sorted(paths):
        try:
            shown.append(str(path.relative_to(cwd)))
        except ValueError:
            shown.append(str(path))
    return ", ".join(shown)


def watch_for_arbiter(watched: WatchSet) -> Callable[[], None]:
    """Send SIGHUP to this process (gunicorn's arbiter) whenever a watched file changes.

    Runs in a daemon thread (the arbiter is not patched by gevent); returns a function that
    stops it. The arbiter checks the new version in a subprocess before replacing its
    workers (`brrt_actors.entrypoints.gunicorn.application`).
    """
    stop = threading.Event()

    def run() -> None:
        for changed in watch_changes(watched, stop):
            logger.info("reloading: %s changed; sending SIGHUP to the arbiter",
                        describe(changed))
            os.kill(os.getpid(), signal.SIGHUP)

    threading.Thread(target=run, name="brrt-reload-watch", daemon=True).start()
    return stop.set
