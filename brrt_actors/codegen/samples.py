"""Sample requests and answers of each operation, from the spec alone.

The answer a generated handler returns is the mock mode's (`brrt_actors.mock`): the first 2xx
response's example when it validates, else a value generated from its schema. A sample
request fills every required parameter (the parameter's example when valid, else a generated
value) written in its style, and a body in the first media type the spec prefers; the
locustfile sends these, and the tests of a generated service too.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from brrt_actors.errors import SpecError
from brrt_actors.handler import Request, Response
from brrt_actors.mock import MockError, build_mock_handler, generate_value
from brrt_actors.security.scheme_settings import scheme_kind
from brrt_actors.spec.model import MISSING, MediaType, Operation, Parameter, ResponseSpec, Spec
from brrt_actors.spec.refs import Documents
from brrt_actors.validation import ValidatorCache

__all__ = ["Credential", "SampleRequest", "mock_answer", "sample_request",
           "success_response"]

_BOUNDARY = "brrt-sample-boundary"
_BODY_PREFERENCE = ("application/json", "+json", "application/x-www-form-urlencoded",
                    "multipart/form-data", "text/")


@dataclass(slots=True)
class Credential:
    """What the first security requirement of an operation asks a client to send."""

    scheme: str
    kind: str  # apiKey | bearer | basic | oauth2 | openIdConnect
    location: str = "header"  # apiKey: header | query | cookie
    name: str = "Authorization"  # apiKey: the header, query or cookie name
    scopes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class SampleRequest:
    """One request an operation accepts (credentials apart)."""

    method: str
    target: str  # the path with its parameters, and the query string
    headers: dict[str, str]
    body: bytes | None
    content_type: str | None
    status: int  # the status the generated handler answers
    credentials: list[Credential]


def mock_answer(operation: Operation, validators: ValidatorCache) -> Response:
    """Return the mock mode's answer to `operation` (what a generated handler returns)."""
    try:
        handler, _notes = build_mock_handler(operation, validators)
    except RecursionError:
        raise SpecError([(operation.pointer, "no example answer can be built: the mock value "
                                             "generator recursed without end on its response "
                                             "schema; declare an example for the response")]
                        ) from None
    request = Request({"REQUEST_METHOD": operation.method}, operation, "brrt-gen")
    answer = handler(request)
    if not isinstance(answer.body, (bytes, str, dict, list, int, float, bool, type(None))):
        answer.body = b"".join(answer.body)  # a server-sent event stream
    return answer


def success_response(operation: Operation, status: int) -> ResponseSpec | None:
    """Return the declared response answering `status` (exact, range, or default)."""
    responses = operation.responses
    return (responses.get(str(status)) or responses.get(f"{status // 100}XX")
            or responses.get("default"))


def sample_request(spec: Spec, operation: Operation, validators: ValidatorCache,
                   docs: Documents, status: int) -> SampleRequest:
    """Return a request `operation` accepts, with a value for every required parameter."""
    path = operation.path
    query: list[tuple[str, str]] = []
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for param in operation.parameters:
        if not param.required:
            continue
        value = _parameter_value(param, validators, docs)
        if param.location == "path":
            path = path.replace("{" + param.name + "}", _path_text(param, value))
        elif param.location == "query":
            query.extend(_query_pairs(param, value))
        elif param.location == "header":
            headers[param.name] = _joined(param, value, ",")
        else:
            cookies.append(f"{param.name}={quote(_joined(param, value, ','), safe='')}")
    if cookies:
        headers["Cookie"] = "; ".join(cookies)
    target = path + ("?" + _query_string(query) if query else "")
    body, content_type = _body(operation, validators)
    if content_type is not None:
        headers["Content-Type"] = content_type
    return SampleRequest(operation.method, target, headers, body, content_type, status,
                         _credentials(spec, operation))


def _credentials(spec: Spec, operation: Operation) -> list[Credential]:
    if not operation.security:
        return []
    found: list[Credential] = []
    for name, scopes in operation.security[0].items():
        scheme = spec.security_schemes.get(name)
        if scheme is None:
            continue
        kind = scheme_kind(scheme)
        if kind == "apiKey":
            found.append(Credential(name, kind, scheme.location or "header",
                                    scheme.parameter_name or "X-API-Key", list(scopes)))
        elif kind != "other":
            found.append(Credential(name, kind, scopes=list(scopes)))
    return found


# -- values ------------------------------------------------------------------------------

def _parameter_value(param: Parameter, validators: ValidatorCache, docs: Documents) -> Any:
    schema = param.schema or {"type": "string"}
    validator = validators.compile(schema)
    candidates = [param.default, schema.get("example", MISSING)]
    listed = schema.get("examples")
    if isinstance(listed, list) and listed:
        candidates.append(listed[0])
    if "#" not in param.pointer:
        node = docs.get((docs.root_path, param.pointer))
        if isinstance(node, dict):
            candidates.insert(0, node.get("example", MISSING))
    for candidate in candidates:
        if candidate is not MISSING and validator.is_valid(candidate):
            return candidate
    try:
        return generate_value(schema)
    except MockError:
        return "sample"


def _media_value(media: MediaType, validators: ValidatorCache) -> Any:
    schema = media.schema
    if media.example is not MISSING and (
            schema is None or validators.compile(schema).is_valid(media.example)):
        return media.example
    if schema is None:
        return {}
    try:
        return generate_value(schema)
    except MockError:
        return {}


def _body(operation: Operation, validators: ValidatorCache) -> tuple[bytes | None, str | None]:
    body = operation.request_body
    if body is None or not body.content:
        return None, None
    media = _preferred(body.content)
    kind = media.content_type
    if kind == "application/json" or kind.endswith("+json") or kind == "*/*":
        content_type = "application/json" if "*" in kind else kind
        return json.dumps(_media_value(media, validators)).encode(), content_type
    if kind == "application/x-www-form-urlencoded":
        fields = _form_fields(_media_value(media, validators))
        return _query_string(fields).encode(), kind
    if kind == "multipart/form-data":
        return _multipart(media, _media_value(media, validators))
    if kind.startswith("text/"):
        value = _media_value(media, validators)
        text = value if isinstance(value, str) else json.dumps(value)
        return text.encode(), kind
    return b"brrt sample body\n", kind if "*" not in kind else "application/octet-stream"


def _preferred(content: dict[str, MediaType]) -> MediaType:
    for wanted in _BODY_PREFERENCE:
        for media in content.values():
            if media.content_type == wanted or (wanted.startswith(("+", "text/"))
                                                and wanted in media.content_type):
                return media
    return next(iter(content.values()))


def _form_fields(value: Any) -> list[tuple[str, str]]:
    if not isinstance(value, dict):
        return []
    fields: list[tuple[str, str]] = []
    for name, item in value.items():
        for one in item if isinstance(item, list) else [item]:
            fields.append((name, json.dumps(one) if isinstance(one, dict) else _text(one)))
    return fields


def _multipart(media: MediaType, value: Any) -> tuple[bytes, str]:
    properties = (media.schema or {}).get("properties") or {}
    parts: list[bytes] = []
    for name, item in (value.items() if isinstance(value, dict) else ()):
        prop = properties.get(name) if isinstance(properties, dict) else None
        binary = isinstance(prop, dict) and prop.get("format") == "binary"
        disposition = f'form-data; name="{name}"' + (f'; filename="{name}.bin"' if binary else "")
        if binary:
            content = b"brrt sample file\n"
        elif isinstance(item, (dict, list)):
            content = json.dumps(item).encode()
        else:
            content = _text(item).encode()
        kind = "application/octet-stream" if binary else (
            "application/json" if isinstance(item, (dict, list)) else "text/plain")
        parts.append(f"--{_BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
                     f"Content-Type: {kind}\r\n\r\n".encode() + content + b"\r\n")
    return (b"".join(parts) + f"--{_BOUNDARY}--\r\n".encode(),
            f"multipart/form-data; boundary={_BOUNDARY}")


# -- styles ------------------------------------------------------------------------------

def _query_string(pairs: list[tuple[str, str]]) -> str:
    # NOTE: a raw comma splits form-style arrays (an encoded one is data); brackets name
    # deepObject members.
    return "&".join(f"{quote(name, safe='[]')}={quote(value, safe=',')}"
                    for name, value in pairs)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _path_text(param: Parameter, value: Any) -> str:
    def enc(item: Any) -> str:
        return quote(_text(item), safe="")

    if param.content_type is not None:
        return enc(json.dumps(value))
    style, explode, name = param.style, param.explode, param.name
    if isinstance(value, list):
        items = [enc(v) for v in value]
    elif isinstance(value, dict):
        pairs = [(enc(k), enc(v)) for k, v in value.items()]
        items = [f"{k}={v}" for k, v in pairs] if explode else [x for p in pairs for x in p]
    else:
        items = [enc(value)]
    if style == "label":
        return "." + ("." if explode else ",").join(items)
    if style == "matrix":
        if isinstance(value, dict) and explode:
            return "".join(f";{item}" for item in items)
        if isinstance(value, list) and explode:
            return "".join(f";{name}={item}" for item in items)
        return f";{name}=" + ",".join(items)
    return ",".join(items)


def _query_pairs(param: Parameter, value: Any) -> list[tuple[str, str]]:
    name = param.name
    if param.content_type is not None:
        return [(name, json.dumps(value))]
    if isinstance(value, dict):
        if param.style == "deepObject":
            return [(f"{name}[{k}]", _text(v)) for k, v in value.items()]
        if param.explode:
            return [(k, _text(v)) for k, v in value.items()]
        return [(name, ",".join(x for k, v in value.items() for x in (k, _text(v))))]
    if isinstance(value, list):
        if param.style == "spaceDelimited":
            return [(name, " ".join(_text(v) for v in value))]
        if param.style == "pipeDelimited":
            return [(name, "|".join(_text(v) for v in value))]
        if param.explode:
            return [(name, _text(v)) for v in value]
        return [(name, ",".join(_text(v) for v in value))]
    return [(name, _text(value))]


def _joined(param: Parameter, value: Any, separator: str) -> str:
    if param.content_type is not None:
        return json.dumps(value)
    if isinstance(value, list):
        return separator.join(_text(v) for v in value)
    if isinstance(value, dict):
        if param.explode:
            return separator.join(f"{k}={_text(v)}" for k, v in value.items())
        return separator.join(x for k, v in value.items() for x in (k, _text(v)))
    return _text(value)
