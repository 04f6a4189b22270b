"""`$ref` resolution: JSON pointers, the spec's own document and the local files it points to.

A place in the document set is a `Location`: (absolute file path, JSON pointer). Pointers are
kept escaped (RFC 6901: ``~0`` for ``~``, ``~1`` for ``/``), exactly as they appear after the
``#`` of a ``$ref`` once percent-decoded.
"""
from __future__ import annotations

import os
from typing import Any
from urllib.parse import unquote, urlsplit

from brrt_actors.errors import SpecError
from brrt_actors.spec.problems import Problems
from brrt_actors.spec.reader import load_spec_document

Location = tuple[str, str]  # (absolute file path, escaped JSON pointer; "" is the whole file)


def escape(token: str) -> str:
    """Return `token` escaped for use in a JSON pointer."""
    return token.replace("~", "~0").replace("/", "~1")


def unescape(token: str) -> str:
    """Return the key named by the escaped JSON pointer `token`."""
    return token.replace("~1", "/").replace("~0", "~")


def child(loc: Location, *keys: str | int) -> Location:
    """Return the location of ``loc[keys[0]][keys[1]]...``."""
    pointer = loc[1]
    for key in keys:
        pointer += "/" + escape(str(key))
    return loc[0], pointer


class Documents:
    """The spec's document plus every local file its `$ref`s reach, each read once.

    Problems (unresolvable refs, unreadable files) are recorded in `problems` with the
    pointer of the `$ref` that caused them; the methods then answer None.
    """

    def __init__(self, root_path: str, root: Any, problems: Problems) -> None:
        self.root_path = os.path.abspath(root_path)
        self.problems = problems
        self._docs: dict[str, Any] = {self.root_path: root}
        self._failed: set[str] = set()

    @property
    def root(self) -> Location:
        return self.root_path, ""

    def where(self, loc: Location) -> str:
        """Return how a problem at `loc` is shown: its pointer, prefixed by any other file."""
        path, pointer = loc
        if path == self.root_path:
            return pointer
        rel = os.path.relpath(path, os.path.dirname(self.root_path))
        return f"{rel}#{pointer}"

    def get(self, loc: Location) -> Any:
        """Return the value at `loc` (which must exist: it came from `resolve`)."""
        node = self._docs[loc[0]]
        for token in _tokens(loc[1]):
            node = node[int(token)] if isinstance(node, list) else node[unescape(token)]
        return node

    def resolve(self, ref: Any, at: Location) -> tuple[Any, Location] | None:
        """Return (target, location) of the ``$ref`` value `ref` found in the object at `at`."""
        where = self.where(child(at, "$ref"))
        if not isinstance(ref, str):
            self.problems.error(where, "$ref must be a string (a URI such as '#/components/...')")
            return None
        file_part, _, fragment = ref.partition("#")
        path = self._file_of(file_part, at, where, ref)
        if path is None:
            return None
        doc = self._load(path, where, ref)
        if doc is None:
            return None
        pointer = unquote(fragment)
        if pointer and not pointer.startswith("/"):
            self.problems.error(where, f"$ref '{ref}': plain-name fragments ($anchor) are not "
                                       "supported; use a JSON pointer such as '#/components/...'")
            return None
        node = doc
        walked = ""
        for token in _tokens(pointer):
            key = unescape(token)
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                inside = walked or "the document root"
                self.problems.error(where, f"$ref '{ref}' cannot be resolved: there is no "
                                           f"'{key}' under {inside}; fix the reference or add it")
                return None
            walked += "/" + token
        return node, (path, pointer)

    def deref(self, node: Any, loc: Location) -> tuple[Any, Location] | None:
        """Follow `node`'s ``$ref`` chain (if any) to the object it finally names."""
        seen: set[Location] = set()
        while isinstance(node, dict) and "$ref" in node:
            if loc in seen:
                self.problems.error(self.where(child(loc, "$ref")),
                                    "$ref cycle: the reference leads back to itself")
                return None
            seen.add(loc)
            found = self.resolve(node["$ref"], loc)
            if found is None:
                return None
            node, loc = found
        return node, loc

    def _file_of(self, file_part: str, at: Location, where: str, ref: str) -> str | None:
        if not file_part:
            return at[0]
        parts = urlsplit(file_part)
        if parts.scheme == "file":
            return os.path.normpath(unquote(parts.path))
        if parts.scheme or parts.netloc:
            self.problems.error(where, f"$ref '{ref}' points to a remote document; only local "
                                       "files are supported (save it next to the spec and use "
                                       "a relative path)")
            return None
        base = os.path.dirname(at[0])
        return os.path.normpath(os.path.join(base, unquote(parts.path)))

    def _load(self, path: str, where: str, ref: str) -> Any:
        if path in self._docs:
            return self._docs[path]
        if path in self._failed:
            return None
        try:
            doc = load_spec_document(path, require_mapping=False)
        except SpecError as ex:
            self._failed.add(path)
            self.problems.error(where, f"$ref '{ref}': {ex}")
            return None
        self._docs[path] = doc
        return doc


def _tokens(pointer: str) -> list[str]:
    return pointer.split("/")[1:] if pointer else []
