"""Parameter decoding: every style/explode pair of the OpenAPI style table, decoding order,
coercion, defaults and the error items."""
from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import pytest

from brrt_actors.errors import SpecError
from brrt_actors.request_text import parse_cookies, parse_query
from brrt_actors.spec.model import MISSING, Parameter
from brrt_actors.stages.parameters import ParameterDecoder

_DEFAULT_STYLE = {"path": "simple", "query": "form", "header": "simple", "cookie": "form"}

STRING = {"type": "string"}
ARRAY = {"type": "array", "items": {"type": "string"}}
RGB = {"type": "object", "properties": {"R": {"type": "integer"}, "G": {"type": "integer"},
                                        "B": {"type": "integer"}}}
BLUE = "blue"
COLORS = ["blue", "black", "brown"]
RGB_VALUE = {"R": 100, "G": 200, "B": 150}


def param(name: str, location: str, schema: dict[str, Any] | None = None, *,
          style: str | None = None, explode: bool | None = None, required: bool = False,
          content_type: str | None = None, default: Any = MISSING) -> Parameter:
    style = style or _DEFAULT_STYLE.get(location, "form")
    return Parameter(name=name, location=location,
                     pointer=f"/paths/~1x/get/parameters/{name}",
                     required=required or location == "path", style=style,
                     explode=(style == "form") if explode is None else explode,
                     schema=schema, content_type=content_type, default=default)


def environ(query: str = "", headers: dict[str, str] | None = None,
            cookie: str | None = None) -> dict[str, Any]:
    env: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/x", "QUERY_STRING": query}
    for name, value in (headers or {}).items():
        env["HTTP_" + name.upper().replace("-", "_")] = value
    if cookie is not None:
        env["HTTP_COOKIE"] = cookie
    return env


def decode(params: list[Parameter], path: dict[str, str] | None = None,
           **kwargs: Any) -> tuple[Any, ...]:
    return ParameterDecoder(params).decode(path or {}, environ(**kwargs))


# --- the style table (https://spec.openapis.org/oas/v3.1.0#style-examples) --------------

PATH_TABLE = [
    ("simple", False, STRING, "blue", BLUE),
    ("simple", False, ARRAY, "blue,black,brown", COLORS),
    ("simple", False, RGB, "R,100,G,200,B,150", RGB_VALUE),
    ("simple", True, STRING, "blue", BLUE),
    ("simple", True, ARRAY, "blue,black,brown", COLORS),
    ("simple", True, RGB, "R=100,G=200,B=150", RGB_VALUE),
    ("label", False, STRING, ".blue", BLUE),
    ("label", False, ARRAY, ".blue,black,brown", COLORS),
    ("label", False, RGB, ".R,100,G,200,B,150", RGB_VALUE),
    ("label", True, STRING, ".blue", BLUE),
    ("label", True, ARRAY, ".blue.black.brown", COLORS),
    ("label", True, RGB, ".R=100.G=200.B=150", RGB_VALUE),
    ("matrix", False, STRING, ";color=blue", BLUE),
    ("matrix", False, ARRAY, ";color=blue,black,brown", COLORS),
    ("matrix", False, RGB, ";color=R,100,G,200,B,150", RGB_VALUE),
    ("matrix", True, STRING, ";color=blue", BLUE),
    ("matrix", True, ARRAY, ";color=blue;color=black;color=brown", COLORS),
    ("matrix", True, RGB, ";R=100;G=200;B=150", RGB_VALUE),
]


@pytest.mark.parametrize(("style", "explode", "schema", "raw", "expected"), PATH_TABLE)
def test_path_styles(style: str, explode: bool, schema: dict[str, Any], raw: str,
                     expected: Any) -> None:
    p = param("color", "path", schema, style=style, explode=explode)
    path, _, _, _, errors = decode([p], {"color": raw})
    assert errors == []
    assert path == {"color": expected}


@pytest.mark.parametrize(("style", "explode", "schema", "raw", "expected"), [
    ("label", False, STRING, ".", ""),
    ("label", False, ARRAY, ".", []),
    ("label", True, RGB, ".", {}),
    ("matrix", False, STRING, ";color", ""),
    ("matrix", False, ARRAY, ";color", []),
    ("matrix", True, ARRAY, ";color", []),
    ("matrix", False, RGB, ";color", {}),
])
def test_path_empty_values(style: str, explode: bool, schema: dict[str, Any], raw: str,
                           expected: Any) -> None:
    p = param("color", "path", schema, style=style, explode=explode)
    path, _, _, _, errors = decode([p], {"color": raw})
    assert errors == []
    assert path == {"color": expected}


QUERY_TABLE = [
    ("form", False, STRING, "color=blue", BLUE),
    ("form", False, ARRAY, "color=blue,black,brown", COLORS),
    ("form", False, RGB, "color=R,100,G,200,B,150", RGB_VALUE),
    ("form", True, STRING, "color=blue", BLUE),
    ("form", True, ARRAY, "color=blue&color=black&color=brown", COLORS),
    ("form", True, RGB, "R=100&G=200&B=150", RGB_VALUE),
    ("spaceDelimited", False, ARRAY, "color=blue%20black%20brown", COLORS),
    ("spaceDelimited", False, ARRAY, "color=blue+black+brown", COLORS),
    ("spaceDelimited", False, RGB, "color=R%20100%20G%20200%20B%20150", RGB_VALUE),
    ("spaceDelimited", True, ARRAY, "color=blue&color=black&color=brown", COLORS),
    ("pipeDelimited", False, ARRAY, "color=blue|black|brown", COLORS),
    ("pipeDelimited", False, ARRAY, "color=blue%7Cblack%7cbrown", COLORS),
    ("pipeDelimited", False, RGB, "color=R|100|G|200|B|150", RGB_VALUE),
    ("pipeDelimited", True, ARRAY, "color=blue&color=black&color=brown", COLORS),
    ("deepObject", True, RGB, "color[R]=100&color[G]=200&color[B]=150", RGB_VALUE),
    ("deepObject", True, RGB, "color%5BR%5D=100&color%5BG%5D=200&color%5BB%5D=150",
     RGB_VALUE),
]


@pytest.mark.parametrize(("style", "explode", "schema", "query", "expected"), QUERY_TABLE)
def test_query_styles(style: str, explode: bool, schema: dict[str, Any], query: str,
                      expected: Any) -> None:
    p = param("color", "query", schema, style=style, explode=explode)
    _, got, _, _, errors = decode([p], query=query)
    assert errors == []
    assert got == {"color": expected}


@pytest.mark.parametrize(("explode", "schema", "query", "expected"), [
    (False, STRING, "color=", ""),
    (False, ARRAY, "color=", []),
    (True, ARRAY, "color=", []),
    (False, RGB, "color=", {}),
])
def test_query_empty_values(explode: bool, schema: dict[str, Any], query: str,
                            expected: Any) -> None:
    p = param("color", "query", schema, explode=explode)
    _, got, _, _, errors = decode([p], query=query)
    assert errors == []
    assert got == {"color": expected}


@pytest.mark.parametrize(("explode", "schema", "raw", "expected"), [
    (False, STRING, "blue", BLUE),
    (False, ARRAY, "blue,black,brown", COLORS),
    (False, ARRAY, "blue, black , brown", COLORS),
    (False, RGB, "R,100,G,200,B,150", RGB_VALUE),
    (True, RGB, "R=100,G=200,B=150", RGB_VALUE),
])
def test_header_simple(explode: bool, schema: dict[str, Any], raw: str, expected: Any) -> None:
    p = param("X-Color", "header", schema, explode=explode)
    _, _, headers, _, errors = decode([p], headers={"X-Color": raw})
    assert errors == []
    assert headers == {"x-color": expected}


@pytest.mark.parametrize(("explode", "schema", "cookie", "expected"), [
    (False, STRING, "color=blue", BLUE),
    (False, ARRAY, "color=blue,black,brown", COLORS),
    (True, ARRAY, "color=blue,black,brown", COLORS),
    (False, RGB, "color=R,100,G,200,B,150", RGB_VALUE),
    (True, RGB, "R=100; G=200; B=150", RGB_VALUE),
])
def test_cookie_form(explode: bool, schema: dict[str, Any], cookie: str, expected: Any) -> None:
    p = param("color", "cookie", schema, explode=explode)
    _, _, _, cookies, errors = decode([p], cookie=cookie)
    assert errors == []
    assert cookies["color"] == expected


# --- decoding order and encodings --------------------------------------------------------

def test_encoded_comma_stays_in_the_value() -> None:
    q = param("ids", "query", ARRAY, explode=False)
    s = param("names", "path", ARRAY)
    path, query, _, _, errors = decode([q, s], {"names": "x%2Cy,z"}, query="ids=a%2Cb,c")
    assert errors == []
    assert query == {"ids": ["a,b", "c"]}
    assert path == {"names": ["x,y", "z"]}


def test_encoded_equals_and_dot_stay_in_object_values() -> None:
    p = param("o", "path", {"type": "object"}, style="label", explode=True)
    path, _, _, _, errors = decode([p], {"o": ".a=1%3D2.b=x%2Ey"})
    assert errors == []
    assert path == {"o": {"a": "1=2", "b": "x.y"}}


def test_plus_is_space_in_query_only() -> None:
    q = param("q", "query", STRING)
    s = param("s", "path", STRING)
    path, query, _, _, _ = decode([q, s], {"s": "a+b%20c"}, query="q=a+b%20c")
    assert query == {"q": "a b c"}
    assert path == {"s": "a+b c"}


def test_utf8_percent_escapes_and_raw_wsgi_bytes() -> None:
    q = param("q", "query", STRING)
    s = param("s", "path", STRING)
    raw_path = "caf\u00c3\u00a9"  # UTF-8 bytes of "café" as PEP 3333 hands them over
    path, query, _, _, _ = decode([q, s], {"s": raw_path}, query="q=caf%C3%A9")
    assert query == {"q": "café"}
    assert path == {"s": "café"}


def test_query_keeps_blank_values_and_last_repeat_wins() -> None:
    assert parse_query("a=&b&a=2&&c=%26") == {"a": ["", "2"], "b": [""], "c": ["%26"]}
    p = param("a", "query", {"type": "integer"})
    _, query, _, _, errors = decode([p], query="a=1&a=2")
    assert errors == []
    assert query == {"a": 2}


def test_parse_cookies() -> None:
    jar = parse_cookies('a=1; b="quoted value"; junk; =x; a=2')
    assert jar == {"a": ["1", "2"], "b": ["quoted value"]}


# --- coercion -------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    ("true", True), ("False", False), ("TRUE", True), ("1", True), ("0", False),
])
def test_boolean_spellings(raw: str, expected: bool) -> None:
    p = param("flag", "query", {"type": "boolean"})
    _, query, _, _, errors = decode([p], query=f"flag={raw}")
    assert errors == []
    assert query["flag"] is expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("2", 2), ("-2", -2), ("1.5", 1.5), ("1e3", 1000.0), (".5", 0.5),
])
def test_numbers(raw: str, expected: float) -> None:
    p = param("n", "query", {"type": "number"})
    _, query, _, _, errors = decode([p], query=f"n={raw}")
    assert errors == []
    assert query["n"] == expected
    assert type(query["n"]) is type(expected)


@pytest.mark.parametrize(("schema", "raw"), [
    ({"type": "number"}, "nan"), ({"type": "number"}, "1e999"), ({"type": "number"}, ""),
    ({"type": "integer"}, "1.0"), ({"type": "integer"}, "\u0665"), ({"type": "integer"}, " 1"),
    ({"type": "boolean"}, "yes"),
])
def test_values_that_do_not_coerce(schema: dict[str, Any], raw: str) -> None:
    p = param("v", "query", schema)
    _, query, _, _, errors = decode([p], query=f"v={raw}")
    assert query == {}
    assert len(errors) == 1
    assert errors[0]["in"] == "query"
    assert errors[0]["name"] == "v"
    assert "not a valid" in errors[0]["message"]


def test_type_lists_are_tried_in_order() -> None:
    nullable = param("a", "query", {"type": ["integer", "null"]})
    either = param("b", "query", {"type": ["integer", "string"]})
    _, query, _, _, errors = decode([nullable, either], query="a=&b=x")
    assert errors == []
    assert query == {"a": None, "b": "x"}
    _, query, _, _, errors = decode([nullable, either], query="a=7&b=8")
    assert query == {"a": 7, "b": 8}


def test_types_follow_refs_and_enums() -> None:
    schema = {"$ref": "#/definitions/Level",
              "definitions": {"Level": {"enum": [1, 2, 3]}}}
    p = param("level", "query", schema)
    _, query, _, _, errors = decode([p], query="level=2")
    assert errors == []
    assert query == {"level": 2}


def test_coercion_failures_of_several_params_are_all_listed() -> None:
    params = [
        param("limit", "query", {"type": "integer"}),
        param("flag", "query", {"type": "boolean"}),
        param("ids", "query", {"type": "array", "items": {"type": "integer"}}, explode=False),
        param("id", "path", {"type": "integer"}),
        param("X-Rate", "header", {"type": "number"}),
        param("ok", "query", STRING),
    ]
    _, query, _, _, errors = decode(params, {"id": "abc"},
                                    query="limit=ten&flag=maybe&ids=1,x,3&ok=fine",
                                    headers={"X-Rate": "fast"})
    assert query == {"ok": "fine"}
    assert [(e["in"], e["name"]) for e in errors] == [
        ("path", "id"), ("query", "limit"), ("query", "flag"), ("query", "ids"),
        ("header", "X-Rate")]
    ids_error = errors[3]["message"]
    assert "'x'" in ids_error and "/1" in ids_error


def test_schema_violations_after_coercion() -> None:
    limit = param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 100})
    status = param("status", "query", {"type": "string", "enum": ["open", "closed"]})
    _, query, _, _, errors = decode([limit, status], query="limit=500&status=lost")
    assert query == {}
    assert [(e["in"], e["name"]) for e in errors] == [("query", "limit"), ("query", "status")]


def test_object_property_that_does_not_coerce() -> None:
    p = param("color", "query", RGB, style="deepObject", explode=True)
    _, _, _, _, errors = decode([p], query="color[R]=red")
    assert len(errors) == 1
    assert "/R" in errors[0]["message"]


# --- presence, defaults, required ---------------------------------------------------------

def test_defaults_are_injected_when_absent() -> None:
    params = [
        param("limit", "query", {"type": "integer", "default": 20}, default=20),
        param("tags", "query", ARRAY, default=["a"]),
        param("X-Mode", "header", STRING, default="fast"),
        param("theme", "cookie", STRING, default="dark"),
    ]
    decoder = ParameterDecoder(params)
    _, query, headers, cookies, errors = decoder.decode({}, environ())
    assert errors == []
    assert query == {"limit": 20, "tags": ["a"]}
    assert headers == {"x-mode": "fast"}
    assert cookies == {"theme": "dark"}
    query["tags"].append("changed")
    _, query, _, _, _ = decoder.decode({}, environ())
    assert query["tags"] == ["a"]  # a mutable default is not shared between requests
    _, query, _, _, _ = decoder.decode({}, environ(query="limit=5"))
    assert query["limit"] == 5


def test_required_missing_params_are_listed() -> None:
    params = [
        param("id", "path", {"type": "integer"}),
        param("q", "query", STRING, required=True),
        param("X-Token", "header", STRING, required=True),
        param("session", "cookie", STRING, required=True),
        param("optional", "query", STRING),
    ]
    _, query, _, _, errors = decode(params)
    assert query == {}
    assert [(e["in"], e["name"]) for e in errors] == [
        ("path", "id"), ("query", "q"), ("header", "X-Token"), ("cookie", "session")]
    assert all("missing" in e["message"] for e in errors)


def test_blank_value_is_present() -> None:
    p = param("q", "query", STRING, required=True)
    _, query, _, _, errors = decode([p], query="q=")
    assert errors == []
    assert query == {"q": ""}


# --- headers, cookies, content ---------------------------------------------------------

def test_headers_are_keyed_lower_case_and_reserved_ones_ignored() -> None:
    params = [
        param("X-Request-Count", "header", {"type": "integer"}),
        param("Accept", "header", STRING, required=True),
        param("Authorization", "header", STRING, required=True),
        param("Content-Length", "header", {"type": "integer"}),
    ]
    env = environ(headers={"X-Request-Count": "3", "Accept": "text/html"})
    env["CONTENT_LENGTH"] = "12"
    _, _, headers, _, errors = ParameterDecoder(params).decode({}, env)
    assert errors == []
    assert headers == {"x-request-count": 3, "content-length": 12}


def test_every_cookie_is_returned_and_declared_ones_coerced() -> None:
    p = param("count", "cookie", {"type": "integer"})
    _, _, _, cookies, errors = decode([p], cookie="count=3; session=abc; pref=%7Bx%7D")
    assert errors == []
    assert cookies == {"count": 3, "session": "abc", "pref": "%7Bx%7D"}


def test_cookies_without_cookie_params() -> None:
    p = param("q", "query", STRING)
    _, _, _, cookies, _ = decode([p], cookie="a=1; b=2")
    assert cookies == {"a": "1", "b": "2"}
    _, _, _, cookies, _ = decode([p])
    assert cookies == {}


def test_json_content_parameter() -> None:
    schema = {"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}}
    p = param("filter", "query", schema, content_type="application/json")
    _, query, _, _, errors = decode([p], query="filter=%7B%22a%22%3A1%7D")
    assert errors == []
    assert query == {"filter": {"a": 1}}
    _, query, _, _, errors = decode([p], query="filter=%7Bnope")
    assert query == {}
    assert len(errors) == 1 and errors[0]["message"].startswith("malformed JSON")
    _, query, _, _, errors = decode([p], query="filter=%7B%7D")
    assert [(e["in"], e["name"]) for e in errors] == [("query", "filter")]


def test_json_content_in_header_path_and_cookie() -> None:
    params = [
        param("X-Meta", "header", content_type="application/json"),
        param("doc", "path", content_type="application/json"),
        param("pref", "cookie", content_type="application/json"),
        param("raw", "query", content_type="text/plain"),
    ]
    path, query, headers, cookies, errors = decode(
        params, {"doc": "%5B1%2C2%5D"}, query="raw=a%2Cb", headers={"X-Meta": '{"a": true}'},
        cookie="pref=%7B%7D")
    assert errors == []
    assert path == {"doc": [1, 2]}
    assert headers == {"x-meta": {"a": True}}
    assert cookies == {"pref": {}}
    assert query == {"raw": "a,b"}

@pytest.mark.parametrize(("raw", "where", "words"), [
    ("%7B%22a%22%3A%22x%5Cud800%22%7D", "/a", "not valid Unicode"),  # {"a":"x\ud800"}
    ("%7B%22%5CuDFFF%22%3A1%7D", "/\\udfff", "member name is not valid Unicode"),
    ("%7B%22a%22%3A1e400%7D", "/a", "malformed JSON"),  # {"a":1e400}
    ("%7B%22a%22%3A%5BNaN%5D%7D", "/a/0", "malformed JSON"),
])
def test_json_content_that_no_encoder_could_write_back_is_an_error(raw: str, where: str,
                                                                   words: str) -> None:
    p = param("filter", "query", content_type="application/json")
    _, query, _, _, errors = decode([p], query=f"filter={raw}")
    assert query == {}
    assert [(e["in"], e["name"]) for e in errors] == [("query", "filter")]
    assert words in errors[0]["message"] and f"(at {where})" in errors[0]["message"]
    _, query, _, _, errors = decode(  # the same refused in a JSON cookie, a JSON header
        [param("pref", "cookie", content_type="application/json"),
         param("X-Meta", "header", content_type="application/json")],
        cookie=f"pref={raw}", headers={"X-Meta": unquote(raw)})
    assert [(e["in"], e["name"]) for e in errors] == [("header", "X-Meta"), ("cookie", "pref")]



# --- objects spread over keys -------------------------------------------------------------

def test_deep_object_with_additional_properties() -> None:
    schema = {"type": "object", "additionalProperties": {"type": "string"}}
    filters = param("filters", "query", schema, style="deepObject", explode=True)
    tags = param("tags", "query", ARRAY, style="pipeDelimited", explode=False)
    _, query, _, _, errors = decode([filters, tags],
                                    query="filters[color]=red&filters[size]=L&tags=a|b&x=1")
    assert errors == []
    assert query == {"filters": {"color": "red", "size": "L"}, "tags": ["a", "b"]}


def test_deep_object_array_property_collects_repeats() -> None:
    schema = {"type": "object", "properties": {"ids": {"type": "array",
                                                       "items": {"type": "integer"}}}}
    p = param("f", "query", schema, style="deepObject", explode=True)
    _, query, _, _, errors = decode([p], query="f[ids]=1&f[ids]=2")
    assert errors == []
    assert query == {"f": {"ids": [1, 2]}}


def test_open_form_object_takes_the_keys_nobody_else_claims() -> None:
    rest = param("rest", "query", {"type": "object", "additionalProperties": {"type": "integer"}})
    limit = param("limit", "query", {"type": "integer"})
    deep = param("d", "query", {"type": "object"}, style="deepObject", explode=True)
    _, query, _, _, errors = decode([rest, limit, deep], query="limit=1&a=2&b=3&d[x]=y")
    assert errors == []
    assert query == {"rest": {"a": 2, "b": 3}, "limit": 1, "d": {"x": "y"}}


def test_absent_spread_object_is_absent() -> None:
    p = param("color", "query", RGB, required=True)
    _, query, _, _, errors = decode([p], query="other=1")
    assert query == {}
    assert [e["name"] for e in errors] == ["color"]


# --- malformed values and start errors -------------------------------------------------

@pytest.mark.parametrize(("style", "explode", "schema", "raw"), [
    ("label", False, STRING, "blue"),
    ("matrix", False, STRING, ";other=blue"),
    ("matrix", True, ARRAY, ";color=a;other=b"),
    ("simple", False, RGB, "R,100,G"),
])
def test_malformed_path_values(style: str, explode: bool, schema: dict[str, Any],
                               raw: str) -> None:
    p = param("color", "path", schema, style=style, explode=explode)
    path, _, _, _, errors = decode([p], {"color": raw})
    assert path == {}
    assert [(e["in"], e["name"]) for e in errors] == [("path", "color")]


def test_unsupported_combinations_are_spec_errors() -> None:
    params = [
        param("a", "query", ARRAY, style="deepObject", explode=True),
        param("b", "query", STRING, style="matrix"),
        param("c", "query", STRING, style="pipeDelimited", explode=False),
        param("d", "header", STRING, style="form"),
        param("e", "path", STRING, style="form"),
        param("f", "body", STRING),
        param("ok", "query", STRING),
    ]
    with pytest.raises(SpecError) as info:
        ParameterDecoder(params)
    wheres = [where for where, _ in info.value.problems]
    assert wheres == [f"/paths/~1x/get/parameters/{n}" for n in "abcdef"]


def test_no_parameters_of_a_location() -> None:
    decoder = ParameterDecoder([param("id", "path", {"type": "integer"})])
    path, query, headers, cookies, errors = decoder.decode({"id": "7"}, {"QUERY_STRING": "a=1"})
    assert (path, query, headers, cookies, errors) == ({"id": 7}, {}, {}, {}, [])


@pytest.mark.parametrize(("location", "raw"), [
    ("query", "caf%E9"), ("query", "caf\xc3"), ("path", "%ff"), ("cookie", "a%C3")])
def test_values_that_are_not_utf8_once_percent_decoded_are_errors(location: str,
                                                                  raw: str) -> None:
    p = param("v", location, STRING)
    source: dict[str, Any] = {"path": {"v": raw}}
    if location != "path":
        source[location] = f"v={raw}"
    *_, errors = decode([p], source.pop("path"), **source)
    assert [(e["in"], e["name"]) for e in errors] == [(location, "v")]
    assert "is not UTF-8 text once percent-decoded" in errors[0]["message"]


def test_values_that_are_utf8_once_percent_decoded() -> None:
    params = [param("p", "path", STRING), param("q", "query", STRING),
              param("c", "cookie", STRING)]
    path, query, _, cookies, errors = decode(params, {"p": "caf%C3%A9"}, query="q=caf%C3%A9+x",
                                             cookie="c=caf%C3%A9")
    assert errors == []
    assert (path, query, cookies) == ({"p": "café"}, {"q": "café x"}, {"c": "café"})
