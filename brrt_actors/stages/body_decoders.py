"""Request body decoders, one per kind of media type, and what each gives the handler.

`decoder_for` builds the decoder of one declared media type at start; the body stage picks it
by the request's Content-Type. Malformed bodies and schema violations become error items; only
413 (too many parts or fields) is raised.

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
- Text that is not valid in its charset (a form field's ``%ff`` in UTF-8, a part in UTF-7
  that decodes to a lone surrogate) and JSON that is not Unicode or holds a non-finite
  number (see `brrt_actors.coercion.loads_json`) are errors naming where, never values.
- A field whose value cannot be coerced stays a string, so the validator reports it (once).
"""
from __future__ import annotations

from collections.abc import Callable
from itertools import chain
from typing import Any
from urllib.parse import parse_qsl

import multipart

from brrt_actors.coercion import (
    Coercer,
    InvalidValue,
    ObjectCoercer,
    compile_coercer,
    items_coercer,
    loads_json,
    printable_text,
    resolve,
    schema_types,
    text_problem,
)
from brrt_actors.errors import HTTPError
from brrt_actors.handler import UploadedFile
from brrt_actors.spec.model import JSONSchema, MediaType
from brrt_actors.validation import SchemaValidator

__all__ = ["Decoder", "decoder_for", "decoder_kind", "is_binary", "media_type"]


# Decodes one body: (bytes, the full Content-Type) -> (value, error items).
Decoder = Callable[[bytes, str], tuple[Any, list[dict[str, Any]]]]

_SPLITTERS: dict[str, str] = {"form": ",", "spaceDelimited": " ", "pipeDelimited": "|"}


def media_type(content_type: str) -> str:
    """Return the media type of a Content-Type, lower-case, without its parameters."""
    return content_type.partition(";")[0].strip().lower()


def _charset(content_type: str, default: str = "utf-8") -> str:
    _, options = multipart.parse_options_header(content_type)
    charset = options.get("charset")
    return charset if isinstance(charset, str) and charset else default


_UTF8 = frozenset({"utf-8", "utf8", "utf_8"})


def _decode_text(data: bytes, charset: str) -> str:
    """Decode `data` from `charset` (LookupError: unknown; UnicodeError: not text in it)."""
    text = data.decode(charset)
    if charset.lower() not in _UTF8:
        # SECURITY: some charsets (utf-7, unicode_escape ...) decode into lone surrogates,
        # text no response can carry; UTF-8 never does.
        text.encode("utf-8")
    return text


def _text_errors(pairs: list[tuple[str, str]], charset: str) -> list[dict[str, Any]]:
    """The error items of the form fields that are not text in `charset`."""
    try:
        # PERF: one encode of every name and value; the fields are looked at only if it fails.
        "".join(chain.from_iterable(pairs)).encode("utf-8")
        return []
    except UnicodeEncodeError:
        pass
    errors: list[dict[str, Any]] = []
    for name, raw in pairs:
        pointer = "/" + _escape(printable_text(name))
        if text_problem(name) is not None:
            errors.append({"in": "body", "pointer": pointer,
                           "message": f"the field name is not text in {charset}"})
        elif text_problem(raw) is not None:
            errors.append({"in": "body", "pointer": pointer,
                           "message": f"is not text in {charset}"})
    return errors


def _is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


def is_binary(schema: JSONSchema | None) -> bool:
    """True for no schema, ``{}`` or a binary string: nothing a validator could check."""
    if not schema:
        return True
    return (schema.get("type") == "string"
            and (schema.get("format") == "binary" or "contentMediaType" in schema))


def decoder_kind(media: str) -> str:
    """Return which decoder reads `media`: ``json``, ``form``, ``multipart``, ``text``, ``raw``."""
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
            self.is_binary = isinstance(items, dict) and is_binary(resolve(items, root))
            self.coerce: Coercer = items_coercer(target, root)
        else:
            self.is_binary = is_binary(target) and main == "string"
            self.coerce = compile_coercer(target, root)
        content_type = encoding.get("contentType")
        self.is_json = isinstance(content_type, str) and _is_json(media_type(content_type))
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


def decoder_for(kind: str, media: MediaType, validator: SchemaValidator | None,
                max_bytes: int, max_parts: int) -> Decoder:
    """Return the decoder of one declared media type for a body of `kind` (`decoder_kind`).

    Args:
        kind: ``json``, ``form``, ``multipart``, ``text`` or ``raw``.
        media: the declared media type (its schema, and its encoding for form fields).
        validator: the compiled schema, or None when the body is not validated.
        max_bytes: most bytes one multipart part may have.
        max_parts: most parts a multipart body, or fields a form body, may have (413 above).
    """
    if kind == "json":
        return _json_decoder(validator)
    if kind == "form":
        return _form_decoder(_Fields(media), validator, max_parts)
    if kind == "multipart":
        return _multipart_decoder(_Fields(media), validator, max_bytes, max_parts)
    if kind == "text":
        return _text_decoder(validator)
    return _raw_decoder


def _schema_errors(validator: SchemaValidator | None, value: Any) -> list[dict[str, Any]]:
    if validator is None:
        return []
    return [{"in": "body", "pointer": pointer, "message": message}
            for pointer, message in validator.errors(value)]


def _json_errors(ex: InvalidValue, prefix: str = "") -> list[dict[str, Any]]:
    """The error items of JSON text `loads_json` refused (`prefix`: the part's pointer)."""
    if not ex.problems:
        item: dict[str, Any] = {"in": "body", "message": str(ex)}
        if prefix:
            item["pointer"] = prefix
        return [item]
    return [{"in": "body", "pointer": prefix + pointer, "message": message}
            for pointer, message in ex.problems]


def _json_decoder(validator: SchemaValidator | None) -> Decoder:
    def decode(data: bytes, content_type: str) -> tuple[Any, list[dict[str, Any]]]:
        try:
            value = loads_json(data)
        except InvalidValue as ex:
            return None, _json_errors(ex)
        return value, _schema_errors(validator, value)

    return decode


def _form_decoder(fields: _Fields, validator: SchemaValidator | None,
                  max_fields: int) -> Decoder:
    def decode(data: bytes, content_type: str) -> tuple[Any, list[dict[str, Any]]]:
        charset = _charset(content_type)
        try:
            # NOTE: bytes that are not text in the charset become lone surrogates here, so
            # that `_text_errors` can name the field that holds them.
            text = data.decode(charset, "surrogateescape")
            pairs = parse_qsl(text, keep_blank_values=True, encoding=charset,
                              errors="surrogateescape", max_num_fields=max_fields)
        except LookupError:
            return None, [{"in": "body", "message": f"unknown charset {charset!r}"}]
        except UnicodeError:  # a codec without "surrogateescape" that met bad bytes
            return None, [{"in": "body", "message": f"the body is not text in {charset!r}"}]
        except ValueError:  # max_num_fields
            raise HTTPError(413, f"a form body may have at most {max_fields} fields") from None
        errors = _text_errors(pairs, charset)
        if errors:
            return None, errors
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
                       max_bytes: int, max_parts: int) -> Decoder:
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
                    item = _decode_text(content, segment.charset or "utf-8")
                except (LookupError, UnicodeError):
                    errors.append({"in": "body", "pointer": "/" + _escape(name),
                                   "message": "the part is not text in its charset"})
                    continue
                if _is_json(part_type) or (rule is not None and (rule.is_json or rule.is_object)):
                    try:
                        item = loads_json(item)
                    except InvalidValue as ex:
                        errors.extend(_json_errors(ex, "/" + _escape(name)))
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


def _text_decoder(validator: SchemaValidator | None) -> Decoder:
    def decode(data: bytes, content_type: str) -> tuple[Any, list[dict[str, Any]]]:
        charset = _charset(content_type)
        try:
            text = _decode_text(data, charset)
        except (LookupError, UnicodeError):
            return None, [{"in": "body", "message": f"the body is not text in {charset!r}"}]
        return text, _schema_errors(validator, text)

    return decode


def _raw_decoder(data: bytes, content_type: str) -> tuple[Any, list[dict[str, Any]]]:
    # NOTE: bytes cannot be checked against JSON Schema (an XML schema, say, describes a parsed
    # document this runtime does not produce), so raw bodies are not validated.
    return data, []
