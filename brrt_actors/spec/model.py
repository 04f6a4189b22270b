"""What a loaded OpenAPI document becomes: plain, fully resolved descriptions of operations.

Everything downstream (router, parameter decoders, body readers, validators, security,
actors, mock handlers) is built from these objects, never from the raw document.

Schemas held here (``Parameter.schema``, ``MediaType.schema``) are already translated to
a self-contained JSON Schema draft-07 document: every ``$ref`` points into the schema's own
``definitions``, OpenAPI 3.0 keywords (``nullable``, boolean ``exclusiveMinimum``) and
JSON Schema 2020-12 keywords (type arrays, ``$defs``, ``prefixItems``) are rewritten, and
``readOnly`` / ``writeOnly`` properties are dropped from ``required`` for the direction
(request / response) the schema is used in.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JSONSchema = dict[str, Any]

# Marker for "the spec gives no example/default": None is a legitimate value.
MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING",
                                    "__bool__": lambda self: False})()


@dataclass(slots=True)
class Parameter:
    """One declared parameter (path, query, header or cookie), refs resolved."""

    name: str
    location: str  # "path" | "query" | "header" | "cookie"
    pointer: str  # JSON pointer of the parameter object in the document
    required: bool = False
    style: str = "form"  # the effective style (defaults applied per location)
    explode: bool = True  # the effective explode (defaults applied per style)
    schema: JSONSchema | None = None  # translated (direction: request)
    content_type: str | None = None  # set for `content`-typed parameters
    allow_reserved: bool = False
    deprecated: bool = False
    default: Any = MISSING  # the schema's default, when given

    @property
    def schema_type(self) -> str | None:
        """The schema's main type ("array", "object", "integer" ...), if it says one."""
        if not self.schema:
            return None
        kind = self.schema.get("type")
        if isinstance(kind, list):
            kinds = [k for k in kind if k != "null"]
            return kinds[0] if kinds else None
        return kind


@dataclass(slots=True)
class MediaType:
    """One entry of a `content` map."""

    content_type: str  # as written in the spec, lower-cased ("application/json", "*/*" ...)
    pointer: str
    schema: JSONSchema | None = None  # translated for the direction it is used in
    example: Any = MISSING  # `example`, or the first of `examples` (value)
    encoding: dict[str, Any] = field(default_factory=dict)
    examples: dict[str, Any] = field(default_factory=dict)  # named `examples`: name -> value


@dataclass(slots=True)
class RequestBody:
    pointer: str
    required: bool = False
    content: dict[str, MediaType] = field(default_factory=dict)


@dataclass(slots=True)
class ResponseSpec:
    status: str  # "200", "2XX" or "default"
    pointer: str
    description: str = ""
    content: dict[str, MediaType] = field(default_factory=dict)
    # header name -> the header object, refs resolved, its `schema` translated (response)
    headers: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class SecurityScheme:
    """A `components.securitySchemes` entry, refs resolved."""

    name: str
    type: str  # apiKey | http | oauth2 | openIdConnect | mutualTLS
    pointer: str
    location: str | None = None  # apiKey: header | query | cookie
    parameter_name: str | None = None  # apiKey: the header/query/cookie name
    scheme: str | None = None  # http: bearer | basic | ...
    bearer_format: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


# A security requirement list: OR of AND-groups; [] means public, [{}] anonymous allowed.
SecurityRequirements = list[dict[str, list[str]]]


@dataclass(slots=True)
class Operation:
    """One (method, path) of the document, with everything the pipeline needs."""

    operation_id: str
    method: str  # upper case: "GET", "POST" ...
    path: str  # full template including the base path: "/api/pets/{id}"
    pointer: str  # "/paths/~1pets~1{id}/get"
    handler_name: str  # `x-handler` if given, else the operationId
    parameters: list[Parameter] = field(default_factory=list)  # path-item ones merged in
    request_body: RequestBody | None = None
    responses: dict[str, ResponseSpec] = field(default_factory=dict)
    security: SecurityRequirements = field(default_factory=list)  # effective (global applied)
    extensions: dict[str, Any] = field(default_factory=dict)  # the operation's `x-*` keys
    summary: str = ""
    tags: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Spec:
    """A loaded, resolved OpenAPI document."""

    source: str  # the file it was read from
    openapi_version: str  # "3.0.3", "3.1.0" ...
    title: str
    version: str
    base_path: str  # path of servers[0].url, "" when none or "/"
    document: dict[str, Any]  # the document as read (refs intact) for /openapi.*
    operations: list[Operation] = field(default_factory=list)
    security_schemes: dict[str, SecurityScheme] = field(default_factory=dict)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (pointer, message)
