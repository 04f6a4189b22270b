"""The `format` values the runtime checks, one function each, shared by both validators.

fastjsonschema (the fast path) and jsonschema (the error listing) ship different checks for
the same format names, and jsonschema skips some unless optional packages are installed. Both
are given exactly these functions so that they agree on every value.
"""
from __future__ import annotations

import calendar
import ipaddress
import re
from collections.abc import Callable

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})\Z", re.ASCII)
_TIME = re.compile(r"(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:[Zz]|[+-](\d{2}):(\d{2}))\Z", re.ASCII)
_EMAIL = re.compile(r"[^@\s]+@[^@\s.][^@\s]*\Z")
_URI_CHARS = r"[^\s<>\"{}|\\^`]*"
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:" + _URI_CHARS + r"\Z")
_URI_REFERENCE = re.compile(_URI_CHARS + r"\Z")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}\.?\Z){_LABEL}(?:\.{_LABEL})*\.?\Z", re.ASCII)
_JSON_POINTER = re.compile(r"(?:/(?:[^~/]|~[01])*)*\Z")


def _date(value: str) -> bool:
    match = _DATE.match(value)
    if match is None:
        return False
    year, month, day = (int(part) for part in match.groups())
    return 1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]


def _time(value: str) -> bool:
    match = _TIME.match(value)
    if match is None:
        return False
    hour, minute, second, off_hour, off_minute = match.groups()
    if int(hour) > 23 or int(minute) > 59 or int(second) > 60:  # 60: leap second
        return False
    return off_hour is None or (int(off_hour) <= 23 and int(off_minute) <= 59)


def _date_time(value: str) -> bool:
    date, sep, time = value[:10], value[10:11], value[11:]
    return sep in ("T", "t") and _date(date) and _time(time)


def _ip(version: int) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        try:
            return ipaddress.ip_address(value).version == version
        except ValueError:
            return False

    return check


def _regex(value: str) -> bool:
    try:
        re.compile(value)
    except re.error:
        return False
    return True


def _matches(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda value: pattern.match(value) is not None


def _accept(value: str) -> bool:
    return True


# Formats checked on strings (other types always pass, as JSON Schema says).
FORMAT_CHECKS: dict[str, Callable[[str], bool]] = {
    "uuid": _matches(_UUID),
    "date": _date,
    "date-time": _date_time,
    "time": _time,
    "email": _matches(_EMAIL),
    "uri": _matches(_URI),
    "uri-reference": _matches(_URI_REFERENCE),
    "hostname": _matches(_HOSTNAME),
    "ipv4": _ip(4),
    "ipv6": _ip(6),
    "regex": _regex,
    "json-pointer": _matches(_JSON_POINTER),
}

# Integer formats become minimum/maximum in the translated schema.
INTEGER_RANGES: dict[str, tuple[int, int]] = {
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
}

# Formats OpenAPI defines that carry no check: accepted silently.
ANNOTATION_FORMATS = frozenset({"byte", "binary", "password", "float", "double"})

# fastjsonschema checks these on its own unless told otherwise; jsonschema does not.
_FASTJSONSCHEMA_BUILTIN = (
    "idn-email", "idn-hostname", "iri", "iri-reference", "relative-json-pointer", "uri-template",
)

# What fastjsonschema is given as `formats`: ours, and a pass for its other built-ins.
FASTJSONSCHEMA_FORMATS: dict[str, Callable[[str], bool]] = {
    **{name: _accept for name in _FASTJSONSCHEMA_BUILTIN},
    **FORMAT_CHECKS,
}


def is_known(name: str) -> bool:
    """Tell whether `name` is a format the runtime checks or knows to carry no check."""
    return name in FORMAT_CHECKS or name in INTEGER_RANGES or name in ANNOTATION_FORMATS
