"""Strings that match a regular expression, written from the pattern's parse tree."""
from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any

# NOTE: the stdlib's own regex parser (formerly `sre_parse`) turns a pattern into a tree we
# can write a matching string from. Imported by name: typeshed has no stub for `re._parser`
# and importing `sre_parse` warns.
_sre: Any = importlib.import_module("re._parser")
_MAXREPEAT: Any = importlib.import_module("re._constants").MAXREPEAT
_MAX_TRIES = 64


def search(pattern: str, value: str) -> bool:
    """Tell whether `pattern` matches somewhere in `value` (False for a broken pattern)."""
    try:
        return re.search(pattern, value) is not None
    except re.error:
        return False


class _Unsupported(Exception):
    pass


_CATEGORY_CHARS = {"CATEGORY_DIGIT": "0", "CATEGORY_NOT_DIGIT": "a", "CATEGORY_SPACE": " ",
                   "CATEGORY_NOT_SPACE": "a", "CATEGORY_WORD": "a", "CATEGORY_NOT_WORD": "-"}
_CATEGORY_TESTS: dict[str, Callable[[str], bool]] = {
    "CATEGORY_DIGIT": str.isdigit,
    "CATEGORY_NOT_DIGIT": lambda c: not c.isdigit(),
    "CATEGORY_SPACE": str.isspace,
    "CATEGORY_NOT_SPACE": lambda c: not c.isspace(),
    "CATEGORY_WORD": lambda c: c.isalnum() or c == "_",
    "CATEGORY_NOT_WORD": lambda c: not (c.isalnum() or c == "_"),
}
_FALLBACK_CHARS = "a0A_-x.z9 Z~!"


def from_pattern(pattern: str, min_len: int, max_len: int | None) -> str | None:
    """Write a string the pattern matches, within the lengths; None when that fails."""
    try:
        parsed = _sre.parse(pattern)
    except re.error:
        return None
    for extra in range(_MAX_TRIES):
        try:
            written = _write(parsed, extra, {})
        except _Unsupported:
            return None
        if max_len is not None and len(written) > max_len:
            break
        if len(written) >= min_len and search(pattern, written):
            return written
        padded = written + "x" * max(0, min_len - len(written))
        if len(written) < min_len and search(pattern, padded) and \
                (max_len is None or len(padded) <= max_len):
            return padded
    return None


def _write(parsed: Any, extra: int, groups: dict[int, str]) -> str:
    out: list[str] = []
    for op, arg in parsed:
        name = str(op)
        if name == "LITERAL":
            out.append(chr(arg))
        elif name == "NOT_LITERAL":
            out.append("a" if arg != ord("a") else "b")
        elif name == "ANY":
            out.append("a")
        elif name == "IN":
            out.append(_char_in(arg))
        elif name == "BRANCH":
            out.append(_write(arg[1][0], extra, groups))
        elif name == "SUBPATTERN":
            text = _write(arg[3], extra, groups)
            if arg[0] is not None:
                groups[arg[0]] = text
            out.append(text)
        elif name == "ATOMIC_GROUP":
            out.append(_write(arg, extra, groups))
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, sub = arg
            times = low + extra if high is _MAXREPEAT else min(low + extra, high)
            out.extend(_write(sub, extra, groups) for _ in range(times))
        elif name == "GROUPREF":
            out.append(groups.get(arg, ""))
        elif name == "GROUPREF_EXISTS":
            group, yes, no = arg
            chosen = yes if group in groups else no
            out.append(_write(chosen, extra, groups) if chosen else "")
        elif name in ("AT", "ASSERT", "ASSERT_NOT"):
            continue  # anchors and lookarounds write nothing (the final search checks)
        else:
            raise _Unsupported(name)
    return "".join(out)


def _char_in(items: list[tuple[Any, Any]]) -> str:
    negated = any(str(op) == "NEGATE" for op, _ in items)

    def member(char: str) -> bool:
        for op, arg in items:
            name = str(op)
            if (name == "LITERAL" and char == chr(arg)) or \
                    (name == "RANGE" and arg[0] <= ord(char) <= arg[1]) or \
                    (name == "CATEGORY" and _CATEGORY_TESTS.get(str(arg), bool)(char)):
                return True
        return False

    if not negated:
        op, arg = items[0]
        name = str(op)
        if name == "LITERAL":
            return chr(arg)
        if name == "RANGE":
            return chr(arg[0])
        if name == "CATEGORY" and str(arg) in _CATEGORY_CHARS:
            return _CATEGORY_CHARS[str(arg)]
    for char in _FALLBACK_CHARS:
        if member(char) != negated:
            return char
    raise _Unsupported("character class")
