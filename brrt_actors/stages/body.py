"""The request body: size limit, content negotiation, decoding and schema validation.

A `BodyReader` is built once per operation at start: each declared media type gets a decoder
(JSON, form, multipart, text or raw bytes) with its coercers and compiled validator. Per
request the reader checks the size (413 before reading when Content-Length says so), picks
the decoder for the Content-Type (415 when none fits), reads at most the limit, decodes and
validates. Malformed bodies and schema violations become error items; only 413, 415 and a bad
Content-Length are raised.

What the handler gets as ``request.body``:

- JSON (``application/json``, ``*/*+json``): the parsed value.
- ``application/x-www-form-urlencoded``: a dict; each field is coerced to its property's type
  (``integer``, ``number``, ``boolean`` ...); an array property collects repeated keys (or
  splits one value on its encoding's delimiter when ``explode: false``); an object property
  is read from JSON text or from ``prop[name]=value`` keys. A field not in the schema is a
  string, or a list of strings when repeated.
- ``multipart/form-data``: a dict; a part with a filename, or whose property is
  ``format: binary``, is an `UploadedFile`; other parts are coerced like form fields, and a
  part sent as (or declared with encoding ``contentType``) JSON, or an object property, is
  parsed as JSON. Repeated parts become a list when the property is an array (or unknown).
  For validation every `UploadedFile` stands in as a string.
- ``text/*``: the text decoded with its charset (UTF-8 by default), validated when the schema
  is more than a binary string; any other type: the raw bytes, not validated.
- A field whose value cannot be coerced stays a string, so the validator reports it (once).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import multipart

from brrt_actors.coercion import (
    Coercer,
    InvalidValue,
    ObjectCoercer,
    compile_coercer,
    items_coercer,
    loads_json,
    resolve,
    schema_types,
)
from brrt_actors.errors import HTTPError
from brrt_actors.handler import UploadedFile
from brrt_actors.spec.model import JSONSchema, MediaType, RequestBody
from brrt_actors.validation import SchemaValidator, ValidatorCache

if TYPE_CHECKING:
    from brrt_actors.context import BuildContext
    from brrt_actors.handler import Request
    from brrt_actors.spec.model import Operation

__all__ = ["BodyReader"]

# Decodes one body: (bytes, the full Content-Type) -> (value, error items).
_Decoder = Callable[[bytes, str], tuple[Any, list[dict[str, Any]]]]

_CHUNK = 65536
_CACHE_SIZE = 256  # resolved Content-Types remembered per operation
_JSON_TYPES = ("application/json", "application/*+json", "*/*+json")
_SPLITTERS: dict[str, str] = {"form": ",", "spaceDelimited": " ", "pipeDelimited": "|"}


def _media_type(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()


def _charset(content_type: str, default: str = "utf-8") -> str:
    _, options = multipart.parse_options_header(content_type)
    charset = options.get("charset")
    return charset if isinstance(charset, str) and charset else default


def _is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


def _is_binary(schema: JSONSchema | None) -> bool:
    """True for no schema, ``{}`` or a binary string: nothing a validator could check."""
    if not schema:
        return True
    return (schema.get("type") == "string"
            and (schema.get("format") == "binary" or "contentMediaType" in schema))


def _kind(media: str) -> str:
    if _is_json(media):
        return "json"
    if media == "application/x-www-form-urlencoded":
        return "form"
    if media == "multipart/form-data":
        return "multipart"
    return "text" if media.startswith("text/") else "raw"


class _FieldRule:
    """How one form/multipart field becomes a value."""

    __slots__ = ("build", "coerce", "is_array", "is_binary", "is_json", "is_object", "split")

    def __init__(self, schema: JSONSchema, root: JSONSchema, encoding: dict[str, Any]) -> None:
        types = [t for t in schema_types(schema, root) if t != "null"]
        main = types[0] if types else None
        self.is_array = main == "array"
        self.is_object = main == "object"
        target = resolve(schema, root)
        if self.is_array:
            items = target.get("items")
            self.is_binary = isinstance(items, dict) and _is_binary(resolve(items, root))
            self.coerce: Coercer = items_coercer(target, root)
        else:
            self.is_binary = _is_binary(target) and main == "string"
            self.coerce = compile_coercer(target, root)
        content_type = encoding.get("contentType")
        self.is_json = isinstance(content_type, str) and _is_json(_media_type(content_type))
        style, explode = encoding.get("style", "form"), encoding.get("explode", True)
        self.split = _SPLITTERS.get(style) if self.is_array and explode is False else None
        self.build = ObjectCoercer(target, root) if self.is_object else None


class _Fields:
    """The field rules of a form or multipart schema, built at start."""

    __slots__ = ("additional", "objects", "rules")

    def __init__(self, media: MediaType) -> None:
        root = media.schema or {}
        schema = resolve(root, root)
        self.rules: dict[str, _FieldRule] = {}
        for name, sub in (schema.get("properties") or {}).items():
            if isinstance(sub, dict):
                self.rules[name] = _FieldRule(sub, root, media.encoding.get(name) or {})
        self.objects = {name: rule.build for name, rule in self.rules.items()
                        if rule.build is not None}
        extra = schema.get("additionalProperties")
        self.additional = _FieldRule(extra, root, {}) if isinstance(extra, dict) else None

    def rule(self, name: str) -> _FieldRule | None:
        return self.rules.get(name, self.additional)

    def put(self, out: dict[str, Any], name: str, value: Any, rule: _FieldRule | None) -> None:
        """Store one field value: arrays (and unknown repeated fields) collect a list."""
        if rule is not None and rule.is_array:
            if rule.split is not None and isinstance(value, str):
                values = [_coerce(rule, piece) for piece in value.split(rule.split)]
                out.setdefault(name, []).extend(values)
            else:
                out.setdefault(name, []).append(
                    _coerce(rule, value) if isinstance(value, str) else value)
            return
        if isinstance(value, str) and rule is not None:
            value = _coerce(rule, value)
        if rule is None and name in out:
            previous = out[name]
            out[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            out[name] = value


def _coerce(rule: _FieldRule, raw: str) -> Any:
    try:
        return rule.coerce(raw)
    except InvalidValue:
        return raw  # NOTE: left as it came so the schema validator reports it, once


class BodyReader:
    """Read, decode and validate one operation's request body.

    Args:
        request_body: the operation's ``requestBody``.
        max_body_bytes: a larger body is refused with 413.
        max_parts: most parts a multipart body, or fields a form body, may have (413 above).
        validators: the app's validator cache (a private one by default).
    """

    __slots__ = ("_accepted", "_cache", "_decoders", "_max", "_max_parts", "_required",
                 "_validators", "_wildcard_decoders", "_wildcards")

    def __init__(self, request_body: RequestBody, max_body_bytes: int, *,
                 max_parts: int = 1000, validators: ValidatorCache | None = None) -> None:
        self._validators = ValidatorCache() if validators is None else validators
        self._max = max_body_bytes
        self._max_parts = max_parts
        self._required = request_body.required
        content = request_body.content or {"*/*": MediaType("*/*", request_body.pointer)}
        self._accepted = ", ".join(content)
        # Declared media types by normalised name; wildcards ("text/*", "*/*") apart.
        self._decoders: dict[str, _Decoder] = {}
        self._wildcards: dict[str, MediaType] = {}
        for declared, media in content.items():
            name = _media_type(declared)
            if "*" in name:
                self._wildcards[name] = media
            else:
                self._decoders[name] = self._decoder(_kind(name), media)
        self._wildcard_decoders: dict[tuple[str, str], _Decoder] = {}
        self._cache: dict[str, _Decoder] = {}

    # --- per request -------------------------------------------------------------------

    def read(self, environ: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
        """Return (body value, error items) of one request.

        Raises:
            HTTPError: 413 (too large), 415 (Content-Type not accepted) or 400 (bad
                Content-Length).
        """
        raw_length = environ.get("CONTENT_LENGTH")
        content_type: str = environ.get("CONTENT_TYPE") or ""
        stream = environ["wsgi.input"]
        if raw_length:
            length = _content_length(raw_length)
            if length > self._max:
                # SECURITY: refused before a single byte is read.
                raise HTTPError(413, f"the request body is larger than {self._max} bytes")
            if length == 0:
                return self._empty()
            decode = self._negotiate(content_type)
            data = _read_exactly(stream, length)
            if len(data) < length:
                return None, [{"in": "body",
                               "message": "the request body is shorter than its Content-Length"}]
        elif environ.get("wsgi.input_terminated"):
            data = _read_at_most(stream, self._max)
            if not data:
                return self._empty()
            decode = self._negotiate(content_type)
        else:
            return self._empty()  # NOTE: WSGI: no Content-Length and no terminated input
        return decode(data, content_type)

    def _empty(self) -> tuple[Any, list[dict[str, Any]]]:
        if self._required:
            return None, [{"in": "body", "message": "request body is required"}]
        return None, []

    def _negotiate(self, content_type: str) -> _Decoder:
        media = _media_type(content_type)
        decode = self._cache.get(media)
        if decode is None:
            decode = self._resolve(media)
            if len(self._cache) < _CACHE_SIZE:  # SECURITY: clients choose the keys; bounded
                self._cache[media] = decode
        return decode

    def _resolve(self, media: str) -> _Decoder:
        if not media:
            raise HTTPError(415, "a request body needs a Content-Type; use one of: "
                            + self._accepted)
        decode = self._decoders.get(media)
        if decode is not None:
            return decode
        major = media.partition("/")[0]
        if media.endswith("+json"):
            decode = self._decoders.get("application/json")
            if decode is not None:
                return decode
            for pattern in (major + "/*+json", "*/*+json"):
                if pattern in self._wildcards:
                    return self._wildcard_decoder(pattern, "json")
        for pattern in (major + "/*", "*/*"):
            wildcard = self._wildcards.get(pattern)
            if wildcard is not None:
                return self._wildcard_decoder(
                    pattern, "raw" if _is_binary(wildcard.schema) else _kind(media))
        raise HTTPError(415, f"Content-Type {media!r} is not accepted; use one of: "
                        + self._accepted)

    # --- decoders, built at start (or once per wildcard and kind) -----------------------

    def _wildcard_decoder(self, pattern: str, kind: str) -> _Decoder:
        decode = self._wildcard_decoders.get((pattern, kind))
        if decode is None:  # at most 5 kinds per wildcard: bounded
            decode = self._wildcard_decoders[pattern, kind] = self._decoder(
                kind, self._wildcards[pattern])
        return decode

    def _decoder(self, kind: str, media: MediaType) -> _Decoder:
        schema = media.schema
        validator = (None if _is_binary(schema) else
                     self._validators.compile(schema or {}, pointer=media.pointer + "/schema"))
        if kind == "json":
            return _json_decoder(validator)
        if kind == "form":
            return _form_decoder(_Fields(media), validator, self._max_parts)
        if kind == "multipart":
            return _multipart_decoder(_Fields(media), validator, self._max, self._max_parts)
        if kind == "text":
            return _text_decoder(validator)
        return _raw_decoder


def _content_length(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()):
        raise HTTPError(400, f"invalid Content-Length header: {raw[:40]!r}")
    return int(raw)


def _read_exactly(stream: Any, length: int) -> bytes:
    data = stream.read(length)
    if len(data) >= length:
        return bytes(data)
    parts = [data]
    missing = length - len(data)
    while missing > 0:
        chunk = stream.read(min(missing, _CHUNK))
        if not chunk:
            break
        parts.append(chunk)
        missing -= len(chunk)
    return b"".join(parts)


def _read_at_most(stream: Any, limit: int) -> bytes:
    """Read an input of unknown length; 413 once it passes `limit` (reads limit+1 at most)."""
    parts: list[bytes] = []
    total = 0
    while total <= limit:
        chunk = stream.read(min(_CHUNK, limit + 1 - total))
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
    if total > limit:
        raise HTTPError(413, f"the request body is larger than {limit} bytes")
    return b"".join(parts)


def _schema_errors(validator: SchemaValidator | None, value: Any) -> list[dict[str, Any]]:
    if validator is None:
        return []
    return [{"in": "body", "pointer": pointer, "message": message}
            for pointer, message in validator.errors(value)]


def _json_decoder(validator: SchemaValidator | None) -> _Decoder:
    def decode(data: bytes, content_type: str) -> tuple[Any, list[dict[str, Any]]]:
        try:
            value = loads_json(data)
        except InvalidValue as ex:
            return None, [{"in": "body", "message": str(ex)}]
        return value, _schema_errors(validator, value)

    return decode


def _form_decoder(fields: _Fields, validator: SchemaValidator | None,
                  max_fields: int) -> _Decoder:
    def decode(data: bytes, content_type: str) -> tuple[Any, list[dict[str, Any]]]:
        charset = _charset(content_type)
        try:
            text = data.decode(charset, "replace")
            pairs = parse_qsl(text, keep_blank_values=True, encoding=charset,
                              errors="replace", max_num_fields=max_fields)
        except LookupError:
            return None, [{"in": "body", "message": f"unknown charset {charset!r}"}]
        except ValueError:  # max_num_fields
            raise HTTPError(413, f"a form body may have at most {max_fields} fields") from None
        value: dict[str, Any] = {}
        nested: dict[str, list[tuple[str, str]]] = {}
        for name, raw in pairs:
            base, bracket, rest = name.partition("[")
            if bracket and rest.endswith("]") and base in fields.objects:
                # NOTE: deepObject-style keys ("address[city]=x") build the object property.
                nested.setdefault(base, []).append((rest[:-1], raw))
                continue
            fields.put(value, name, raw, fields.rule(name))
        for base, props in nested.items():
            build = fields.objects[base]
            try:
                value[base] = build(props)
            except InvalidValue:
                value[base] = dict(props)  # the validator reports the bad property
        return value, _schema_errors(validator, value)

    return decode


def _multipart_decoder(fields: _Fields, validator: SchemaValidator | None,
                       max_bytes: int, max_parts: int) -> _Decoder:
    def decode(data: bytes, content_type: str) -> tuple[Any, list[dict[str, Any]]]:
        _, options = multipart.parse_options_header(content_type)
        boundary = options.get("boundary")
        if not boundary:
            return None, [{"in": "body",
                           "message": "malformed multipart body: no boundary in Content-Type"}]
        try:
            parts = _split_parts(data, boundary, max_bytes, max_parts)
        except multipart.ParserLimitReached as ex:
            raise HTTPError(413, f"multipart body over a limit: {ex}") from None
        except multipart.MultipartError as ex:
            return None, [{"in": "body", "message": f"malformed multipart body: {ex}"}]
        value: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        has_files = False
        for segment, content in parts:
            name: str = segment.name or ""
            rule = fields.rule(name)
            part_type: str = segment.content_type or ""
            item: Any
            if segment.filename is not None or (rule is not None and rule.is_binary):
                has_files = True
                item = UploadedFile(name, segment.filename,
                                    part_type or "application/octet-stream", content,
                                    {key.lower(): val for key, val in segment.headerlist})
            else:
                try:
                    item = content.decode(segment.charset or "utf-8")
                except (LookupError, UnicodeDecodeError):
                    errors.append({"in": "body", "pointer": "/" + _escape(name),
                                   "message": "the part is not text in its charset"})
                    continue
                if _is_json(part_type) or (rule is not None and (rule.is_json or rule.is_object)):
                    try:
                        item = loads_json(item)
                    except InvalidValue as ex:
                        errors.append({"in": "body", "pointer": "/" + _escape(name),
                                       "message": str(ex)})
                        continue
            fields.put(value, name, item, rule)
        if errors:
            return value, errors
        shadow = _shadow(value) if has_files else value
        return value, _schema_errors(validator, shadow)

    return decode


def _split_parts(data: bytes, boundary: str, max_bytes: int,
                 max_parts: int) -> list[tuple[Any, bytes]]:
    parser = multipart.PushMultipartParser(
        boundary, content_length=len(data), max_segment_count=max_parts,
        max_segment_size=max_bytes)
    parts: list[tuple[Any, bytes]] = []
    segment: Any = None
    chunks: list[bytes] = []
    for event in parser.parse(data):
        if event is None:
            parts.append((segment, b"".join(chunks)))
            chunks = []
        elif isinstance(event, bytes | bytearray):
            chunks.append(bytes(event))
        else:
            segment = event
    parser.close()  # raises when the stream ended before its closing boundary
    return parts


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def _shadow(value: dict[str, Any]) -> dict[str, Any]:
    """The multipart value as the schema sees it: every file a string."""
    shadow: dict[str, Any] = {}
    for name, item in value.items():
        if isinstance(item, UploadedFile):
            shadow[name] = _file_stand_in(item)
        elif isinstance(item, list):
            shadow[name] = [_file_stand_in(x) if isinstance(x, UploadedFile) else x
                            for x in item]
        else:
            shadow[name] = item
    return shadow


def _file_stand_in(item: UploadedFile) -> str:
    # NOTE: empty for an empty file, so `minLength: 1` still catches one.
    return "<binary>" if item.content else ""


def _text_decoder(validator: SchemaValidator | None) -> _Decoder:
    def decode(data: bytes, content_type: str) -> tuple[Any, list[dict[str, Any]]]:
        charset = _charset(content_type)
        try:
            text = data.decode(charset)
        except (LookupError, UnicodeDecodeError):
            return None, [{"in": "body", "message": f"the body is not text in {charset!r}"}]
        return text, _schema_errors(validator, text)

    return decode


def _raw_decoder(data: bytes, content_type: str) -> tuple[Any, list[dict[str, Any]]]:
    # NOTE: bytes cannot be checked against JSON Schema (an XML schema, say, describes a parsed
    # document this runtime does not produce), so raw bodies are not validated.
    return data, []


class BodyStage:
    """Read the request body onto the request; problems are collected."""

    __slots__ = ("_read",)

    def __init__(self, reader: BodyReader) -> None:
        self._read = reader.read

    def __call__(self, request: Request) -> None:
        request.body, problems = self._read(request.environ)
        if problems:
            request.add_problems(problems)


def build(operation: Operation, context: BuildContext) -> BodyStage | None:
    """Return the body stage, or None when the operation declares no request body."""
    if operation.request_body is None:
        return None
    return BodyStage(BodyReader(operation.request_body, context.settings.max_body_bytes,
                                validators=context.validators))
