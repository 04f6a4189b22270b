"""Property tests of the body reader: any bytes, any Content-Type, any framing: an answer.

`BodyReader.read` must give (value, error items) or raise `HTTPError` with a client status
(400, 413, 415), never anything else; and a value it accepts without an error item must be
one a response can carry: encodable as strict JSON (no NaN or Infinity) in UTF-8, so that
nothing stored from a request can break a later read. ``PROPERTY_EXAMPLES`` sets the
examples per test.
"""
from __future__ import annotations

import io
import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brrt_actors.errors import HTTPError
from brrt_actors.handler import UploadedFile
from brrt_actors.spec.model import MediaType, RequestBody
from brrt_actors.stages.body import BodyReader

EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "60"))
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
LIMIT = 4096
BOUNDARY = "brrtBoundary42"

ITEM = {"type": "object", "properties": {
    "name": {"type": "string"}, "price": {"type": "number"}, "count": {"type": "integer"},
    "tags": {"type": "array", "items": {"type": "string"}}, "on": {"type": "boolean"}}}
CONTENT = {
    "application/json": MediaType("application/json", "/json", schema={}),
    "application/x-www-form-urlencoded": MediaType("application/x-www-form-urlencoded",
                                                   "/form", schema=ITEM),
    "multipart/form-data": MediaType("multipart/form-data", "/multipart", schema={
        "type": "object", "properties": {**ITEM["properties"],
                                         "file": {"type": "string", "format": "binary"}}}),
    "text/plain": MediaType("text/plain", "/text", schema={"type": "string"}),
}
CONTENT_TYPES = st.sampled_from([
    "application/json", "application/json; charset=utf-8", "application/problem+json",
    "application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=latin-1",
    f"multipart/form-data; boundary={BOUNDARY}", "multipart/form-data",
    "multipart/form-data; boundary=", "text/plain", "text/plain; charset=utf-7",
    "text/plain; charset=nope", "application/octet-stream", "", "*/*", ";;", "a/b; c=\"d",
])


def reader() -> BodyReader:
    return BodyReader(RequestBody("/body", required=True, content=dict(CONTENT)), LIMIT,
                      max_parts=50)


def environ(body: bytes, content_type: str, framing: str) -> dict[str, Any]:
    env: dict[str, Any] = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": content_type,
                           "wsgi.input": io.BytesIO(body)}
    if framing == "length":
        env["CONTENT_LENGTH"] = str(len(body))
    elif framing == "short":  # the client promised more than it sent
        env["CONTENT_LENGTH"] = str(len(body) + 7)
    elif framing == "chunked":
        env["wsgi.input_terminated"] = True
    return env


def _servable(value: Any) -> None:
    """Raise when `value` is not something a JSON response can carry."""
    if isinstance(value, UploadedFile):
        return
    if isinstance(value, bytes):
        return
    if isinstance(value, dict):
        for key, item in value.items():
            key.encode("utf-8")
            _servable(item)
        return
    if isinstance(value, list):
        for item in value:
            _servable(item)
        return
    json.dumps(value, allow_nan=False).encode("utf-8")


def check(body: bytes, content_type: str, framing: str) -> None:
    try:
        value, errors = reader().read(environ(body, content_type, framing))
    except HTTPError as ex:
        assert ex.status in (400, 413, 415), ex
        return
    assert isinstance(errors, list)
    assert all(isinstance(error, dict) and error.get("message") for error in errors), errors
    if not errors:
        _servable(value)


FRAMING = st.sampled_from(["length", "short", "chunked", "none"])

# JSON-like text: valid documents, then the hostile spellings of their numbers and strings.
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner,
                                                                 max_size=4),
    max_leaves=12)
HOSTILE = st.sampled_from(['"\\ud800"', '"a\\udfff"', "1e400", "-1e400", "NaN", "Infinity",
                           "[" * 300 + "]" * 300, '{"a":' * 200 + "1" + "}" * 200,
                           "1" * 5000, '"\\u0000"', "\ufeff{}", '{"a":1,"a":2}'])


@PROPERTY
@given(st.binary(max_size=600), CONTENT_TYPES, FRAMING)
def test_any_bytes_get_an_answer(body: bytes, content_type: str, framing: str) -> None:
    check(body, content_type, framing)


@PROPERTY
@given(JSON_VALUES, st.one_of(st.none(), HOSTILE), st.sampled_from(
    ["application/json", "application/vnd.x+json", "multipart/form-data; boundary="
     + BOUNDARY]), FRAMING)
def test_json_text_gets_an_answer(value: Any, hostile: str | None, content_type: str,
                                  framing: str) -> None:
    text = json.dumps(value, allow_nan=True)
    if hostile is not None:
        text = f'{{"name": {hostile}, "rest": {text}}}'
    data = text.encode("utf-8", "surrogatepass")
    if content_type.startswith("multipart/"):
        data = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"name\"\r\n"
                "Content-Type: application/json\r\n\r\n").encode() + data + (
                f"\r\n--{BOUNDARY}--\r\n").encode()
    check(data, content_type, framing)


FIELD = st.text(max_size=10).map(lambda text: text.encode("utf-8", "surrogatepass")) | \
    st.binary(max_size=10)


@PROPERTY
@given(st.lists(st.tuples(FIELD, FIELD), max_size=8), st.booleans(), FRAMING)
def test_form_and_multipart_fields_get_an_answer(fields: list[tuple[bytes, bytes]],
                                                 as_multipart: bool, framing: str) -> None:
    if as_multipart:
        parts = [b'--' + BOUNDARY.encode() + b'\r\nContent-Disposition: form-data; name="'
                 + name.replace(b'"', b"") + b'"' + (b'; filename="f.bin"' if i % 3 == 0
                                                     else b"") + b"\r\n\r\n" + value + b"\r\n"
                 for i, (name, value) in enumerate(fields)]
        body = b"".join(parts) + b"--" + BOUNDARY.encode() + b"--\r\n"
        check(body, f"multipart/form-data; boundary={BOUNDARY}", framing)
    else:
        body = b"&".join(name + b"=" + value for name, value in fields)
        check(body, "application/x-www-form-urlencoded", framing)
