"""The mock handler: answer an operation from its spec alone.

By default it serves the operation's first success response with the declared example — only
when that example validates against the response schema, otherwise with a generated value and
a note (logged once at start) saying so. A client may ask for more (`negotiation`):
``Prefer: code=404`` serves another declared response, ``Prefer: example=NAME`` a named
example, and ``Accept`` picks among the response's media types (406 when none fits); a
preference that was honoured is named in ``Preference-Applied``. Response headers come from
`brrt_actors.mock.headers`.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import ujson

from brrt_actors.errors import HTTPError
from brrt_actors.handler import Response
from brrt_actors.mock.headers import mock_headers
from brrt_actors.mock.negotiation import media_essence, parse_prefer, pick_media_type
from brrt_actors.mock.values import MockError, generate_value
from brrt_actors.spec.model import MISSING, MediaType, Operation, ResponseSpec
from brrt_actors.validation import ValidatorCache

if TYPE_CHECKING:
    from brrt_actors.handler import Request

__all__ = ["MockHandler", "build_mock_handler"]

logger = logging.getLogger("brrt_actors")

MockHandler = Callable[["Request"], Response]
# Makes a fresh Response per request (a Response may be changed on its way out).
_Maker = Callable[[], Response]

# A 1x1 transparent PNG: the placeholder for image/png bodies.
_TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000b4944415478da636000020000050001e9fadcd80000000049454e44ae426082")
_PLACEHOLDER_BYTES = b"brrt_actors mock body\n"
# Distinct Prefer/Accept values whose choice each mock handler remembers.
_CHOICES_CACHED = 64


def build_mock_handler(operation: Operation, validators: ValidatorCache | None = None, *,
                       allow: str | None = None) -> tuple[MockHandler, list[str]]:
    """Return a handler answering `operation` from its spec, and notes to log once.

    The handler serves the first 2xx response (in declared order; ``2XX`` counts, else
    ``default``) with its declared example when the example validates against the response
    schema, otherwise with a value built by `generate_value`. A JSON media type is preferred;
    other types get a placeholder (an SSE response streams one event). ``Prefer: code=N``,
    ``Prefer: example=NAME`` and ``Accept`` choose otherwise (see the module's doc).

    Args:
        validators: the app's validator cache (a private one by default).
        allow: the methods of the operation's path (for a declared ``Allow`` header);
            the operation's own method by default.
    """
    validators = ValidatorCache() if validators is None else validators
    notes: list[str] = []
    mock = _OperationMock(operation, validators, allow or operation.method)
    spec = _success_response(operation, notes)
    if spec is None:
        return (lambda request: Response(204)), notes
    default = mock.response(spec, _status_of(spec.status), notes)

    @lru_cache(maxsize=_CHOICES_CACHED)
    def choose(prefer: str, accept: str) -> _Maker:
        preferences = parse_prefer(prefer)
        answers, applied = default, []
        if preferences.code is not None:
            answers = mock.for_code(preferences.code)
            applied.append(f"code={preferences.code}")
        maker = answers.pick(accept, preferences.example)
        if preferences.example is not None:
            applied.append(f"example={preferences.example}")
        return _applied(maker, ", ".join(applied)) if applied else maker

    plain = default.pick(None, None)

    def answer(request: Request) -> Response:
        environ = request.environ
        prefer = environ.get("HTTP_PREFER") or ""
        accept = environ.get("HTTP_ACCEPT") or ""
        if not prefer and not accept:
            return plain()
        return choose(prefer, accept)()

    return answer, notes


def _applied(maker: _Maker, applied: str) -> _Maker:
    def make() -> Response:
        response = maker()
        response.headers["Preference-Applied"] = applied
        return response
    return make


def _status_of(key: str) -> int:
    return int(key.upper().replace("XX", "00")) if key[0].isdigit() else 200


class _OperationMock:
    """Every declared response of one operation, its answers built when first asked for."""

    def __init__(self, operation: Operation, validators: ValidatorCache, allow: str) -> None:
        self.operation = operation
        self.validators = validators
        self.allow = allow
        self._by_code: dict[int, _ResponseAnswers] = {}

    def response(self, spec: ResponseSpec, status: int, notes: list[str]) -> _ResponseAnswers:
        return _ResponseAnswers(self, spec, status, notes)

    def for_code(self, code: int) -> _ResponseAnswers:
        """Return the answers of the response declared for `code` (exact, range, default)."""
        found = self._by_code.get(code)
        if found is not None:
            return found
        responses = self.operation.responses
        spec = (responses.get(str(code)) or responses.get(f"{str(code)[0]}XX")
                or responses.get("default"))
        if spec is None:
            declared = ", ".join(responses) or "none"
            raise HTTPError(400, f"Prefer: code={code}: the operation declares no such "
                                 f"response (it declares {declared})")
        notes: list[str] = []
        found = self._by_code[code] = self.response(spec, code, notes)
        for note in notes:
            logger.warning("mock: %s", note)
        return found


class _ResponseAnswers:
    """The answers of one declared response: per media type, the default and named examples."""

    def __init__(self, mock: _OperationMock, spec: ResponseSpec, status: int,
                 notes: list[str]) -> None:
        self.mock = mock
        self.status = status
        self.headers = mock_headers(spec, mock.operation, mock.allow, mock.validators, notes)
        self.media = _by_preference(spec.content)
        self.essences = [media_essence(media.content_type) for media in self.media]
        self._named: dict[tuple[int, str], _Maker] = {}
        self._defaults: list[_Maker | None] = [None] * len(self.media)
        if self.media:
            self._defaults[0] = self._maker(self.media[0], MISSING, notes)

    def pick(self, accept: str | None, example: str | None) -> _Maker:
        """Return the answer for `accept` (406 when nothing fits) and the named `example`."""
        if not self.media:
            status, headers = self.status, self.headers
            return lambda: Response(status, None, headers)
        index = pick_media_type(self.essences, accept)
        media = self.media[index]
        if example is not None:
            return self._example(index, media, example)
        maker = self._defaults[index]
        if maker is None:
            notes: list[str] = []
            maker = self._defaults[index] = self._maker(media, MISSING, notes)
            for note in notes:
                logger.warning("mock: %s", note)
        return maker

    def _example(self, index: int, media: MediaType, name: str) -> _Maker:
        maker = self._named.get((index, name))
        if maker is not None:
            return maker
        if name not in media.examples:
            known = ", ".join(media.examples) or "none"
            raise HTTPError(400, f"Prefer: example={name!r}: {media.content_type} of this "
                                 f"response has no such example (it has {known})")
        notes: list[str] = []
        maker = self._named[(index, name)] = self._maker(media, media.examples[name], notes)
        for note in notes:
            logger.warning("mock: %s", note)
        return maker

    def _maker(self, media: MediaType, example: Any, notes: list[str]) -> _Maker:
        status, headers = self.status, self.headers
        kind = _media_kind(media.content_type)
        if example is MISSING:
            example = media.example
        value = _media_value(media, example, kind, notes, self.mock.validators)
        if status in (204, 304):
            return lambda: Response(status, None, headers)
        if kind == "json":
            content_type = (media.content_type if "*" not in media.content_type
                            else "application/json")
            # PERF: the value is built once; it is shared, never mutated.
            return lambda: Response(status, value, headers, content_type)
        if kind == "sse":
            data = value if isinstance(value, str) else ujson.dumps(value)
            event = ("event: message\n" + "".join(f"data: {line}\n"
                                                  for line in data.splitlines())
                     + "\n").encode()

            def answer_sse() -> Response:
                chunks: Iterator[bytes] = iter((event,))  # a fresh, finite stream per request
                return Response(status, chunks, headers, "text/event-stream")
            return answer_sse
        if kind == "text":
            text_type = media.content_type if "*" not in media.content_type else "text/plain"
            text = value if isinstance(value, str) else ujson.dumps(value)
            return lambda: Response(status, text, headers, text_type)
        if isinstance(value, (bytes, str)) and value is not MISSING:
            body = value.encode() if isinstance(value, str) else value
        else:
            body = _TINY_PNG if media.content_type == "image/png" else _PLACEHOLDER_BYTES
        binary_type = (media.content_type if "*" not in media.content_type
                       else "application/octet-stream")
        return lambda: Response(status, body, headers, binary_type)


def _success_response(operation: Operation, notes: list[str]) -> ResponseSpec | None:
    for status, spec in operation.responses.items():
        if status.startswith("2"):
            return spec
    if "default" in operation.responses:
        return operation.responses["default"]
    if operation.responses:
        spec = next(iter(operation.responses.values()))
        notes.append(f"{operation.pointer}: no 2xx or default response: mocking {spec.status}")
        return spec
    notes.append(f"{operation.pointer}: no responses declared: mocking 204")
    return None


def _by_preference(content: dict[str, MediaType]) -> list[MediaType]:
    """The media types in the order a client without preference gets them: JSON first."""
    def rank(media: MediaType) -> int:
        if media.content_type == "application/json":
            return 0
        return 1 if media.content_type.endswith("+json") else 2
    return sorted(content.values(), key=rank)


def _media_kind(content_type: str) -> str:
    if content_type in ("application/json", "*/*") or content_type.endswith("+json"):
        return "json"
    if content_type == "text/event-stream":
        return "sse"
    if content_type.startswith("text/") or content_type.endswith(("/xml", "+xml")):
        return "text"
    return "binary"


def _media_value(media: MediaType, example: Any, kind: str, notes: list[str],
                 validators: ValidatorCache) -> Any:
    """The example when it validates, else a generated value (a note says which)."""
    schema = media.schema
    if example is not MISSING:
        if schema is None:
            return example
        errors = validators.compile(schema).errors(example)
        if not errors:
            return example
        notes.append(f"{media.pointer}: example does not match its schema "
                     f"({_describe(errors)}): serving a generated value")
    if schema is None:
        return {} if kind == "json" else (
            "mock event" if kind == "sse" else "mock" if kind == "text" else MISSING)
    if kind == "binary" and schema.get("format") == "binary":
        return MISSING  # placeholder bytes
    generated: list[str] = []
    try:
        value = generate_value(schema, notes=generated)
    except MockError as ex:
        notes.append(f"{media.pointer}: cannot generate a value ({ex}): serving no body")
        return None
    notes.extend(f"{media.pointer}: {note}" for note in generated)
    errors = validators.compile(schema).errors(value)
    if errors:
        notes.append(f"{media.pointer}: the generated value does not match the schema either "
                     f"({_describe(errors)})")
    return value


def _describe(errors: list[tuple[str, str]]) -> str:
    shown = "; ".join(f"{pointer or '/'}: {message}" for pointer, message in errors[:3])
    return shown + (f"; and {len(errors) - 3} more" if len(errors) > 3 else "")
