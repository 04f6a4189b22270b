"""Writing JSON the way every answer does: valid JSON (RFC 8259), UTF-8 as is, "/" unescaped.

``NaN`` and the infinities are refused (no client could parse them), and so is a lone
surrogate once the text is encoded to UTF-8. Responses, problems and server-sent events all
write their JSON through `write_json`.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ujson

__all__ = ["write_json", "write_json_bytes"]


def _by_keyword(value: Any) -> str:
    text: str = ujson.dumps(value, ensure_ascii=False, escape_forward_slashes=False,
                            allow_nan=False)
    return text


# NOTE: untyped: ujson's type stubs list its arguments in another order than ujson 5-6 has.
_dumps: Any = ujson.dumps


def _by_position(value: Any) -> str:
    # (obj, ensure_ascii, encode_html_chars, escape_forward_slashes, sort_keys, indent,
    # allow_nan): ujson's order of its arguments, checked at import by `_choose`.
    text: str = _dumps(value, False, False, False, False, 0, False)
    return text


def _choose() -> Callable[[Any], str]:
    # PERF: ujson parses keyword arguments slowly: the keyword call costs ~1.6 µs on a
    # 4-member dict, the positional one ~0.6 µs (timeit, ujson 6.1, CPython 3.11). The
    # positional order is not part of ujson's documented API, so it is used only when it
    # writes exactly what the keyword call writes, and refuses NaN as it does.
    probe = {"text": "é/<\u2028>", "numbers": [1, 1.5, -0.0, 10**20], "none": None,
             "nested": {"yes": True, "empty": []}}
    try:
        agrees = _by_position(probe) == _by_keyword(probe)
        _by_position(float("nan"))
    except OverflowError:
        return _by_position if agrees else _by_keyword
    except (TypeError, ValueError):
        return _by_keyword
    return _by_keyword  # NOTE: NaN was written: that order is not the one we know


#: ``write_json(value) -> str``: raises ValueError or TypeError (a value ujson cannot
#: write), OverflowError (NaN, an infinity, too deep a nesting).
write_json: Callable[[Any], str] = _choose()


def _bytes_by_keyword(value: Any) -> bytes:
    return _by_keyword(value).encode()


def _bytes_by_position(value: Any) -> bytes:
    # NOTE: `_by_position` written out: the same call, one Python frame fewer per answer.
    text: str = _dumps(value, False, False, False, False, 0, False)
    return text.encode()


#: ``write_json_bytes(value) -> bytes``: `write_json`'s text in UTF-8; raises what it
#: raises, and ValueError (UnicodeEncodeError) for a lone surrogate.
write_json_bytes: Callable[[Any], bytes] = (
    _bytes_by_position if write_json is _by_position else _bytes_by_keyword)
