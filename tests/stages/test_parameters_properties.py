"""Property tests of the parameter decoder: a value encoded as a client would, decoded back.

For every style and explode of OpenAPI's style table, hypothesis draws a value of the
parameter's schema, `encode` writes it the way the style examples of the OpenAPI
specification (RFC 6570 expansion, each value percent-encoded) spell it, and
`ParameterDecoder` must give back exactly that value, without an error item.

Where a style has no escape for its own delimiter (a space in a spaceDelimited item, a comma
in a header item) the drawn text leaves that delimiter out: no client can send it.
``PROPERTY_EXAMPLES`` sets the examples per test (a fixed, derandomized sequence in CI).
"""
from __future__ import annotations

import os
import string
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brrt_actors.spec.model import Parameter
from brrt_actors.stages.parameters import ParameterDecoder

EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "60"))
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

# Text a client may put in a URL value (percent-encoded): any character but surrogates,
# which UTF-8 cannot carry (they are the hostile corpus' business, tests/engine).
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
WORD = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=12)
# Header values: visible ASCII; no comma or equals sign (the simple style's delimiters).
HEADER_TEXT = st.text(st.sampled_from(sorted(set(string.printable[:94]) - set(",="))),
                      min_size=1, max_size=12)
INTEGER = st.integers(min_value=-(2 ** 63), max_value=2 ** 63 - 1)
NUMBER = st.floats(allow_nan=False, allow_infinity=False, width=64)

PRIMITIVES: list[tuple[dict[str, Any], st.SearchStrategy[Any]]] = [
    ({"type": "string"}, WORD),
    ({"type": "integer"}, INTEGER),
    ({"type": "number"}, NUMBER),
    ({"type": "boolean"}, st.booleans()),
]
OBJECT = {"type": "object", "properties": {"n": {"type": "integer"}, "s": {"type": "string"},
                                           "f": {"type": "boolean"}}}


def _object_of(text: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={"n": INTEGER, "s": text, "f": st.booleans()})


def _primitive() -> st.SearchStrategy[tuple[dict[str, Any], Any]]:
    return st.sampled_from(PRIMITIVES).flatmap(
        lambda pair: pair[1].map(lambda value: (pair[0], value)))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def pct(value: Any, extra: str = "") -> str:
    """Percent-encode one value (RFC 3986: everything but unreserved characters)."""
    text = quote(_text(value), safe="")
    for char in extra:  # unreserved characters that a style uses as a delimiter
        text = text.replace(char, f"%{ord(char):02X}")
    return text


def param(location: str, style: str, explode: bool, schema: dict[str, Any]) -> Parameter:
    return Parameter(name="p", location=location, pointer="/paths/~1x/get/parameters/0",
                     required=location == "path", style=style, explode=explode, schema=schema)


def decoded(parameter: Parameter, raw_path: dict[str, str] | None = None, query: str = "",
            header: str | None = None, cookie: str | None = None) -> Any:
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/x", "QUERY_STRING": query}
    if header is not None:
        environ["HTTP_P"] = header
    if cookie is not None:
        environ["HTTP_COOKIE"] = cookie
    result = ParameterDecoder([parameter]).decode(raw_path or {}, environ)
    assert result.errors == [], (raw_path, query, header, cookie, result.errors)
    for found in (result.path, result.query, result.headers, result.cookies):
        if "p" in found:
            return found["p"]
    raise AssertionError("the parameter was not decoded")


def _pairs(value: dict[str, Any], join: str, extra: str = "") -> list[str]:
    return [pct(key, extra) + join + pct(item, extra) for key, item in value.items()]


# --- path: simple, label, matrix ---------------------------------------------------------

def encode_path(style: str, explode: bool, value: Any) -> str:
    extra = "." if style == "label" else ""  # NOTE: `.` is unreserved, but label's delimiter
    if isinstance(value, list):
        items = [pct(item, extra) for item in value]
        if style == "simple":
            return ",".join(items)
        if style == "label":
            return "." + ("." if explode else ",").join(items)
        if explode:
            return "".join(";p=" + item for item in items)
        return ";p=" + ",".join(items)
    if isinstance(value, dict):
        if style == "simple":
            return ",".join(_pairs(value, "=" if explode else ","))
        if style == "label":
            return "." + ("." if explode else ",").join(_pairs(value, "=" if explode else ",",
                                                               extra))
        if explode:
            return "".join(";" + pair for pair in _pairs(value, "="))
        return ";p=" + ",".join(_pairs(value, ","))
    prefix = {"simple": "", "label": ".", "matrix": ";p="}[style]
    return prefix + pct(value, extra)


PATH_STYLES = st.sampled_from([(style, explode) for style in ("simple", "label", "matrix")
                               for explode in (False, True)])


@PROPERTY
@given(PATH_STYLES, _primitive())
def test_path_primitive(style: tuple[str, bool], drawn: tuple[dict[str, Any], Any]) -> None:
    schema, value = drawn
    parameter = param("path", style[0], style[1], schema)
    assert decoded(parameter, {"p": encode_path(*style, value)}) == value


@PROPERTY
@given(PATH_STYLES, st.lists(WORD, min_size=1, max_size=5))
def test_path_array(style: tuple[str, bool], value: list[str]) -> None:
    parameter = param("path", style[0], style[1], {"type": "array", "items": {"type": "string"}})
    assert decoded(parameter, {"p": encode_path(*style, value)}) == value


@PROPERTY
@given(PATH_STYLES, _object_of(WORD).filter(bool))
def test_path_object(style: tuple[str, bool], value: dict[str, Any]) -> None:
    parameter = param("path", style[0], style[1], OBJECT)
    assert decoded(parameter, {"p": encode_path(*style, value)}) == value


# --- query: form, spaceDelimited, pipeDelimited, deepObject -------------------------------

@PROPERTY
@given(st.booleans(), _primitive())
def test_query_form_primitive(explode: bool, drawn: tuple[dict[str, Any], Any]) -> None:
    schema, value = drawn
    parameter = param("query", "form", explode, schema)
    assert decoded(parameter, query="p=" + pct(value)) == value


@PROPERTY
@given(st.booleans(), st.lists(TEXT, max_size=5), st.lists(INTEGER, max_size=5))
def test_query_form_array(explode: bool, words: list[str], numbers: list[int]) -> None:
    for value, items in ((words, {"type": "string"}), (numbers, {"type": "integer"})):
        parameter = param("query", "form", explode, {"type": "array", "items": items})
        if explode:
            query = "&".join("p=" + pct(item) for item in value)
        else:
            query = "p=" + ",".join(pct(item) for item in value)
        if not value:
            query = "p="  # NOTE: the empty array: the name with an empty value
        if value == [""]:
            continue  # `p=` is the empty array: a one-empty-string array has no spelling
        assert decoded(parameter, query=query) == value


@PROPERTY
@given(st.booleans(), _object_of(TEXT).filter(bool))
def test_query_form_object(explode: bool, value: dict[str, Any]) -> None:
    parameter = param("query", "form", explode, OBJECT)
    query = "&".join(_pairs(value, "=")) if explode else "p=" + ",".join(_pairs(value, ","))
    assert decoded(parameter, query=query) == value


@PROPERTY
@given(st.sampled_from(["spaceDelimited", "pipeDelimited"]), st.data())
def test_query_delimited_array(style: str, data: st.DataObject) -> None:
    # NOTE: an item cannot hold the delimiter in any spelling (the encoded one splits too).
    banned = " +" if style == "spaceDelimited" else "|"
    item = st.text(st.characters(exclude_categories=("Cs",), exclude_characters=banned),
                   min_size=1, max_size=12)
    value = data.draw(st.lists(item, min_size=1, max_size=5))
    delimiter = "%20" if style == "spaceDelimited" else "%7C"
    parameter = param("query", style, False, {"type": "array", "items": {"type": "string"}})
    assert decoded(parameter, query="p=" + delimiter.join(pct(v) for v in value)) == value


@PROPERTY
@given(_object_of(TEXT).filter(bool))
def test_query_deep_object(value: dict[str, Any]) -> None:
    parameter = param("query", "deepObject", True, OBJECT)
    query = "&".join(f"p[{pct(key)}]={pct(item)}" for key, item in value.items())
    assert decoded(parameter, query=query) == value


# --- header (simple) and cookie (form) -----------------------------------------------------

@PROPERTY
@given(st.booleans(), st.one_of(HEADER_TEXT, INTEGER, st.lists(HEADER_TEXT, min_size=1,
                                                                max_size=5),
                                _object_of(HEADER_TEXT).filter(bool)))
def test_header(explode: bool, value: Any) -> None:
    if isinstance(value, list):
        schema: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
        raw = ",".join(value)
    elif isinstance(value, dict):
        schema = OBJECT
        raw = ",".join(f"{key}={_text(item)}" if explode else f"{key},{_text(item)}"
                       for key, item in value.items())
    else:
        schema = {"type": "integer" if isinstance(value, int) else "string"}
        raw = str(value)
    assert decoded(param("header", "simple", explode, schema), header=raw) == value


@PROPERTY
@given(_primitive(), st.lists(WORD, min_size=1, max_size=5))
def test_cookie(drawn: tuple[dict[str, Any], Any], words: list[str]) -> None:
    schema, value = drawn
    assert decoded(param("cookie", "form", True, schema), cookie="p=" + pct(value)) == value
    array = param("cookie", "form", False, {"type": "array", "items": {"type": "string"}})
    assert decoded(array, cookie="other=1; p=" + ",".join(pct(v) for v in words)) == words
