"""What a client asks of a mock answer: ``Prefer`` (RFC 7240, as Prism reads it) and ``Accept``.

``Prefer: code=404`` asks for a declared status, ``Prefer: example=NAME`` for a named example
of the response (both may be given, comma-separated); other preferences are ignored, as RFC
7240 lets a server do. ``Accept`` picks among the response's declared media types by quality
(RFC 9110 12.5.1): the most specific range matching a type gives its quality; equal qualities
keep the spec's order (JSON first).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from brrt_actors.errors import HTTPError

__all__ = ["Preferences", "media_essence", "parse_prefer", "pick_media_type"]


@dataclass(frozen=True, slots=True)
class Preferences:
    """The preferences of one ``Prefer`` header that mock mode honours."""

    code: int | None = None
    example: str | None = None


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def parse_prefer(header: str) -> Preferences:
    """Return the ``code`` and ``example`` preferences of a ``Prefer`` header value.

    Raises:
        HTTPError: 400 when ``code`` is not a status code.
    """
    code: int | None = None
    example: str | None = None
    # NOTE: preferences are comma-separated, their parameters after ';'; Prism's clients
    # send either, so both separate here.
    for item in header.replace(";", ",").split(","):
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        if not sep:
            continue
        if name == "code":
            text = _unquote(value)
            if not (text.isdigit() and len(text) == 3 and 100 <= int(text) <= 599):
                raise HTTPError(400, f"Prefer: code={text[:20]!r} is not a status code; "
                                     "ask for one the operation declares, such as code=404")
            code = int(text)
        elif name == "example":
            example = _unquote(value)
    return Preferences(code, example)


def media_essence(content_type: str) -> str:
    """Return ``type/subtype`` of a media type, lower-cased, without parameters."""
    return content_type.split(";", 1)[0].strip().lower()


def _ranges(accept: str) -> list[tuple[str, str, float]]:
    ranges: list[tuple[str, str, float]] = []
    for item in accept.split(","):
        parts = item.split(";")
        kind, _, subtype = media_essence(parts[0]).partition("/")
        if not kind:
            continue
        quality = 1.0
        for parameter in parts[1:]:
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = min(1.0, max(0.0, float(value.strip())))
                except ValueError:
                    quality = 0.0  # NOTE: a malformed weight counts as "not acceptable"
        ranges.append((kind, subtype or "*", quality))
    return ranges


def _quality(essence: str, ranges: list[tuple[str, str, float]]) -> float:
    kind, _, subtype = essence.partition("/")
    best = -1
    quality = 0.0
    for range_kind, range_subtype, range_quality in ranges:
        if range_kind == "*" and range_subtype == "*":
            specificity = 0
        elif range_kind == kind and range_subtype == "*":
            specificity = 1
        elif (range_kind, range_subtype) == (kind, subtype) or kind == "*" or (
                subtype == "*" and range_kind == kind):
            # NOTE: a declared wildcard (`*/*`, `image/*`) serves any type it covers.
            specificity = 2
        else:
            continue
        if specificity > best:
            best, quality = specificity, range_quality
    return quality


def pick_media_type(declared: Sequence[str], accept: str | None) -> int:
    """Return the index in `declared` (essences, in order of preference) `accept` likes best.

    Raises:
        HTTPError: 406 when `accept` allows none of them.
    """
    if not accept or not accept.strip():
        return 0
    ranges = _ranges(accept)
    if not ranges:
        return 0
    best_index, best_quality = -1, 0.0
    for index, essence in enumerate(declared):
        quality = _quality(essence, ranges)
        if quality > best_quality:
            best_index, best_quality = index, quality
    if best_index < 0:
        raise HTTPError(406, f"this operation answers {', '.join(declared)}; the request's "
                             "Accept header allows none of them")
    return best_index
