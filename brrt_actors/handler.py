"""The handler contract: what a handler receives (`Request`) and may return (`Response`)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from brrt_actors.spec.model import Operation
    from brrt_actors.stages.tracing import TraceContext


class Principal:
    """Who made the request, as established by the security stage.

    Attributes:
        scheme: the name of the security scheme that accepted the credentials.
        subject: who they belong to (a JWT's ``sub``, a basic user name), if known.
        scopes: the scopes the credentials grant (a JWT's ``scope``/``scp``).
        claims: the verified claims of a token (``{}`` for other credentials).
    """

    __slots__ = ("claims", "scheme", "scopes", "subject")

    def __init__(self, scheme: str, subject: str | None = None,
                 scopes: frozenset[str] = frozenset(),
                 claims: dict[str, Any] | None = None) -> None:
        self.scheme = scheme
        self.subject = subject
        self.scopes = scopes
        self.claims: dict[str, Any] = claims if claims is not None else {}

    def __repr__(self) -> str:
        # SECURITY: claims stay out of reprs (they may carry personal data).
        return (f"Principal(scheme={self.scheme!r}, subject={self.subject!r}, "
                f"scopes={sorted(self.scopes)!r})")


class UploadedFile:
    """One file part of a multipart/form-data body."""

    __slots__ = ("content", "content_type", "filename", "headers", "name")

    def __init__(self, name: str, filename: str | None, content_type: str, content: bytes,
                 headers: dict[str, str] | None = None) -> None:
        self.name = name
        self.filename = filename
        self.content_type = content_type
        self.content = content
        self.headers = headers or {}

    @property
    def size(self) -> int:
        return len(self.content)

    def __repr__(self) -> str:
        return (f"UploadedFile(name={self.name!r}, filename={self.filename!r}, "
                f"content_type={self.content_type!r}, size={self.size})")


def _headers_from_environ(environ: dict[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-").lower()] = value
    if "CONTENT_TYPE" in environ:
        headers["content-type"] = environ["CONTENT_TYPE"]
    if "CONTENT_LENGTH" in environ:
        headers["content-length"] = environ["CONTENT_LENGTH"]
    return headers


class Request:
    """An HTTP request, decoded and validated against its operation.

    Attributes:
        method: upper-case HTTP method.
        path: the request path as sent (percent-encoded, without the query string).
        path_params: declared path parameters, decoded and coerced to their schema types.
        query: declared query parameters, decoded, coerced, defaults applied.
        headers: every request header (lower-case names); declared header parameters
            hold their decoded values.
        cookies: every cookie; declared cookie parameters hold their decoded values.
        body: the decoded body (JSON value, form dict, multipart dict whose files are
            `UploadedFile`s), or None.
        claims: JWT claims when a token authenticated the request, else {}.
        principal: the authenticated identity, or None for public operations.
        request_id: the X-Request-ID of this request (kept from the client when sane).
        operation: the spec's description of the operation being served.
        environ: the WSGI environ, for anything else.
        trace: the W3C trace context (`brrt_actors.stages.tracing.TraceContext`: trace id,
            this request's span id, ``traceparent`` to send on to other services), or None
            when tracing is off.
        mailbox_wait: seconds the request waited in its actor's mailbox before a worker
            took it (set when the handler runs; None before).

    The runtime's own stages also keep their work here: ``raw_path_params`` (the router's
    matched segments, still percent-encoded), ``problems`` (what validation found: a
    handler never sees a request that has any), ``result`` (the handler's value) and
    ``answer`` (the encoded response).
    """

    __slots__ = ("_headers", "answer", "body", "claims", "cookies", "environ", "header_params",
                 "mailbox_wait", "method", "operation", "path", "path_params", "principal",
                 "problems", "query", "raw_path_params", "request_id", "result", "trace")

    def __init__(self, environ: dict[str, Any], operation: Operation, request_id: str,
                 path: str | None = None, raw_path_params: dict[str, str] | None = None
                 ) -> None:
        self.environ = environ
        self.operation = operation
        self.request_id = request_id
        self.method: str = environ["REQUEST_METHOD"]
        self.path: str = (path if path is not None else
                          environ.get("RAW_URI", environ.get("PATH_INFO", "")).split("?", 1)[0])
        self.raw_path_params: dict[str, str] = (
            raw_path_params if raw_path_params is not None else {})
        self.path_params: dict[str, Any] = {}
        self.query: dict[str, Any] = {}
        self.header_params: dict[str, Any] = {}
        self.cookies: dict[str, Any] = {}
        self.body: Any = None
        self.claims: dict[str, Any] = {}
        self.principal: Principal | None = None
        self.problems: list[dict[str, Any]] | None = None
        self.result: Any = None
        self.answer: Any = None
        self._headers: dict[str, Any] | None = None
        self.trace: TraceContext | None = None
        self.mailbox_wait: float | None = None

    def add_problems(self, problems: list[dict[str, Any]]) -> None:
        """Record what a validation stage found (one 400 lists everything found)."""
        if self.problems is None:
            self.problems = list(problems)
        else:
            self.problems.extend(problems)

    @property
    def headers(self) -> dict[str, Any]:
        # PERF: built on first access only; most handlers never look at raw headers.
        if self._headers is None:
            headers: dict[str, Any] = _headers_from_environ(self.environ)
            headers.update(self.header_params)
            self._headers = headers
        return self._headers

    def __repr__(self) -> str:
        return (f"<Request {self.method} {self.path} {self.operation.operation_id} "
                f"id={self.request_id}>")

class Response:
    """An explicit response: status, body and headers.

    Args:
        status: the HTTP status code (200 by default).
        body: a JSON-serialisable value (sent as JSON), ``bytes``/``str`` (sent as is, with
            ``content_type`` or the operation's declared content type), an iterable of
            ``bytes`` (streamed, e.g. server-sent events), or None for no body.
        headers: extra response headers.
        content_type: the Content-Type; by default ``application/json`` for JSON values and
            the first non-JSON content type the spec declares for this status otherwise.
    """

    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(self, status: int = 200, body: Any = None,
                 headers: Mapping[str, str] | None = None,
                 content_type: str | None = None) -> None:
        self.status = status
        self.body = body
        self.headers: dict[str, str] = dict(headers) if headers else {}
        self.content_type = content_type

    def __repr__(self) -> str:
        return f"Response(status={self.status}, content_type={self.content_type!r})"


# PERF: the usual bodies are answered by one set lookup, not by the Iterable ABC check.
_VALUE_TYPES = frozenset({dict, list, tuple, str, bytes, bytearray, int, float, bool,
                          type(None)})


def is_stream(body: Any) -> bool:
    """Tell whether `body` is an iterable of chunks to stream rather than a value."""
    if type(body) in _VALUE_TYPES:
        return False
    return (isinstance(body, Iterable) and not isinstance(body, (bytes, bytearray, str, dict, list,
                                                                  tuple, Mapping)))
