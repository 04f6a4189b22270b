"""Turning a handler's result into status, headers and body bytes, checked against the spec.

One `ResponseEncoder` per operation is built at start: it knows the statuses the operation
declares, the content type to use for each, and the compiled validator of each response
schema. Response validation runs in one of three modes (``enforce``: an invalid response
becomes a 500 and the log says why; ``log``: the log says why and the response goes out;
``off``) chosen once by swapping the `encode` callable, not by branching per request.
The usual answers (a dict or list, or a `Response` holding one with a declared status) take
a lean path worked out at start: one compiled check, one `dumps`; anything else, and any
answer the lean path finds wrong, takes the full path.

Whatever the mode, a body that cannot be written as valid JSON and UTF-8 (a lone surrogate,
NaN or an infinity, a value ujson does not know) is a 500 for that response alone, logged
once with the operation; no invalid byte reaches the client.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from fastjsonschema import JsonSchemaValueException

from brrt_actors.errors import HTTPError
from brrt_actors.handler import Response, is_stream
from brrt_actors.json_writer import write_json_bytes
from brrt_actors.spec.model import MediaType, Operation, ResponseSpec
from brrt_actors.sse import EventStreams, is_event_source, is_sse_operation
from brrt_actors.stages.exact_checks import ExactCheck, compile_exact_check
from brrt_actors.validation import SchemaValidator, ValidatorCache

if TYPE_CHECKING:
    from brrt_actors.context import BuildContext
    from brrt_actors.handler import Request
    from brrt_actors.stages import Stage

logger = logging.getLogger("brrt_actors.responses")

JSON_CONTENT_TYPE = "application/json"
VALIDATION_MODES = ("enforce", "log", "off")

# (status, headers, body chunks); the app adds X-Request-ID and writes them out.
Encoded = tuple[int, list[tuple[str, str]], Iterable[bytes]]


def dumps(value: Any) -> bytes:
    """Serialise a JSON value the way every response does: valid JSON (RFC 8259) in UTF-8.

    Raises:
        ValueError: the value holds a lone surrogate (`UnicodeEncodeError`) or something
            ujson cannot write.
        OverflowError: the value holds NaN or an infinity, or nests too deep.
        TypeError: the value holds an object JSON has no form for.
    """
    return write_json_bytes(value)


#: What `dumps` (and str.encode) raise for a value that has no valid JSON/UTF-8 form.
UNENCODABLE = (ValueError, OverflowError, TypeError)


def is_json_media_type(content_type: str) -> bool:
    """Tell whether a media type (without parameters) carries JSON."""
    return content_type == JSON_CONTENT_TYPE or content_type.endswith("+json")


class ResponseValidationError(Exception):
    """A response does not match the operation's declared responses."""


class _StatusRule:
    """What the spec says about one declared status (or range, or default)."""

    __slots__ = ("content", "json_type", "other_type", "validators")

    def __init__(self, spec: ResponseSpec, validators: ValidatorCache) -> None:
        self.content: dict[str, MediaType] = spec.content
        self.validators: dict[str, SchemaValidator] = {
            media.content_type: validators.compile(media.schema, pointer=media.pointer + "/schema")
            for media in spec.content.values() if media.schema is not None
        }
        json_types = [ct for ct in spec.content if is_json_media_type(ct)]
        self.json_type = json_types[0] if json_types else JSON_CONTENT_TYPE
        others = [ct for ct in spec.content if not is_json_media_type(ct)]
        self.other_type = others[0] if others else "application/octet-stream"

    def accepts(self, content_type: str) -> bool:
        if not self.content:
            return True
        if content_type in self.content:
            return True
        major = content_type.split("/", 1)[0]
        return f"{major}/*" in self.content or "*/*" in self.content


class ResponseEncoder:
    """Encode and validate the results of one operation's handler."""

    __slots__ = ("_checked", "_enforce", "_rules", "encode", "none_status", "operation")

    def __init__(self, operation: Operation, mode: str = "enforce",
                 validators: ValidatorCache | None = None) -> None:
        if mode not in VALIDATION_MODES:
            raise ValueError(f"response validation mode must be one of {VALIDATION_MODES}")
        self.operation = operation
        cache = ValidatorCache() if validators is None else validators
        self._rules: dict[str, _StatusRule] = {
            status.upper(): _StatusRule(spec, cache) for status, spec in operation.responses.items()
        }
        # NOTE: a handler returning None answers 204 when the spec says so, else 200 null.
        self.none_status = 204 if "204" in self._rules and "200" not in self._rules else 200
        self._enforce = mode == "enforce"
        self._checked = mode != "off"
        # PERF: the mode is chosen here once, not tested per request.
        full = self._encode if mode == "off" else self._encode_checked
        # NOTE: a Response's lean path covers the statuses declared by number ("2XX": full).
        plans = {int(key): self._lean_plan(int(key)) for key in self._rules
                 if key.isdecimal() and str(int(key)) == key}
        self.encode: Callable[[Any], Encoded] = _lean_encoder(
            self._lean_plan(200),
            {code: plan for code, plan in plans.items() if plan is not None}, full)

    def _lean_plan(self, status: int) -> _LeanPlan | None:
        # What `_unpack` and `_check` find for a JSON body with `status`, found once; None
        # when the full path must answer (no body, or an error it reports).
        if status == 204 or status == 304:
            return None
        rule = self._rule(status)
        content_type = rule.json_type if rule else JSON_CONTENT_TYPE
        if not self._checked:
            return ("Content-Type", content_type), None, None
        if rule is None:
            return None
        media_type = content_type.split(";", 1)[0].strip().lower()
        if not rule.accepts(media_type):
            return None
        validator = rule.validators.get(media_type)
        if validator is None or not is_json_media_type(media_type):
            return ("Content-Type", content_type), None, None
        return (("Content-Type", content_type), validator.check,
                compile_exact_check(validator.schema))

    def _rule(self, status: int) -> _StatusRule | None:
        rules = self._rules
        key = str(status)
        rule = rules.get(key)
        if rule is None:
            rule = rules.get(f"{key[0]}XX") or rules.get("DEFAULT")
        return rule

    def _encode(self, result: Any) -> Encoded:
        status, body, content_type, headers = self._unpack(result)
        return status, headers, self._chunks(status, body, content_type, headers)

    def _chunks(self, status: int, body: Any, content_type: str | None,
                headers: list[tuple[str, str]]) -> Iterable[bytes]:
        try:
            return body_chunks(status, body, content_type, headers, self.operation.operation_id)
        except UNENCODABLE as ex:
            # NOTE: logged here, once, with the operation; the 500 goes out without internals.
            logger.error("%s: response %s cannot be encoded as valid JSON/UTF-8: %s",
                         self.operation.operation_id, status, ex)
            raise HTTPError(500, "the response could not be encoded") from None

    def _encode_checked(self, result: Any) -> Encoded:
        status, body, content_type, headers = self._unpack(result)
        try:
            self._check(status, body, content_type)
        except ResponseValidationError as ex:
            logger.error("%s: response %s does not match the spec: %s",
                         self.operation.operation_id, status, ex)
            if self._enforce:
                raise HTTPError(500, "the response did not match the API description") from ex
        return status, headers, self._chunks(status, body, content_type, headers)

    def _unpack(self, result: Any) -> tuple[int, Any, str | None, list[tuple[str, str]]]:
        if isinstance(result, Response):
            status, body = result.status, result.body
            content_type = result.content_type
            headers: list[tuple[str, str]] = []
            for name, value in result.headers.items():
                lower = name.lower()
                # NOTE: the runtime writes Content-Type and Content-Length once; a handler's
                # own Content-Type header counts as `content_type`, its length is recomputed.
                if lower == "content-type":
                    content_type = content_type or value
                elif lower != "content-length":
                    headers.append((name, value))
            if content_type is None and body is not None:
                rule = self._rule(status)
                if isinstance(body, (bytes, bytearray, str)) or is_stream(body):
                    content_type = rule.other_type if rule else "application/octet-stream"
                else:
                    content_type = rule.json_type if rule else JSON_CONTENT_TYPE
            return status, body, content_type, headers
        if result is None:
            status = self.none_status
            if status == 204:
                return status, None, None, []
            return status, None, JSON_CONTENT_TYPE, []  # body "null"
        rule = self._rule(200)
        return 200, result, (rule.json_type if rule else JSON_CONTENT_TYPE), []

    def _check(self, status: int, body: Any, content_type: str | None) -> None:
        rule = self._rule(status)
        if rule is None:
            declared = ", ".join(sorted(self._rules)) or "none"
            raise ResponseValidationError(f"status {status} is not declared (declared: {declared})")
        if content_type is None:
            return
        media_type = content_type.split(";", 1)[0].strip().lower()
        if not rule.accepts(media_type):
            raise ResponseValidationError(
                f"content type {media_type} is not declared for status {status} "
                f"(declared: {', '.join(rule.content)})")
        validator = rule.validators.get(media_type)
        if validator is None or not is_json_media_type(media_type):
            return
        kind = type(body)
        if kind is not dict and kind is not list and (
                isinstance(body, (bytes, bytearray, str)) or is_stream(body)):
            return  # pre-serialised by the handler: nothing to look into
        problems = validator.errors(body)
        if problems:
            raise ResponseValidationError("; ".join(
                f"{pointer or '/'}: {message}" for pointer, message in problems[:10]))

    def check_stream(self, result: Response) -> tuple[int, str | None, list[tuple[str, str]]]:
        """Return a streamed answer's status, content type and headers, checked as `encode`
        checks results (its body is not looked into).

        Raises:
            HTTPError: 500 under ``enforce`` when the status or content type is not declared.
        """
        status, _, content_type, headers = self._unpack(result)
        if self._checked:
            try:
                self._check(status, iter(()), content_type)  # NOTE: a stream: not looked into
            except ResponseValidationError as ex:
                logger.error("%s: response %s does not match the spec: %s",
                             self.operation.operation_id, status, ex)
                if self._enforce:
                    raise HTTPError(500, "the response did not match the API description") from ex
        return status, content_type, headers

    def check_error(self, error: HTTPError, runtime_statuses: frozenset[int]) -> None:
        """Check the status of an HTTPError a handler raised, as `encode` checks results.

        A status neither declared nor one the runtime answers by itself is logged; under
        ``enforce`` it becomes a 500.
        """
        if error.status in runtime_statuses or self._rule(error.status) is not None:
            return
        logger.error("%s: response %s does not match the spec: status %s is not declared",
                     self.operation.operation_id, error.status, error.status)
        if self._enforce:
            raise HTTPError(500, "the response did not match the API description") from error


# (the Content-Type header, the compiled check or None, the exact-type predicate or None) of
# a JSON body with one status.
_LeanPlan = tuple[tuple[str, str], Callable[[Any], Any] | None, ExactCheck | None]
#: What a compiled check raises for an invalid value (then the full path says why).
_INVALID = (JsonSchemaValueException, RecursionError)
#: The headers the runtime writes itself (a handler's own go through the full path).
_FRAMING_HEADERS = frozenset({"content-type", "content-length"})


def _lean_encoder(bare: _LeanPlan | None, by_status: dict[int, _LeanPlan],
                  full: Callable[[Any], Encoded]) -> Callable[[Any], Encoded]:
    # A dict or list (200), or a Response holding one with a status of `by_status`, costs one
    # compiled check and one `dumps`; anything else, an invalid or unencodable body, or a
    # handler's own Content-Type/Length goes to `full` whole (its answers, logs and 500s).
    # PERF: ~10 Python calls fewer per answer: get_pet's encode 3.8 -> 2.5 µs, the POST's
    # Response(201, ...) 4.0 -> 2.7 µs (benchmarks/pipeline.py: about -1.5 µs per request).
    def encode(result: Any) -> Encoded:
        kind = type(result)
        if kind is dict or kind is list:
            status, body, plan, extra = 200, result, bare, None
        elif kind is Response and result.content_type is None:
            status, body = result.status, result.body
            kind = type(body)
            if (kind is not dict and kind is not list) or type(status) is not int:
                return full(result)
            plan, extra = by_status.get(status), result.headers
        else:
            return full(result)
        if plan is None:
            return full(result)
        content_type, check, exact = plan
        if extra:
            headers = list(extra.items())
            for name, _ in headers:
                if name.lower() in _FRAMING_HEADERS:
                    return full(result)
        else:
            headers = []
        # PERF: the exact-type predicate says "valid" for the usual body in one expression
        # (exact_checks.py): get_pet's check 0.85 -> 0.2 µs, ten pets 8.2 -> 2.0 µs. Its
        # "not sure" falls back to the compiled check, whose verdict stands.
        if check is not None and (exact is None or not exact(body)):
            try:
                check(body)
            except _INVALID:
                return full(result)
        try:
            data = write_json_bytes(body)  # NOTE: `dumps` itself, one frame fewer
        except UNENCODABLE:
            return full(result)
        headers.append(content_type)
        headers.append(("Content-Length", str(len(data))))
        return status, headers, (data,)

    return encode


def body_chunks(status: int, body: Any, content_type: str | None,
                headers: list[tuple[str, str]], operation_id: str = "") -> Iterable[bytes]:
    """Return the body as chunks and add Content-Type (and Content-Length) to `headers`.

    Raises:
        ValueError, OverflowError, TypeError: (`UNENCODABLE`) the body has no valid JSON or
            UTF-8 form; a stream's chunk that has none raises `UnencodableChunk`, naming
            `operation_id`, when the stream gets to it.
    """
    if status == 204 or status == 304:
        # NOTE: RFC 9110 6.4.1, 8.6: these have no content, and 204 no Content-Length.
        return ()
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    kind = type(body)
    if kind is dict or kind is list:  # PERF: the usual JSON body first
        data = dumps(body)
    elif body is None:
        if content_type is not None and is_json_media_type(content_type.split(";", 1)[0]):
            data = b"null"
        else:
            data = b""
    elif isinstance(body, bytes):
        data = body
    elif isinstance(body, bytearray):
        data = bytes(body)
    elif isinstance(body, str):
        data = body.encode()
    elif is_stream(body):
        return _encoded_stream(body, operation_id)
    else:
        data = dumps(body)
    headers.append(("Content-Length", str(len(data))))
    return (data,)


class UnencodableChunk(ValueError):
    """A chunk of a streamed response has no valid UTF-8 form; the stream is cut."""


def _encoded_stream(chunks: Iterable[Any], operation_id: str) -> Iterable[bytes]:
    for chunk in chunks:
        if not isinstance(chunk, str):
            yield bytes(chunk)
            continue
        try:
            data = chunk.encode()
        except UnicodeEncodeError as ex:
            # NOTE: the head is out: the only honest signal left is to cut the stream (the
            # server closes the connection, no last chunk, and logs this once).
            raise UnencodableChunk(f"{operation_id}: a chunk of the streamed response cannot "
                                   f"be encoded as UTF-8: {ex}") from None
        yield data


def encoder_for(operation: Operation, context: BuildContext) -> ResponseEncoder:
    """Return the operation's `ResponseEncoder`, built once per app and operation."""
    return context.memo(("response-encoder", operation.operation_id), lambda: ResponseEncoder(
        operation, context.settings.response_validation, context.validators))


EVENT_STREAM = "text/event-stream"
#: What an event stream's answer says unless the handler says otherwise: no cache keeps it,
#: no proxy (nginx) holds its events back.
_EVENT_STREAM_HEADERS = (("Cache-Control", "no-cache"), ("X-Accel-Buffering", "no"))


def _event_stream_stage(operation: Operation, context: BuildContext,
                        encoder: ResponseEncoder) -> Stage:
    settings = context.settings
    streams = context.memo(("event-streams",), lambda: EventStreams(
        settings.sse_max_streams, settings.sse_heartbeat_s, settings.sse_buffer_events))
    retry_after_s = context.actor_settings[operation.operation_id].retry_after_s
    label = operation.operation_id
    encode = encoder.encode

    def event_stream_stage(request: Request) -> None:
        result = request.result
        given = isinstance(result, Response)
        body = result.body if given else result
        if not is_event_source(body):
            request.answer = encode(result)  # NOTE: an error, a 204, a whole body: as usual
            return
        if not given:
            result = Response(200, body, content_type=EVENT_STREAM)
        elif result.content_type is None and not any(
                name.lower() == "content-type" for name in result.headers):
            result = Response(result.status, body, result.headers, EVENT_STREAM)
        try:
            status, content_type, headers = encoder.check_stream(result)
        except HTTPError:
            close = getattr(body, "close", None)
            if close is not None:
                close()
            raise
        headers.append(("Content-Type", content_type or EVENT_STREAM))
        present = {name.lower() for name, _ in headers}
        headers.extend(pair for pair in _EVENT_STREAM_HEADERS if pair[0].lower() not in present)
        request.answer = (status, headers,
                          streams.open_stream(body, request.environ, label, retry_after_s))

    return event_stream_stage


def build(operation: Operation, context: BuildContext) -> Stage:
    """Return the operation's response stage (every operation has one).

    An operation marked ``x-sse: true`` streams the events its handler returns
    (`brrt_actors.sse`); its other answers (errors, whole bodies) are encoded as usual.
    """
    encoder = encoder_for(operation, context)
    if is_sse_operation(operation):
        return _event_stream_stage(operation, context, encoder)
    encode = encoder.encode

    # PERF: a closure, as every stage (see `brrt_actors.stages.actor`).
    def response_stage(request: Request) -> None:
        request.answer = encode(request.result)

    return response_stage
