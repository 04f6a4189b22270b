"""Static files: a folder served under a URL prefix (``brrt serve --static-dir DIR``).

Looked up by the app after the spec's operations and the built-ins, so both win over a file
of the same path. GET and HEAD only. ``<prefix>/`` (and any folder's URL ending in ``/``)
serves the folder's ``index.html``; ``<prefix>`` and a folder's URL without the slash are
redirected to it (301), so that relative links in the page resolve inside the folder. There
is no folder listing.

Every answer carries an ``ETag`` (modification time and size) and ``Last-Modified``; a
matching ``If-None-Match`` (or, without one, an ``If-Modified-Since`` not older than the
file) gets 304. The body is streamed in pieces of at most ``server.static_chunk_bytes``,
never read whole. Content types come from Python's own table (not the machine's
/etc/mime.types, so that every machine answers alike), text ones with ``charset=utf-8``.

The path is checked before the file system sees it: an encoded ``/`` or ``\\``, a ``.`` or
``..`` segment, a NUL or a name that is not UTF-8 gets 400; a hidden name (``.env``,
``.git/``) and a file whose real path (symlinks followed) lies outside the folder get 404, as
a missing file does.
"""
from __future__ import annotations

import mimetypes
import os
import stat
from collections.abc import Callable, Iterator
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import IO, Any, Final
from urllib.parse import quote, unquote_to_bytes

from brrt_actors.builtins import etag_matches
from brrt_actors.errors import ConfigError, HTTPError
from brrt_actors.problem import printable_path
from brrt_actors.stages.response import Encoded

__all__ = ["StaticFiles", "build_static_files"]

#: ``lookup(environ, method, path)``: the answer for a path under the prefix, None for
#: another path; raises `HTTPError` (400, 404, 405).
StaticFiles = Callable[[dict[str, Any], str, str], "Encoded | None"]

INDEX: Final = "index.html"
_ALLOW: Final = {"Allow": "GET, HEAD"}
_NOSNIFF: Final = ("X-Content-Type-Options", "nosniff")
# NOTE: browsers revalidate each use (a cheap 304 with the ETag): a new deploy shows at once.
_CACHE: Final = ("Cache-Control", "no-cache")
_ENCODED_SEPARATORS: Final = ("%2f", "%2F", "%5c", "%5C")
# Types Python's table lacks or gives an older name for.
_EXTRA_TYPES: Final = {
    ".js": "text/javascript", ".mjs": "text/javascript", ".json": "application/json",
    ".map": "application/json", ".wasm": "application/wasm", ".woff": "font/woff",
    ".woff2": "font/woff2", ".webmanifest": "application/manifest+json",
    ".webp": "image/webp", ".avif": "image/avif",
}
_TEXT_TYPES: Final = frozenset({"application/javascript", "application/json", "application/xml",
                                "application/manifest+json", "image/svg+xml"})


def _content_types() -> Callable[[str], str]:
    table = mimetypes.MimeTypes()  # NOTE: Python's own table only (no system files)
    for suffix, content_type in _EXTRA_TYPES.items():
        table.add_type(content_type, suffix)
    found: dict[str, str] = {}

    def type_of(name: str) -> str:
        suffix = os.path.splitext(name)[1].lower()
        known = found.get(suffix)
        if known is None:
            guessed, encoding = table.guess_type("f" + suffix, strict=False)
            if encoding is not None or guessed is None:
                # SECURITY: "x.js.gz" is not JavaScript to the browser without a
                # Content-Encoding; served as the bytes it is.
                known = "application/gzip" if encoding == "gzip" else "application/octet-stream"
            elif guessed.startswith("text/") or guessed in _TEXT_TYPES:
                known = f"{guessed}; charset=utf-8"
            else:
                known = guessed
            if len(found) < 256:  # SECURITY: clients choose the suffixes
                found[suffix] = known
        return known

    return type_of


class _FileBody:
    """A file's bytes in pieces of at most `chunk` bytes; `close` closes the file."""

    __slots__ = ("_chunk", "_file", "_left")

    def __init__(self, file: IO[bytes], size: int, chunk: int) -> None:
        self._file = file
        self._left = size
        self._chunk = chunk

    def __iter__(self) -> Iterator[bytes]:
        # NOTE: never more than the Content-Length sent: a file growing meanwhile is cut there
        # (one that shrinks ends early, and the engine closes the connection).
        while self._left > 0:
            data = self._file.read(min(self._chunk, self._left))
            if not data:
                break
            self._left -= len(data)
            yield data

    def close(self) -> None:
        self._file.close()


def _not_modified(environ: dict[str, Any], etag: str, mtime: float) -> bool:
    if_none_match = environ.get("HTTP_IF_NONE_MATCH")
    if if_none_match is not None:  # NOTE: RFC 9110 13.2.2: it wins over If-Modified-Since
        return etag_matches(if_none_match, etag)
    since = environ.get("HTTP_IF_MODIFIED_SINCE")
    if since is None:
        return False
    try:
        return int(mtime) <= parsedate_to_datetime(since).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return False  # NOTE: RFC 9110 13.1.3: an invalid date is ignored


def _segments(rest: str) -> list[str]:
    """Decode the path under the prefix into its segments, refusing what could escape."""
    if any(separator in rest for separator in _ENCODED_SEPARATORS):
        raise HTTPError(400, "an encoded '/' or '\\' is not allowed in a file path")
    try:
        decoded = unquote_to_bytes(rest).decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPError(400, "the file path is not UTF-8") from None
    if "\x00" in decoded or "\\" in decoded:
        raise HTTPError(400, "a NUL or '\\' is not allowed in a file path")
    segments = decoded.split("/")
    if any(segment in (".", "..") for segment in segments):
        raise HTTPError(400, "a '.' or '..' segment is not allowed in a file path")
    return segments


def build_static_files(folder: str | Path, prefix: str = "/static",
                       chunk_bytes: int = 64 * 1024,
                       where: str = "--static-dir") -> StaticFiles:
    """Return the lookup serving the files of `folder` under the URL path `prefix`.

    Args:
        folder: the folder to serve (symlinks inside it may point anywhere inside it).
        prefix: the URL path, ``/`` or ``/segment[/segment...]`` without a trailing ``/``.
        chunk_bytes: the largest piece of a file read and sent at once.
        where: the setting that named the folder, for the error.

    Raises:
        ConfigError: `folder` is not a readable folder.
    """
    root = os.path.realpath(folder)
    if not os.path.isdir(root) or not os.access(root, os.R_OK | os.X_OK):
        raise ConfigError([(where, f"{str(folder)!r} is not a readable folder")])
    inside = root.rstrip(os.sep) + os.sep
    under = "/" if prefix == "/" else prefix + "/"
    content_type = _content_types()

    def lookup(environ: dict[str, Any], method: str, path: str) -> Encoded | None:
        if path == prefix and prefix != "/":
            rest = None
        elif path.startswith(under):
            rest = path[len(under):]
        else:
            return None
        if method not in ("GET", "HEAD"):
            raise HTTPError(405, f"{method} is not allowed on static files", headers=_ALLOW)
        if rest is None:
            return _redirect(under, environ)
        segments = _segments(rest)
        missing = HTTPError(404, f"no file at {printable_path(path)}")
        name = segments[-1]
        folder_url = not name
        if folder_url:  # a folder's URL: its index
            segments[-1] = name = INDEX
        if any(not segment or segment.startswith(".") for segment in segments):
            raise missing  # SECURITY: hidden names (.env, .git) are never served
        real = os.path.realpath(os.path.join(root, *segments))
        if not real.startswith(inside):
            raise missing  # SECURITY: a symlink out of the folder
        try:
            # SECURITY: O_NONBLOCK: a FIFO in the folder must not hang the open.
            fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            raise missing from None
        try:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode) and not folder_url:
                os.close(fd)
                return _redirect(under + "/".join(quote(s) for s in segments) + "/", environ)
            if not stat.S_ISREG(info.st_mode):
                raise missing
            etag = f'"{info.st_mtime_ns:x}-{info.st_size:x}"'
            validators = [("ETag", etag),
                          ("Last-Modified", formatdate(info.st_mtime, usegmt=True)), _CACHE]
            if _not_modified(environ, etag, info.st_mtime):
                os.close(fd)
                return 304, validators, ()
            headers = [("Content-Type", content_type(name)), _NOSNIFF, *validators,
                       ("Content-Length", str(info.st_size))]
            return 200, headers, _FileBody(os.fdopen(fd, "rb"), info.st_size, chunk_bytes)
        except BaseException:
            os.close(fd)
            raise

    return lookup


def _redirect(location: str, environ: dict[str, Any]) -> Encoded:
    query = environ.get("QUERY_STRING")
    if query:
        location += "?" + quote(query, safe="=&;%+:@,/?")
    return 301, [("Location", location), ("Content-Length", "0")], ()
