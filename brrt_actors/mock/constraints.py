"""What a schema's constraints allow, for the mock value generator.

allOf parts merged into one schema, numeric ranges and the multiples within them, a plain
value per string format; `MockError` when the constraints allow no value at all.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from brrt_actors.spec.model import JSONSchema

__all__ = ["FORMAT_VALUES", "INT_FORMATS", "Bound", "MockError", "bounds", "combine",
           "format_value", "max_known", "min_known", "pick_multiple", "within"]


class MockError(ValueError):
    """No value can be generated: the schema is contradictory, unresolvable or endless."""


# A plain value per string format; int32 / int64 as ranges.
FORMAT_VALUES: dict[str, str] = {
    "uuid": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
    "date": "2024-01-15",
    "date-time": "2024-01-15T09:30:00Z",
    "time": "09:30:00Z",
    "duration": "P1D",
    "email": "user@example.com",
    "idn-email": "user@example.com",
    "hostname": "example.com",
    "idn-hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uri": "https://example.com/",
    "iri": "https://example.com/",
    "uri-reference": "/example",
    "iri-reference": "/example",
    "uri-template": "https://example.com/{id}",
    "json-pointer": "/example",
    "relative-json-pointer": "0",
    "regex": "^example$",
    "byte": "ZXhhbXBsZQ==",  # base64 of "example"
    "binary": "example",
    "password": "password",
}
INT_FORMATS = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}

_LOWER_BOUNDS = {"minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties"}
_UPPER_BOUNDS = {"maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties"}
_SUBSCHEMA_WORDS = {"items", "additionalItems", "additionalProperties", "contains",
                    "propertyNames"}


# -- schema arithmetic -------------------------------------------------------------------------

def combine(a: JSONSchema, b: JSONSchema) -> JSONSchema:
    """Merge two allOf parts into one schema that asks for both (best effort)."""
    out = dict(a)
    for key, value in b.items():
        if key not in out:
            out[key] = value
            continue
        mine = out[key]
        if key in ("properties", "patternProperties"):
            out[key] = {**mine, **{name: ({"allOf": [mine[name], sub]} if name in mine else sub)
                                   for name, sub in value.items()}}
        elif key == "required":
            out[key] = list(dict.fromkeys([*mine, *value]))
        elif key == "type":
            out[key] = _common_types(mine, value)
        elif key in _LOWER_BOUNDS:
            out[key] = max(mine, value)
        elif key in _UPPER_BOUNDS:
            out[key] = min(mine, value)
        elif key == "enum":
            out[key] = [v for v in mine if v in value]
        elif key == "const" and mine != value:
            raise MockError(f"allOf asks for two constants: {mine!r} and {value!r}")
        elif key == "multipleOf":
            fa, fb = Fraction(str(mine)), Fraction(str(value))
            both = Fraction(math.lcm(fa.numerator, fb.numerator),
                            math.gcd(fa.denominator, fb.denominator))
            out[key] = int(both) if both.denominator == 1 else float(both)
        elif key in ("anyOf", "oneOf"):
            out[key] = [{"allOf": [branch, {key: value}]} for branch in mine]
        elif key == "not":
            out[key] = {"anyOf": [mine, value]}
        elif key in _SUBSCHEMA_WORDS and not isinstance(mine, list) and not isinstance(value, list):
            if mine is False or value is False:
                out[key] = False
            elif mine is True:
                out[key] = value
            elif value is not True:
                out[key] = {"allOf": [mine, value]}
        # anything else (title, format, pattern ...): the first part's word stays
    return out


def _common_types(a: str | list[str], b: str | list[str]) -> str | list[str]:
    left = [a] if isinstance(a, str) else a
    right = [b] if isinstance(b, str) else b
    common = [t for t in left if t in right or (t == "integer" and "number" in right)]
    common += [t for t in right if t == "integer" and "number" in left and t not in common]
    if not common:
        raise MockError(f"allOf parts share no type ({left} and {right})")
    return common[0] if len(common) == 1 else common


Bound = tuple[float, bool]  # (limit, exclusive)


def bounds(schema: JSONSchema) -> tuple[Bound | None, Bound | None]:
    """Return the schema's (lower, upper) numeric bounds, the tighter of each pair."""
    lo: Bound | None = None
    hi: Bound | None = None
    if "minimum" in schema:
        lo = (schema["minimum"], False)
    if "exclusiveMinimum" in schema and (lo is None or schema["exclusiveMinimum"] >= lo[0]):
        lo = (schema["exclusiveMinimum"], True)
    if "maximum" in schema:
        hi = (schema["maximum"], False)
    if "exclusiveMaximum" in schema and (hi is None or schema["exclusiveMaximum"] <= hi[0]):
        hi = (schema["exclusiveMaximum"], True)
    return lo, hi


def within(value: float, lo: Bound | None, hi: Bound | None) -> bool:
    """Tell whether `value` lies between the bounds."""
    return ((lo is None or value > lo[0] or (value == lo[0] and not lo[1]))
            and (hi is None or value < hi[0] or (value == hi[0] and not hi[1])))


def max_known(a: int | None, b: int | None) -> int | None:
    """Return the larger of the limits that are known (None: no limit)."""
    return b if a is None else a if b is None else max(a, b)


def min_known(a: int | None, b: int | None) -> int | None:
    """Return the smaller of the limits that are known (None: no limit)."""
    return b if a is None else a if b is None else min(a, b)


def pick_multiple(low: Any, high: Any, step: Fraction, variant: int,
                  lo_open: bool = False, hi_open: bool = False) -> Fraction | None:
    """Return the multiple of `step` nearest to 1 (or to a bound) within [low, high]."""
    k_min = None if low is None else (math.floor(low / step) + 1 if lo_open
                                      else math.ceil(low / step))
    k_max = None if high is None else (math.ceil(high / step) - 1 if hi_open
                                       else math.floor(high / step))
    if k_min is not None and k_max is not None and k_min > k_max:
        return None
    one = math.ceil(1 / step)
    if k_min is not None:
        k = max(k_min, one) if k_max is None or one <= k_max else k_min
    elif k_max is not None:
        k = min(k_max, one)
    else:
        k = one
    for shifted in (k + variant, k - variant, k):
        if (k_min is None or shifted >= k_min) and (k_max is None or shifted <= k_max):
            return Fraction(shifted) * step
    return None  # pragma: no cover - `k` itself is always within range


def format_value(fmt: str, variant: int) -> str:
    """Return the plain value of a string format; `variant` > 0 gives a different one."""
    value = FORMAT_VALUES[fmt]
    if not variant:
        return value
    if fmt == "uuid":
        return f"{value[:24]}{variant:012x}"
    if fmt in ("date", "date-time"):
        return value.replace("-15", f"-{1 + variant % 28:02d}", 1)
    if fmt in ("email", "idn-email"):
        return f"user{variant}@example.com"
    if fmt in ("uri", "iri", "uri-reference", "iri-reference"):
        return f"{value.rstrip('/')}/{variant}"
    return value
