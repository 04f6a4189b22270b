"""The compression stage: gzip (and brotli) for the JSON and text answers a client accepts so.

After the response stage, an answer whose whole body is in hand is compressed when all of
these hold: the operation may be compressed (compression is on, the operation is not a
server-sent event stream, its spec does not say ``x-compression: false``), the answer is a
JSON or text media type, it has no ``Content-Encoding`` yet, the request is not ``HEAD``,
the body is at least ``min_bytes`` long, the client's ``Accept-Encoding`` accepts a coding
the server offers (quality values honoured: ``q=0`` refuses; the server's order breaks
ties), and the result is smaller. Every answer of a compressible media type says
``Vary: Accept-Encoding``, compressed or not, so that shared caches keep both forms apart; a
strong ``ETag`` becomes weak on a compressed answer (the bytes differ).

Streamed bodies (server-sent events, generators, files) are never compressed. The stage is
built only for operations that may be compressed: with compression off, none pays anything.
"""
from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Final

from brrt_actors.sse import is_sse_operation

if TYPE_CHECKING:
    from brrt_actors.config.settings import CompressionSettings
    from brrt_actors.context import BuildContext
    from brrt_actors.handler import Request
    from brrt_actors.spec.model import Operation
    from brrt_actors.stages import Stage

__all__ = ["COMPRESSION_EXTENSION", "Negotiation", "build", "compressible", "compressors"]

#: The operation extension that turns compression off for one operation.
COMPRESSION_EXTENSION: Final = "x-compression"

_TEXT_TYPES: Final = frozenset({"application/json", "application/xml", "application/javascript",
                                "application/x-www-form-urlencoded", "application/yaml",
                                "application/x-yaml", "application/graphql"})
# SECURITY: both caches are keyed by what a client or handler sends: bounded, then rebuilt.
_CACHE_MAX: Final = 256
_compressible_cache: dict[str, bool] = {}


def compressible(content_type: str) -> bool:
    """Tell whether a Content-Type (parameters allowed) is JSON or text worth compressing.

    ``text/event-stream`` never is: each event must reach the client when it is written.
    """
    known = _compressible_cache.get(content_type)
    if known is not None:
        return known
    media = content_type.split(";", 1)[0].strip().lower()
    answer = media != "text/event-stream" and (
        media.startswith("text/") or media in _TEXT_TYPES
        or media.endswith(("+json", "+xml", "+yaml")))
    if len(_compressible_cache) >= _CACHE_MAX:
        _compressible_cache.clear()
    _compressible_cache[content_type] = answer
    return answer


def _quality(params: str) -> float:
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                quality = float(value.strip())
            except ValueError:
                return 0.0  # NOTE: a quality no one can read refuses rather than accepts
            return quality if 0.0 <= quality <= 1.0 else 0.0
    return 1.0


class Negotiation:
    """Pick the content coding for an ``Accept-Encoding`` value (RFC 9110, 12.5.3).

    Args:
        offered: the codings the server can write, its preference first.
    """

    __slots__ = ("_cache", "offered")

    def __init__(self, offered: Iterable[str]) -> None:
        self.offered = tuple(offered)
        self._cache: dict[str, str | None] = {}

    def choose(self, accept_encoding: str) -> str | None:
        """Return the offered coding the client prefers, or None for the body as it is."""
        cache = self._cache
        try:
            return cache[accept_encoding]
        except KeyError:
            pass
        qualities: dict[str, float] = {}
        for part in accept_encoding.split(","):
            name, _, params = part.partition(";")
            name = name.strip().lower()
            if name:
                qualities.setdefault("gzip" if name == "x-gzip" else name, _quality(params))
        star = qualities.get("*", 0.0)
        best, best_q = None, 0.0
        for coding in self.offered:
            quality = qualities.get(coding, star)
            if quality > best_q:  # NOTE: strictly: the server's order breaks ties
                best, best_q = coding, quality
        if qualities.get("identity", -1.0) > best_q:
            best = None  # NOTE: the client prefers the body as it is
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[accept_encoding] = best
        return best


def compressors(settings: CompressionSettings) -> dict[str, Callable[[bytes], bytes]]:
    """Return a compressing function for each coding `settings` offers."""
    level = settings.level
    deflated = zlib.DEFLATED

    def gzip(data: bytes) -> bytes:
        # PERF: a window and hash table no larger than the body (the same output): a
        # fraction of zlib's default 256 KB state to set up per answer
        # (benchmarks/compression.py). 16 + bits: the gzip container around deflate.
        bits = min(15, max(9, (len(data) - 1).bit_length()))
        packer = zlib.compressobj(level, deflated, 16 + bits, max(1, min(8, bits - 6)))
        return packer.compress(data) + packer.flush()

    found: dict[str, Callable[[bytes], bytes]] = {"gzip": gzip}
    if "br" in settings.encodings:
        import brotli  # type: ignore[import-untyped]  # NOTE: the `brotli` extra

        quality = settings.brotli_quality
        found["br"] = lambda data: bytes(brotli.compress(data, quality=quality))
    return {coding: found[coding] for coding in settings.encodings}


def _may_compress(operation: Operation) -> bool:
    if is_sse_operation(operation) or operation.extensions.get(COMPRESSION_EXTENSION) is False:
        return False
    declared = [content_type for spec in operation.responses.values()
                for content_type in spec.content]
    # NOTE: an operation that declares only images or other binary types is left alone.
    return not declared or any("*" in ct or compressible(ct) for ct in declared)


def build(operation: Operation, context: BuildContext) -> Stage | None:
    """Return the operation's compression stage, or None when it is never compressed."""
    settings = context.settings.compression
    if not settings.enabled or not _may_compress(operation):
        return None
    choose = context.memo(("compression-negotiation",),
                          lambda: Negotiation(settings.encodings)).choose
    compress = context.memo(("compressors",), lambda: compressors(settings))
    min_bytes = settings.min_bytes

    def compression_stage(request: Request) -> None:
        status, headers, body = request.answer
        if type(body) is not tuple or not body or status < 200 or status in (204, 206, 304):
            return  # NOTE: streams, no content, or a range of the body as it is
        content_type = None
        vary = etag = length = -1
        for index, (name, value) in enumerate(headers):
            lower = name.lower()
            if lower == "content-type":
                content_type = value
            elif lower == "content-length":
                length = index
            elif lower == "vary":
                vary = index
            elif lower == "etag":
                etag = index
            elif lower == "content-encoding":
                return  # the handler encoded it already
        if content_type is None or not compressible(content_type):
            return
        if vary < 0:
            headers.append(("Vary", "Accept-Encoding"))
        else:
            name, value = headers[vary]
            if value.strip() != "*" and "accept-encoding" not in value.lower():
                headers[vary] = (name, f"{value}, Accept-Encoding")
        accept = request.environ.get("HTTP_ACCEPT_ENCODING")
        if not accept or request.method == "HEAD":
            return  # NOTE: a HEAD answer's body is dropped: compressing it is wasted work
        coding = choose(accept)
        if coding is None:
            return
        data = body[0] if len(body) == 1 else b"".join(body)
        if len(data) < min_bytes:
            return
        packed = compress[coding](data)
        if len(packed) >= len(data):
            return
        if length >= 0:
            headers[length] = (headers[length][0], str(len(packed)))
        headers.append(("Content-Encoding", coding))
        if etag >= 0:
            name, value = headers[etag]
            if value.startswith('"'):
                headers[etag] = (name, "W/" + value)
        request.answer = (status, headers, (packed,))

    return compression_stage
