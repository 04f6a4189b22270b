"""Loading an OpenAPI 3.0 / 3.1 document into the `Spec` model, reporting every problem at once.

`load_spec` reads the document, resolves every `$ref` (inside it and into local files beside
it), translates every schema (see `schema.py`), compiles one validator per distinct schema
(the validator cache) and checks what the runtime relies on: operationIds, parameters,
security requirements. Everything wrong is gathered into one `SpecError`.
"""
from __future__ import annotations

import os
import posixpath
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from brrt_actors.errors import SpecError
from brrt_actors.spec.model import (
    MISSING,
    MediaType,
    Operation,
    Parameter,
    RequestBody,
    ResponseSpec,
    SecurityRequirements,
    Spec,
)
from brrt_actors.spec.parameters import TEMPLATE_NAME, check_path_parameters, read_parameters
from brrt_actors.spec.problems import Problems
from brrt_actors.spec.reader import load_spec_document
from brrt_actors.spec.refs import Documents, Location, child, escape
from brrt_actors.spec.schema import REQUEST, RESPONSE, SchemaTranslator
from brrt_actors.spec.security_schemes import read_security_requirements, read_security_schemes

if TYPE_CHECKING:
    from brrt_actors.validation import ValidatorCache

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_VERSION = re.compile(r"3\.([01])\.\d+(?:[-+].*)?\Z")
_STATUS = re.compile(r"(?:[1-5][0-9][0-9]|[1-5]XX|default)\Z")

__all__ = ["METHODS", "load_spec", "load_spec_document"]


def load_spec(path: str | os.PathLike[str], *, compile_validators: bool = True,
              validators: ValidatorCache | None = None) -> Spec:
    """Load the OpenAPI 3.0 / 3.1 document at `path` into a resolved `Spec`.

    Args:
        path: a YAML or JSON file; `$ref`s to other local files resolve relative to it.
        compile_validators: also compile every schema's validator now, so that a schema the
            validators reject is reported with the other problems.
        validators: the app's cache to compile them into (a throwaway one by default).

    Raises:
        SpecError: listing every problem found, each with its JSON pointer and the fix.
    """
    source = os.fspath(path)
    document = load_spec_document(source)
    return _Builder(source, document).build(compile_validators, validators)


def _openapi_version(document: dict[str, Any]) -> tuple[str, tuple[int, int]]:
    if "swagger" in document:
        raise SpecError([("/swagger", "Swagger 2.0 documents are not supported; convert the "
                                      "document to OpenAPI 3 (e.g. with swagger2openapi)")])
    version = document.get("openapi")
    if isinstance(version, str) and (match := _VERSION.match(version)):
        return version, (3, int(match.group(1)))
    hint = " (write it as a string: openapi: \"3.1.0\")" if isinstance(version, float) else ""
    raise SpecError([("/openapi", f"OpenAPI version {version!r} is not supported; use 3.0.x or "
                                  f"3.1.x{hint}")])


class _Builder:
    def __init__(self, source: str, document: dict[str, Any]) -> None:
        self.source = source
        self.document = document
        self.version, version = _openapi_version(document)
        self.problems = Problems()
        self.docs = Documents(source, document, self.problems)
        self.schemas = SchemaTranslator(self.docs, version, self.problems)
        self.base_path = ""
        self.scheme_names: set[str] = set()
        self.operation_ids: dict[str, str] = {}

    # -- helpers ----------------------------------------------------------------------------

    def where(self, loc: Location) -> str:
        return self.docs.where(loc)

    def error(self, loc: Location, message: str) -> None:
        self.problems.error(self.where(loc), message)

    def warn(self, loc: Location, message: str) -> None:
        self.problems.warn(self.where(loc), message)

    def resolved(self, value: Any, loc: Location) -> tuple[dict[str, Any], Location] | None:
        found = self.docs.deref(value, loc)
        if found is None:
            return None
        if not isinstance(found[0], dict):
            self.error(found[1], "must be a mapping")
            return None
        return found[0], found[1]

    # -- the document -----------------------------------------------------------------------

    def build(self, compile_validators: bool, validators: ValidatorCache | None) -> Spec:
        root = self.docs.root
        info = self.document.get("info")
        if not isinstance(info, dict):
            self.warn(child(root, "info"), "info (title, version) is missing")
            info = {}
        self.base_path = self.servers_path(self.document.get("servers"), child(root, "servers"))
        spec = Spec(
            source=self.source,
            openapi_version=self.version,
            title=str(info.get("title", "")),
            version=str(info.get("version", "")),
            base_path=self.base_path,
            document=self.document,
        )
        spec.security_schemes, self.scheme_names = read_security_schemes(self, self.document)
        security = self.security(self.document.get("security", []), child(root, "security"))
        spec.operations = self.operations(security)
        if compile_validators:
            self.compile(spec, validators)
        self.problems.raise_if_any()
        spec.warnings = self.problems.warnings
        return spec

    def security(self, value: Any, loc: Location) -> SecurityRequirements:
        return read_security_requirements(self, value, loc, self.scheme_names)

    def servers_path(self, servers: Any, loc: Location) -> str:
        """Return the path of the first server's URL ("" for none or "/")."""
        if servers is None or servers == []:
            return ""
        if not isinstance(servers, list) or not isinstance(servers[0], dict):
            self.error(loc, "must be a list of server objects ({url: ...})")
            return ""
        server = servers[0]
        url = server.get("url")
        if not isinstance(url, str):
            self.error(child(loc, 0, "url"), "must be a URL string")
            return ""
        variables = server.get("variables") or {}

        def substitute(match: re.Match[str]) -> str:
            variable = variables.get(match.group(1)) if isinstance(variables, dict) else None
            if isinstance(variable, dict) and "default" in variable:
                return str(variable["default"])
            self.error(child(loc, 0, "url"), f"server variable '{match.group(1)}' has no "
                                              "default; declare it under variables with a default")
            return ""

        url = TEMPLATE_NAME.sub(substitute, url)
        path = urlsplit(url).path if "://" in url or url.startswith("//") else url
        path = posixpath.normpath("/" + path.lstrip("/"))
        return "" if path == "/" else path

    # -- operations -------------------------------------------------------------------------

    def operations(self, security: SecurityRequirements) -> list[Operation]:
        paths = self.document.get("paths")
        loc = child(self.docs.root, "paths")
        if paths is None:
            self.warn(loc, "the document declares no paths")
            return []
        if not isinstance(paths, dict):
            self.error(loc, "must be a mapping of path templates to path items")
            return []
        operations: list[Operation] = []
        for template, value in paths.items():
            if template.startswith("x-"):
                continue
            item_loc = child(loc, template)
            if not template.startswith("/"):
                self.error(item_loc, f"path '{template}' must start with '/'")
                continue
            found = self.resolved(value, item_loc)
            if found is None:
                continue
            item, at = found
            shared = read_parameters(self, item.get("parameters"), child(at, "parameters"))
            item_servers = self.servers_path(item.get("servers"), child(at, "servers"))
            for method in METHODS:
                if method not in item:
                    continue
                if not isinstance(item[method], dict):
                    self.error(child(at, method), "must be an operation object")
                    continue
                op = self.operation(template, method, item[method], child(at, method),
                                    shared, security)
                op.pointer = child(item_loc, method)[1]
                if "servers" in item and item_servers != self.base_path:
                    self.warn(child(at, "servers"), f"path '{item_servers}' of these servers is "
                                                    f"not used; served under '{self.base_path}'")
                operations.append(op)
        return operations

    def operation(self, template: str, method: str, node: dict[str, Any], loc: Location,
                  shared: list[Parameter], security: SecurityRequirements) -> Operation:
        operation_id = node.get("operationId")
        if not isinstance(operation_id, str) or not operation_id:
            self.error(loc, "operationId is missing; every operation needs one, it names the "
                            "handler function (e.g. operationId: list_pets)")
            operation_id = f"{method}:{template}"
        elif operation_id in self.operation_ids:
            self.error(child(loc, "operationId"),
                       f"operationId '{operation_id}' is also used at "
                       f"{self.operation_ids[operation_id]}; operationIds must be unique")
        else:
            self.operation_ids[operation_id] = self.where(loc)
        handler = node.get("x-handler", operation_id)
        if not isinstance(handler, str) or not handler:
            self.error(child(loc, "x-handler"), "must name the handler function")
            handler = operation_id
        own = read_parameters(self, node.get("parameters"), child(loc, "parameters"))
        merged = {(p.name, p.location): p for p in shared}
        merged.update({(p.name, p.location): p for p in own})
        parameters = list(merged.values())
        check_path_parameters(self, template, parameters, loc)
        if "servers" in node:
            servers = self.servers_path(node["servers"], child(loc, "servers"))
            if servers != self.base_path:
                self.warn(child(loc, "servers"), f"path '{servers}' of these servers is not "
                                                 f"used; served under '{self.base_path}'")
        request_body = None
        if "requestBody" in node:
            request_body = self.request_body(node["requestBody"], child(loc, "requestBody"))
        own_security = security
        if "security" in node:
            own_security = self.security(node["security"], child(loc, "security"))
        tags = node.get("tags")
        summary = node.get("summary")
        return Operation(
            operation_id=operation_id,
            method=method.upper(),
            path=self.base_path + template,
            pointer=loc[1],
            handler_name=handler,
            parameters=parameters,
            request_body=request_body,
            responses=self.responses(node.get("responses"), child(loc, "responses")),
            security=[dict(requirement) for requirement in own_security],
            extensions={key: value for key, value in node.items() if key.startswith("x-")},
            summary=summary if isinstance(summary, str) else "",
            tags=[tag for tag in tags if isinstance(tag, str)] if isinstance(tags, list) else [],
        )

    def request_body(self, value: Any, loc: Location) -> RequestBody | None:
        found = self.resolved(value, loc)
        if found is None:
            return None
        node, at = found
        content = self.content(node.get("content"), child(at, "content"), REQUEST)
        if not node.get("content"):
            self.error(at, "a request body needs content: declare at least one media type")
        return RequestBody(pointer=self.where(at), required=node.get("required") is True,
                           content=content)

    def content(self, value: Any, loc: Location, direction: str) -> dict[str, MediaType]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(loc, "must be a mapping of media types")
            return {}
        content: dict[str, MediaType] = {}
        for content_type, media in value.items():
            at = child(loc, content_type)
            if media is None:
                media = {}
            if not isinstance(media, dict):
                self.error(at, "must be a media type object ({schema: ...})")
                continue
            schema = None
            if "schema" in media:
                schema = self.schemas.translate(media["schema"], child(at, "schema"), direction)
            encoding = media.get("encoding")
            key = content_type.lower()
            content[key] = MediaType(
                content_type=key,
                pointer=self.where(at),
                schema=schema,
                example=self.example(media, at),
                encoding=encoding if isinstance(encoding, dict) else {},
                examples=self.named_examples(media, at),
            )
        return content

    def named_examples(self, media: dict[str, Any], loc: Location) -> dict[str, Any]:
        """Return the values of `examples` by name (refs resolved; those without one left out)."""
        examples = media.get("examples")
        if not isinstance(examples, dict):
            return {}
        named: dict[str, Any] = {}
        for name, value in examples.items():
            found = self.docs.deref(value, child(loc, "examples", name))
            if found is not None and isinstance(found[0], dict) and "value" in found[0]:
                named[str(name)] = found[0]["value"]
        return named

    def example(self, media: dict[str, Any], loc: Location) -> Any:
        if "example" in media:
            return media["example"]
        examples = media.get("examples")
        if isinstance(examples, dict):
            for name, value in examples.items():
                found = self.docs.deref(value, child(loc, "examples", name))
                if found is not None and isinstance(found[0], dict) and "value" in found[0]:
                    return found[0]["value"]
        if "schema" in media:
            found = self.docs.deref(media["schema"], child(loc, "schema"))
            schema = found[0] if found is not None else None
            if isinstance(schema, dict):
                if "example" in schema:
                    return schema["example"]
                listed = schema.get("examples")
                if isinstance(listed, list) and listed:
                    return listed[0]
        return MISSING

    def responses(self, value: Any, loc: Location) -> dict[str, ResponseSpec]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(loc, "must be a mapping of status codes to responses")
            return {}
        responses: dict[str, ResponseSpec] = {}
        for status, item in value.items():
            if status.startswith("x-"):
                continue
            key = "default" if status.lower() == "default" else status.upper()
            if not _STATUS.match(key):
                self.error(child(loc, status), f"'{status}' is not a response status; use a "
                                               "code (200), a range (2XX) or default")
                continue
            found = self.resolved(item, child(loc, status))
            if found is None:
                continue
            node, at = found
            description = node.get("description")
            responses[key] = ResponseSpec(
                status=key,
                pointer=self.where(at),
                description=description if isinstance(description, str) else "",
                content=self.content(node.get("content"), child(at, "content"), RESPONSE),
                headers=self.headers(node.get("headers"), child(at, "headers")),
            )
        return responses

    def headers(self, value: Any, loc: Location) -> dict[str, Any]:
        """Return header name -> the header object, its ``schema`` translated."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(loc, "must be a mapping of header names to headers")
            return {}
        headers: dict[str, Any] = {}
        for name, item in value.items():
            found = self.resolved(item, child(loc, name))
            if found is None:
                continue
            node, at = found
            header = dict(node)
            content = node.get("content")
            if "schema" in node:
                header["schema"] = self.schemas.translate(node["schema"], child(at, "schema"),
                                                          RESPONSE)
            elif isinstance(content, dict) and len(content) == 1:
                media_type, media = next(iter(content.items()))
                if isinstance(media, dict) and "schema" in media:
                    header["schema"] = self.schemas.translate(
                        media["schema"], child(at, "content", media_type, "schema"), RESPONSE)
            headers[name] = header
        return headers

    # -- the validators ----------------------------------------------------------------

    def compile(self, spec: Spec, validators: ValidatorCache | None) -> None:
        # NOTE: imported here: brrt_actors.validation imports this package.
        from brrt_actors.validation import ValidatorCache

        cache = ValidatorCache() if validators is None else validators

        def compile_one(schema: dict[str, Any] | None, pointer: str) -> None:
            if schema is not None:
                try:
                    cache.compile(schema, pointer=pointer)
                except SpecError as ex:
                    self.problems.extend(ex)

        for op in spec.operations:
            for param in op.parameters:
                compile_one(param.schema, param.pointer + "/schema")
            media_types = list(op.request_body.content.values()) if op.request_body else []
            for response in op.responses.values():
                media_types.extend(response.content.values())
                for name, header in response.headers.items():
                    compile_one(header.get("schema"),
                                f"{response.pointer}/headers/{escape(name)}/schema")
            for media in media_types:
                compile_one(media.schema, media.pointer + "/schema")
