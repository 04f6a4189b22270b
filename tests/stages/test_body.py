"""Request bodies: size limits, content negotiation, JSON, forms, multipart, text and bytes."""
from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from http_app import problem

from brrt_actors.app import App
from brrt_actors.errors import HTTPError
from brrt_actors.handler import UploadedFile
from brrt_actors.spec.model import MediaType, RequestBody
from brrt_actors.stages.body import BodyReader
from brrt_actors.testing import Client

PET = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
}


def reader(content: dict[str, dict[str, Any] | None], *, required: bool = False,
           max_body_bytes: int = 1024, encoding: dict[str, Any] | None = None,
           **kwargs: Any) -> BodyReader:
    media = {ct: MediaType(ct, f"/requestBody/content/{ct}", schema=schema,
                           encoding=encoding or {})
             for ct, schema in content.items()}
    body = RequestBody(pointer="/paths/~1pets/post/requestBody", required=required,
                       content=media)
    return BodyReader(body, max_body_bytes, **kwargs)


def environ(body: bytes, content_type: str | None = "application/json", *,
            length: bool = True) -> dict[str, Any]:
    env: dict[str, Any] = {"REQUEST_METHOD": "POST", "PATH_INFO": "/pets",
                           "wsgi.input": io.BytesIO(body)}
    if content_type is not None:
        env["CONTENT_TYPE"] = content_type
    if length:
        env["CONTENT_LENGTH"] = str(len(body))
    else:
        env["wsgi.input_terminated"] = True
    return env


class NeverRead:
    """A wsgi.input that fails the test when anything reads it."""

    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the body was read")


class CountingInput(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.consumed = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.consumed += len(chunk)
        return chunk


# --- JSON ---------------------------------------------------------------------------

def test_json_body() -> None:
    value, errors = reader({"application/json": PET}).read(environ(b'{"name": "Rex", "age": 3}'))
    assert errors == []
    assert value == {"name": "Rex", "age": 3}


@pytest.mark.parametrize("content_type", [
    "application/json; charset=utf-8", "Application/JSON", "application/merge-patch+json",
    "application/vnd.api+json; charset=UTF-8",
])
def test_json_media_type_matching(content_type: str) -> None:
    value, errors = reader({"application/json": PET}).read(environ(b'{"name": "Rex"}',
                                                                    content_type))
    assert errors == []
    assert value == {"name": "Rex"}


def test_declared_json_pattern() -> None:
    r = reader({"application/*+json": PET})
    value, errors = r.read(environ(b'{"name": "Rex"}', "application/problem+json"))
    assert (value, errors) == ({"name": "Rex"}, [])


def test_malformed_json_is_an_error_item_not_a_missing_body() -> None:
    value, errors = reader({"application/json": PET}, required=True).read(environ(b'{"name": '))
    assert value is None
    assert len(errors) == 1
    assert errors[0]["in"] == "body"
    assert errors[0]["message"].startswith("malformed JSON")


def test_every_schema_violation_is_listed_with_its_pointer() -> None:
    schema = {**PET, "properties": {**PET["properties"],
                                    "tags": {"type": "array", "items": {"type": "string"}}}}
    value, errors = reader({"application/json": schema}).read(
        environ(b'{"age": -1, "tags": ["ok", 7]}'))
    assert value == {"age": -1, "tags": ["ok", 7]}
    # a missing required property is pointed at where it should be
    assert sorted(e["pointer"] for e in errors) == ["/age", "/name", "/tags/1"]
    assert all(e["in"] == "body" and e["message"] for e in errors)


# --- negotiation ---------------------------------------------------------------------

def test_undeclared_content_type_is_415_listing_accepted_types() -> None:
    r = reader({"application/json": PET, "application/xml": None})
    with pytest.raises(HTTPError) as info:
        r.read(environ(b"name=Rex", "application/x-www-form-urlencoded"))
    assert info.value.status == 415
    assert "application/json" in (info.value.detail or "")
    assert "application/xml" in (info.value.detail or "")


def test_missing_content_type_with_a_body_is_415() -> None:
    with pytest.raises(HTTPError) as info:
        reader({"application/json": PET}).read(environ(b'{"name": "Rex"}', None))
    assert info.value.status == 415


def test_415_comes_before_reading() -> None:
    env = environ(b"<pet/>", "application/xml")
    env["wsgi.input"] = NeverRead()
    with pytest.raises(HTTPError) as info:
        reader({"application/json": PET}).read(env)
    assert info.value.status == 415


def test_wildcards() -> None:
    r = reader({"application/*": PET, "*/*": {"type": "string", "format": "binary"}})
    value, errors = r.read(environ(b'{"name": "Rex"}', "application/json"))
    assert (value, errors) == ({"name": "Rex"}, [])
    value, errors = r.read(environ(b"\x00\x01", "image/png"))
    assert (value, errors) == (b"\x00\x01", [])
    with pytest.raises(HTTPError):
        reader({"text/*": None}).read(environ(b"x", "image/png"))


# --- size ------------------------------------------------------------------------------

def test_content_length_over_the_limit_is_413_without_reading() -> None:
    env = environ(b"", "application/json")
    env["CONTENT_LENGTH"] = "1025"
    env["wsgi.input"] = NeverRead()
    with pytest.raises(HTTPError) as info:
        reader({"application/json": PET}).read(env)
    assert info.value.status == 413


def test_chunked_body_over_the_limit_is_413() -> None:
    stream = CountingInput(b"x" * 5000)
    env = environ(b"", "application/json", length=False)
    env["wsgi.input"] = stream
    with pytest.raises(HTTPError) as info:
        reader({"application/json": PET}, max_body_bytes=100).read(env)
    assert info.value.status == 413
    assert stream.consumed == 101


def test_chunked_body_within_the_limit() -> None:
    env = environ(b'{"name": "Rex"}', length=False)
    value, errors = reader({"application/json": PET}).read(env)
    assert (value, errors) == ({"name": "Rex"}, [])


@pytest.mark.parametrize("length", ["abc", "-1", "1.5", "\u0661"])
def test_bad_content_length_is_400(length: str) -> None:
    env = environ(b"{}")
    env["CONTENT_LENGTH"] = length
    with pytest.raises(HTTPError) as info:
        reader({"application/json": PET}).read(env)
    assert info.value.status == 400


def test_body_shorter_than_content_length() -> None:
    env = environ(b'{"name"')
    env["CONTENT_LENGTH"] = "100"
    value, errors = reader({"application/json": PET}).read(env)
    assert value is None
    assert len(errors) == 1 and "shorter" in errors[0]["message"]


# --- empty bodies ------------------------------------------------------------------------

@pytest.mark.parametrize("env", [
    environ(b""), environ(b"", None), environ(b"", length=False),
    {"REQUEST_METHOD": "POST", "wsgi.input": io.BytesIO(b"")},
])
def test_empty_body(env: dict[str, Any]) -> None:
    assert reader({"application/json": PET}).read(dict(env, **{"wsgi.input": io.BytesIO()})) \
        == (None, [])
    value, errors = reader({"application/json": PET}, required=True).read(
        dict(env, **{"wsgi.input": io.BytesIO()}))
    assert value is None
    assert errors == [{"in": "body", "message": "request body is required"}]


# --- forms -------------------------------------------------------------------------------

FORM = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "format": "int32"},
        "weight": {"type": "number"},
        "vaccinated": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "scores": {"type": "array", "items": {"type": "integer"}},
        "owner": {"type": "object", "properties": {"id": {"type": "integer"}}},
        "note": {"type": ["string", "null"]},
    },
}
FORM_TYPE = "application/x-www-form-urlencoded"


def test_form_fields_are_coerced_per_schema() -> None:
    body = (b"name=Rex+the+dog&age=3&weight=4.5&vaccinated=true&tags=a&tags=b"
            b"&scores=1&scores=2&owner=%7B%22id%22%3A7%7D&note=&extra=x&extra=y&other=")
    value, errors = reader({FORM_TYPE: FORM}).read(environ(body, FORM_TYPE))
    assert errors == []
    assert value == {"name": "Rex the dog", "age": 3, "weight": 4.5, "vaccinated": True,
                     "tags": ["a", "b"], "scores": [1, 2], "owner": {"id": 7}, "note": "",
                     "extra": ["x", "y"], "other": ""}


def test_form_deep_object_keys_and_unexploded_arrays() -> None:
    r = reader({FORM_TYPE: FORM}, encoding={"scores": {"style": "form", "explode": False}})
    value, errors = r.read(environ(b"name=Rex&owner[id]=7&scores=1,2,3", FORM_TYPE))
    assert errors == []
    assert value == {"name": "Rex", "owner": {"id": 7}, "scores": [1, 2, 3]}


def test_form_values_that_do_not_coerce_are_reported_by_the_schema() -> None:
    value, errors = reader({FORM_TYPE: FORM}).read(
        environ(b"age=old&scores=1&scores=x&vaccinated=maybe", FORM_TYPE))
    assert value == {"age": "old", "scores": [1, "x"], "vaccinated": "maybe"}
    assert sorted(e["pointer"] for e in errors) == ["/age", "/name", "/scores/1", "/vaccinated"]


def test_form_field_limit() -> None:
    with pytest.raises(HTTPError) as info:
        reader({FORM_TYPE: None}, max_parts=3).read(environ(b"a=1&b=2&c=3&d=4", FORM_TYPE))
    assert info.value.status == 413


# --- multipart -----------------------------------------------------------------------------

UPLOAD = {
    "type": "object",
    "required": ["file", "metadata"],
    "properties": {
        "file": {"type": "string", "format": "binary", "minLength": 1},
        "description": {"type": "string"},
        "count": {"type": "integer"},
        "metadata": {"type": "object", "required": ["kind"],
                     "properties": {"kind": {"type": "string"}}},
        "attachments": {"type": "array", "items": {"type": "string", "format": "binary"}},
        "labels": {"type": "array", "items": {"type": "string"}},
    },
}
BOUNDARY = "----brrt-test-boundary"
MULTIPART_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def multipart_body(*parts: tuple[str, str | None, str | None, bytes]) -> bytes:
    out = []
    for name, filename, content_type, content in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        out.append(head.encode() + b"\r\n" + content + b"\r\n")
    return b"".join(out) + f"--{BOUNDARY}--\r\n".encode()


def test_multipart_with_a_file_fields_and_json_metadata() -> None:
    body = multipart_body(
        ("file", "photo.png", "image/png", b"\x89PNG\r\n\x00data"),
        ("description", None, None, "Rex at the beach \u2600".encode()),
        ("count", None, None, b"2"),
        ("metadata", None, "application/json", b'{"kind": "photo"}'),
        ("labels", None, None, b"dog"),
        ("labels", None, None, b"beach"),
        ("attachments", "a.txt", "text/plain", b"A"),
        ("attachments", "b.txt", "text/plain", b"B"),
    )
    value, errors = reader({"multipart/form-data": UPLOAD}).read(environ(body, MULTIPART_TYPE))
    assert errors == []
    upload = value["file"]
    assert isinstance(upload, UploadedFile)
    assert (upload.name, upload.filename, upload.content_type) == ("file", "photo.png",
                                                                   "image/png")
    assert upload.content == b"\x89PNG\r\n\x00data"
    assert upload.headers["content-type"] == "image/png"
    assert value["description"] == "Rex at the beach \u2600"
    assert value["count"] == 2
    assert value["metadata"] == {"kind": "photo"}
    assert value["labels"] == ["dog", "beach"]
    assert [a.filename for a in value["attachments"]] == ["a.txt", "b.txt"]


def test_multipart_object_field_without_content_type_is_json() -> None:
    body = multipart_body(("file", "f.bin", None, b"x"), ("metadata", None, None, b'{"kind":"k"}'))
    value, errors = reader({"multipart/form-data": UPLOAD}).read(environ(body, MULTIPART_TYPE))
    assert errors == []
    assert value["metadata"] == {"kind": "k"}
    assert value["file"].content_type == "application/octet-stream"


def test_multipart_binary_property_without_filename_is_a_file() -> None:
    body = multipart_body(("file", None, None, b"raw"), ("metadata", None, None, b'{"kind":"k"}'))
    value, errors = reader({"multipart/form-data": UPLOAD}).read(environ(body, MULTIPART_TYPE))
    assert errors == []
    assert isinstance(value["file"], UploadedFile)
    assert value["file"].filename is None


def test_multipart_schema_errors_see_files_as_strings() -> None:
    body = multipart_body(("file", "empty.bin", None, b""), ("count", None, None, b"many"),
                          ("metadata", None, "application/json", b'{"other": 1}'))
    value, errors = reader({"multipart/form-data": UPLOAD}).read(environ(body, MULTIPART_TYPE))
    assert isinstance(value["file"], UploadedFile)
    assert sorted(e["pointer"] for e in errors) == ["/count", "/file", "/metadata/kind"]


def test_multipart_missing_file_is_a_schema_error() -> None:
    body = multipart_body(("metadata", None, None, b'{"kind": "k"}'))
    value, errors = reader({"multipart/form-data": UPLOAD}).read(environ(body, MULTIPART_TYPE))
    assert value == {"metadata": {"kind": "k"}}
    assert [e["pointer"] for e in errors] == ["/file"]


def test_multipart_malformed_json_part() -> None:
    body = multipart_body(("file", "f", None, b"x"),
                          ("metadata", None, "application/json", b"{nope"))
    _, errors = reader({"multipart/form-data": UPLOAD}).read(environ(body, MULTIPART_TYPE))
    assert len(errors) == 1
    assert errors[0]["pointer"] == "/metadata"
    assert errors[0]["message"].startswith("malformed JSON")


@pytest.mark.parametrize(("body", "content_type"), [
    (b"--x\r\nno end", "multipart/form-data; boundary=x"),
    (multipart_body(("a", None, None, b"1")), "multipart/form-data"),
    (b"garbage without any boundary", MULTIPART_TYPE),
    (f"--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode(),
     MULTIPART_TYPE),
])
def test_malformed_multipart_is_an_error_item(body: bytes, content_type: str) -> None:
    value, errors = reader({"multipart/form-data": None}).read(environ(body, content_type))
    assert value is None
    assert len(errors) == 1
    assert errors[0]["in"] == "body"
    assert errors[0]["message"].startswith("malformed multipart body")


def test_multipart_part_limit() -> None:
    body = multipart_body(*[(f"f{i}", None, None, b"x") for i in range(5)])
    with pytest.raises(HTTPError) as info:
        reader({"multipart/form-data": None}, max_parts=4).read(environ(body, MULTIPART_TYPE))
    assert info.value.status == 413


# --- text and bytes ----------------------------------------------------------------------

def test_text_body_is_decoded_with_its_charset() -> None:
    r = reader({"text/plain": {"type": "string", "maxLength": 3}})
    value, errors = r.read(environ("caf\u00e9".encode("latin-1"), "text/plain; charset=latin-1"))
    assert value == "caf\u00e9"
    assert [e["pointer"] for e in errors] == [""]  # longer than maxLength
    value, errors = r.read(environ(b"abc", "text/plain"))
    assert (value, errors) == ("abc", [])
    value, errors = r.read(environ(b"\xff\xfe", "text/plain"))
    assert value is None and len(errors) == 1


def test_binary_body_is_raw_bytes() -> None:
    r = reader({"application/octet-stream": {"type": "string", "format": "binary"}})
    assert r.read(environ(b"\x00\xff", "application/octet-stream")) == (b"\x00\xff", [])


def test_no_declared_content_accepts_anything_as_bytes() -> None:
    r = BodyReader(RequestBody(pointer="/requestBody"), 100)
    assert r.read(environ(b"abc", "application/whatever")) == (b"abc", [])


# --- odd corners ---------------------------------------------------------------------------

class TrickleInput(io.BytesIO):
    """Hands out at most 3 bytes per read, as a slow socket may."""

    def read(self, size: int | None = -1) -> bytes:
        return super().read(min(3, size if size is not None and size >= 0 else 3))


def test_body_arriving_in_small_pieces() -> None:
    env = environ(b'{"name": "Rex"}')
    env["wsgi.input"] = TrickleInput(b'{"name": "Rex"}')
    assert reader({"application/json": PET}).read(env) == ({"name": "Rex"}, [])


def test_nan_and_infinity_are_not_json() -> None:
    value, errors = reader({"application/json": None}).read(environ(b'{"age": NaN}'))
    assert value is None
    assert errors[0]["message"].startswith("malformed JSON")


def test_any_json_wildcard() -> None:
    r = reader({"*/*+json": None})
    assert r.read(environ(b"[1]", "application/vnd.x+json")) == ([1], [])


def test_form_with_unknown_charset() -> None:
    value, errors = reader({FORM_TYPE: None}).read(environ(b"a=1", FORM_TYPE + "; charset=nope"))
    assert value is None
    assert "charset" in errors[0]["message"]


def test_form_deep_object_value_that_does_not_coerce() -> None:
    value, errors = reader({FORM_TYPE: FORM}).read(environ(b"name=x&owner[id]=seven", FORM_TYPE))
    assert value == {"name": "x", "owner": {"id": "seven"}}
    assert [e["pointer"] for e in errors] == ["/owner/id"]


def test_multipart_field_not_in_its_charset() -> None:
    body = multipart_body(("note", None, "text/plain; charset=utf-8", b"\xff\xfe"))
    value, errors = reader({"multipart/form-data": None}).read(environ(body, MULTIPART_TYPE))
    assert value == {}
    assert errors == [{"in": "body", "pointer": "/note",
                       "message": "the part is not text in its charset"}]


# --- text that is not Unicode, numbers that are not finite (issue 9) -----------------------

@pytest.mark.parametrize(("body", "pointers"), [
    (b'{"name": "Evil\\ud800", "breed": "Poodle"}', ["/name"]),  # a lone high surrogate
    (b'{"name": "x", "tags": [{"deep": ["ok", "\\uDC00"]}]}', ["/tags/0/deep/1"]),  # low
    (b'{"\\udfff": 1, "name": "\\ud83d"}', ["/\\udfff", "/name"]),  # a member name, a value
    (b'{"name": "\xed\xa0\x80"}', ["/name"]),  # a surrogate encoded in UTF-8 bytes
    (b'"\\ud800"', [""]),
])
def test_json_text_that_is_not_unicode_is_an_error_naming_where(body: bytes,
                                                                pointers: list[str]) -> None:
    value, errors = reader({"application/json": None}).read(environ(body))
    assert value is None
    assert [e["pointer"] for e in errors] == pointers
    assert all(e["in"] == "body" and "not valid Unicode" in e["message"] for e in errors)


@pytest.mark.parametrize("body", [b'{"price": 1e400}', b'{"price": -1E+309}',
                                  b'{"price": ' + b"1" * 310 + b'.5}', b'{"price": NaN}',
                                  b'{"price": -Infinity}'])
def test_json_numbers_beyond_the_float_range_are_errors(body: bytes) -> None:
    value, errors = reader({"application/json": None}).read(environ(body))
    assert value is None
    assert [(e["pointer"], e["message"].startswith("malformed JSON")) for e in errors] == [
        ("/price", True)]


def test_json_that_only_looks_suspect_is_read_as_it_is() -> None:
    body = (b'{"emoji": "\\ud83d\\ude00", "hangul": "\\ud55c\xed\x95\x9c", "big": 1e308, '
            b'"tiny": 1e-400, "text": "NaN Infinity e400 \\\\ud800", "int": 1' + b"0" * 400 + b"}")
    value, errors = reader({"application/json": None}).read(environ(body))
    assert errors == []
    assert value["emoji"] == "\U0001f600" and value["hangul"] == "\ud55c\ud55c"
    assert (value["big"], value["tiny"], value["int"]) == (1e308, 0.0, 10 ** 400)
    assert value["text"] == "NaN Infinity e400 \\ud800"


def test_form_fields_that_are_not_text_in_their_charset_are_errors() -> None:
    value, errors = reader({FORM_TYPE: None}).read(
        environ(b"name=ok&bio=caf%E9&n%FFme=1&raw=\xff", FORM_TYPE))
    assert value is None
    assert errors == [
        {"in": "body", "pointer": "/bio", "message": "is not text in utf-8"},
        {"in": "body", "pointer": "/n\\udcffme", "message": "the field name is not text in utf-8"},
        {"in": "body", "pointer": "/raw", "message": "is not text in utf-8"}]
    value, errors = reader({FORM_TYPE: None}).read(  # the same bytes, in their charset
        environ(b"bio=caf%E9", FORM_TYPE + "; charset=latin-1"))
    assert (value, errors) == ({"bio": "caf\u00e9"}, [])


def test_charsets_that_decode_to_lone_surrogates_are_refused() -> None:
    # NOTE: "+2AA-" is UTF-7 for a lone U+D800, which no response could carry.
    value, errors = reader({FORM_TYPE: None}).read(
        environ(b"name=%2B2AA-", FORM_TYPE + "; charset=utf-7"))
    assert value is None and [e["pointer"] for e in errors] == ["/name"]
    text = reader({"text/plain": {"type": "string"}})
    value, errors = text.read(environ(b"+2AA-", "text/plain; charset=utf-7"))
    assert value is None and errors == [
        {"in": "body", "message": "the body is not text in 'utf-7'"}]
    assert text.read(environ(b"+AOk-", "text/plain; charset=utf-7")) == ("\u00e9", [])
    body = multipart_body(("note", None, "text/plain; charset=utf-7", b"+2AA-"),
                          ("metadata", None, "application/json", b'{"k": ["\\udbff"]}'))
    value, errors = reader({"multipart/form-data": None}).read(environ(body, MULTIPART_TYPE))
    assert [(e["pointer"], e["message"]) for e in errors] == [
        ("/note", "the part is not text in its charset"),
        ("/metadata/k/0",
         "is not valid Unicode text (a lone surrogate, U+DBFF, at character 0)")]


# -- the body stage in an app ----------------------------------------------------------------

def test_malformed_json_is_400_not_missing_body(client: Client) -> None:
    body = problem(client.post("/items", data=b'{"name": ', content_type="application/json"),
                   400)
    messages = " ".join(error["message"] for error in body["errors"])
    assert body["errors"][0]["in"] == "body"
    assert "required" not in messages


def test_missing_body_is_400(client: Client) -> None:
    body = problem(client.post("/items"), 400)
    assert body["errors"] == [{"in": "body", "message": "request body is required"}]


def test_wrong_content_type_is_415(client: Client) -> None:
    body = problem(client.post("/items", data=b"name=x",
                               content_type="application/x-www-form-urlencoded"), 415)
    assert "application/json" in body["detail"]


def test_body_over_the_limit_is_413(make_app: Callable[..., App]) -> None:
    client = Client(make_app(BRRTR_MAX_BODY_BYTES="64"))
    assert client.post("/items", json={"name": "n"}).status == 201
    problem(client.post("/items", json={"name": "n" * 100}), 413)


class _Unreadable(io.BytesIO):
    """A ``wsgi.input`` that fails as a stalled or cut-off upload does."""

    def __init__(self, status: int | None) -> None:
        super().__init__()
        self.status = status

    def read(self, size: int | None = -1) -> bytes:
        error = OSError("the client stopped sending")
        if self.status is not None:
            error.status = self.status  # type: ignore[attr-defined]
        raise error


@pytest.mark.parametrize(("engine_status", "expected"), [(408, 408), (413, 413), (None, 400)])
def test_an_unreadable_body_is_the_clients_fault(make_app: Callable[..., App],
                                                 caplog: pytest.LogCaptureFixture,
                                                 engine_status: int | None,
                                                 expected: int) -> None:
    app = make_app()
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/items", "CONTENT_LENGTH": "20",
               "CONTENT_TYPE": "application/json", "wsgi.input": _Unreadable(engine_status),
               "HTTP_X_API_KEY": "s3cret"}
    statuses: list[str] = []
    body = b"".join(app(environ, lambda status, headers, exc=None: statuses.append(status)))
    assert statuses[0].startswith(str(expected))
    assert b"the request body could not be read" in body
    assert not [record for record in caplog.records if record.levelname == "ERROR"]
