"""Turning a handler's result into status, headers and body bytes, checked against the spec.

One `ResponseEncoder` per operation is built at start: it knows the statuses the operation
declares, the content type to use for each, and the compiled validator of each response
schema. Response validation runs in one of three modes (``enforce``: an invalid response
becomes a 500 and the log says why; ``log``: the log says why and the response goes out;
``off``) chosen once by swapping the `encode` callable, not by branching per request.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import ujson

from brrt_actors.errors import HTTPError
from brrt_actors.handler import Response, is_stream
from brrt_actors.spec.model import MediaType, Operation, ResponseSpec
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
    """Serialise a JSON value the way every response does."""
    return ujson.dumps(value, ensure_ascii=False, escape_forward_slashes=False).encode()


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

    __slots__ = ("_enforce", "_rules", "encode", "none_status", "operation")

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
        # PERF: the mode is chosen here once, not tested per request.
        self.encode: Callable[[Any], Encoded] = (
            self._encode if mode == "off" else self._encode_checked)

    def _rule(self, status: int) -> _StatusRule | None:
        rules = self._rules
        key = str(status)
        rule = rules.get(key)
        if rule is None:
            rule = rules.get(f"{key[0]}XX") or rules.get("DEFAULT")
        return rule

    def _encode(self, result: Any) -> Encoded:
        status, body, content_type, headers = self._unpack(result)
        return status, headers, body_chunks(status, body, content_type, headers)

    def _encode_checked(self, result: Any) -> Encoded:
        status, body, content_type, headers = self._unpack(result)
        try:
            self._check(status, body, content_type)
        except ResponseValidationError as ex:
            logger.error("%s: response %s does not match the spec: %s",
                         self.operation.operation_id, status, ex)
            if self._enforce:
                raise HTTPError(500, "the response did not match the API description") from ex
        return status, headers, body_chunks(status, body, content_type, headers)

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


def body_chunks(status: int, body: Any, content_type: str | None,
                headers: list[tuple[str, str]]) -> Iterable[bytes]:
    """Return the body as chunks and add Content-Type (and Content-Length) to `headers`."""
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
        return _encoded_stream(body)
    else:
        data = dumps(body)
    headers.append(("Content-Length", str(len(data))))
    return (data,)


def _encoded_stream(chunks: Iterable[Any]) -> Iterable[bytes]:
    for chunk in chunks:
        yield chunk.encode() if isinstance(chunk, str) else bytes(chunk)


def encoder_for(operation: Operation, context: BuildContext) -> ResponseEncoder:
    """Return the operation's `ResponseEncoder`, built once per app and operation."""
    return context.memo(("response-encoder", operation.operation_id), lambda: ResponseEncoder(
        operation, context.settings.response_validation, context.validators))


def build(operation: Operation, context: BuildContext) -> Stage:
    """Return the operation's response stage (every operation has one)."""
    encode = encoder_for(operation, context).encode

    # PERF: a closure, as every stage (see `brrt_actors.stages.actor`).
    def response_stage(request: Request) -> None:
        request.answer = encode(request.result)

    return response_stage
